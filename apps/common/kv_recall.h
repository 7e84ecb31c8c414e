// apps/common/kv_recall.h — a synthetic long-range key-value recall task (multi-query associative
// recall, MQAR, in the style of Arora et al. 2023, "Zoology: Measuring and Improving Recall in
// Efficient Language Models"), at the byte level, for the memory LMs (episodic CMR / Titans, MemNet).
//
// Why: next-byte loss on English mixes many skills. This task isolates one: store an association
// "key K has value v" when it is shown, keep it across an arbitrary stretch of unrelated tokens,
// and retrieve it when asked. Accuracy as a function of the distance d between showing and asking
// is a direct picture of how far back a model's memory reaches.
//
// Alphabet (printable bytes, so the byte tokenizer and the text harness train on it as it is;
// token id = byte value, as the byte tokenizer in tokenizer.h maps byte b to id b):
//   filler   'a'..'z'                               uniform noise between events
//   keys     'A'..('A' + keys - 1)                  keys in [1, 26]
//   values   '0'..('0' + values - 1)                values in [2, 10]
//   markers  '=' (bind), '?' (query)
//   binding  "K=v"  (3 tokens)   K now has value v
//   query    "?Kv"  (3 tokens)   asks for K; the token after K is the answer v
// Filler is lowercase only, so an uppercase byte is always a key: "K=" starts a binding, "?K" a
// query (kv_recall_queries parses a stream this way).
//
// Positions and distance. With the binding "K=v" at positions p, p+1, p+2 (bound value at p+2)
// and its query "?Kv" at q, q+1, q+2 (answer at q+2):
//     d = position(answer) - position(bound value) = q - p          d >= 3 (query after binding)
// The model predicts the answer at the query key: the logits at position q+1 (the 'K' of "?K")
// are scored against the byte at q+2. A model that sees only the last W tokens (a transformer
// with context max_len = W) can see the whole binding from there only while d + 2 <= W.
//
// The answer to a query is always the value of the MOST RECENT binding of that key before it.
//
// Training stream (kv_recall_stream): left to right, at every free position a binding starts with
// probability 1 / bind_every. Its key is drawn uniformly among the keys with no pending query,
// its value uniformly, its distance d log-uniformly in [d_min, d_max] (log d uniform, floored, so
// short and long gaps are equally represented per octave); its query is placed at distance d if
// those 3 positions are still free (up to 8 draws of d, else the binding is dropped). Every
// binding has exactly one query after it. A key is not rebound while its query is pending, so the
// binding a query answers to is also the last binding of that key before it (the definition stays
// simple; rebinding does happen, after the query). So the binding rate is about
// min(1 / bind_every, keys / E[d]) per token: with many long gaps, keys run out and bindings are
// skipped. Everything else is filler. The stream is a deterministic function of (config, seed).
//
// Probes (kv_recall_probe, evaluate_kv_recall): one sequence per trial,
//     [lead_in filler] K=v [d - 3 tokens: filler and distractors] ?K v
// so the answer is exactly d tokens after the bound value. Distractors are bindings of OTHER keys
// ("J=w", J != K) in the gap, min(distractors, (d - 3) / 3) of them at uniformly random
// non-overlapping places (none with a single key); they test that the model retrieves by key
// rather than "the last value".
// d may exceed d_max (probing extrapolation); the training-stream settings bind_every does not
// apply to probes, and distractors/lead_in apply only to probes.
//
// Evaluation (evaluate_kv_recall): for each distance, `trials` probes are run in batches of up to
// kKVRecallMaxBatch rows (all rows of a batch have the same length): lm.initial_state(B), then the
// tokens before the answer are fed in chunks of seq_chunk tokens carrying the state, in eval mode
// without recording (the training flag is restored afterwards). Scored at the query key position:
//   accuracy       argmax restricted to the `values` digit tokens == answer   (chance 1 / values,
//                  10% with 10 values): is the right value ranked first among the values?
//   accuracy_full  argmax over the whole vocabulary == answer (also needs the model to know that
//                  a digit comes next)
// Each distance's probes are drawn from their own generator seeded by (seed, d), so a distance
// gets the same probes whatever other distances are evaluated with it.
//
// Config (kv_recall_fields / kv_recall_config) under a section, e.g. "kv": kv.keys, kv.values,
// kv.d_min, kv.d_max, kv.bind_every, kv.distractors, kv.lead_in. Invalid settings are an
// engram::Error naming the key and its value (check_kv_recall_config).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "apps/common/config.h"
#include "apps/common/lm.h"
#include "core/rng.h"

namespace engram::apps {

struct KVRecallConfig {
  int keys = 8;             // keys 'A'.. ; in [1, 26]
  int values = 10;          // values '0'.. ; in [2, 10]
  int64_t d_min = 8;        // query distance range (answer pos - bound value pos), d_min >= 3
  int64_t d_max = 256;      //   d_max >= d_min
  int64_t bind_every = 24;  // stream: a binding starts at a free position with prob 1/bind_every
  int distractors = 0;      // probes: bindings of other keys between the binding and its query
  int64_t lead_in = 8;      // probes: filler tokens before the binding
};

inline constexpr int64_t kKVRecallMaxBatch = 32;  // probe rows per forward

// Throws engram::Error naming "<section>.<field>" and its value when cfg is out of range.
void check_kv_recall_config(const KVRecallConfig& cfg, const std::string& section = "kv");

// The fields "<section>.keys" ... with the defaults above; add them to an app's schema.
std::vector<FieldSpec> kv_recall_fields(const std::string& section = "kv");
// Reads those fields and checks the result (d_max >= d_min is checked here).
KVRecallConfig kv_recall_config(const Config& cfg, const std::string& section = "kv");

// A training stream of n_bytes bytes (the header's "Training stream").
std::string kv_recall_stream(const KVRecallConfig& cfg, int64_t n_bytes, uint64_t seed);
// The same stream written to `path` (tmp file + fsync + rename), for data.path.
void write_kv_recall_corpus(const std::string& path, const KVRecallConfig& cfg, int64_t n_bytes,
                            uint64_t seed);

// Every query "?Kv" of a stream (a complete one: the answer is inside the text), in order.
struct KVRecallQuery {
  int64_t answer_pos = 0;  // position of v; the model is scored at answer_pos - 1
  int64_t value_pos = -1;  // the value of the most recent binding "K=" before the query, -1: none
  char key = 0, answer = 0;
  int64_t distance() const { return answer_pos - value_pos; }  // meaningful when value_pos >= 0
};
std::vector<KVRecallQuery> kv_recall_queries(std::string_view text);

// One probe at distance d (>= 3): text ends with the answer, text.size() == answer_pos + 1.
struct KVRecallProbe {
  std::string text;
  int64_t value_pos = 0, answer_pos = 0;  // answer_pos - value_pos == d
  char key = 0, answer = 0;
  int distractors = 0;                    // placed in the gap
};
KVRecallProbe kv_recall_probe(const KVRecallConfig& cfg, int64_t d, Generator& gen);

struct KVRecallResult {
  std::vector<int64_t> distances;
  std::vector<double> accuracy;       // argmax among the value digits (chance 1 / values)
  std::vector<double> accuracy_full;  // argmax over the whole vocabulary
  std::vector<int64_t> trials;
};

// The header's "Evaluation". The model must take byte ids (vocab_size > 'z').
KVRecallResult evaluate_kv_recall(LanguageModel& lm, const KVRecallConfig& cfg,
                                  std::span<const int64_t> distances, int64_t trials_per_distance,
                                  int64_t seq_chunk, uint64_t seed);

}  // namespace engram::apps
