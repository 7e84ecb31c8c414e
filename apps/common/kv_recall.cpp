// apps/common/kv_recall.cpp — the byte-level key-value recall task of kv_recall.h (MQAR-style,
// Arora et al. 2023): config, training stream "K=v ... ?Kv" with d = pos(answer) - pos(value) drawn
// log-uniformly in [d_min, d_max], the stream parser, probes at an exact distance, and the
// evaluation of a LanguageModel (ids [B, T] -> logits [B, T, V], state carried over chunks).
#include "apps/common/kv_recall.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>

#include "autograd/tape.h"
#include "core/error.h"

namespace engram::apps {

namespace {

// splitmix64: a well-mixed 64-bit hash, to give each probe distance its own seed.
uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// floor(exp(U[log lo, log(hi + 1)))), clamped to [lo, hi]: every octave equally likely.
int64_t log_uniform(Generator& gen, int64_t lo, int64_t hi) {
  if (lo == hi) return lo;
  const double a = std::log(double(lo)), b = std::log(double(hi) + 1.0);
  const auto d = int64_t(std::floor(std::exp(a + gen.uniform() * (b - a))));
  return std::clamp(d, lo, hi);
}

char filler(Generator& gen) { return char('a' + gen.randint(0, 26)); }
char key_char(int k) { return char('A' + k); }
char value_char(int v) { return char('0' + v); }

// Restores the module's training flag on every exit path.
struct TrainingFlagGuard {
  nn::Module& m;
  bool was;
  explicit TrainingFlagGuard(nn::Module& mod) : m(mod), was(mod.is_training()) { m.eval(); }
  ~TrainingFlagGuard() { m.train(was); }
};

}  // namespace

void check_kv_recall_config(const KVRecallConfig& c, const std::string& s) {
  ENGRAM_CHECK(c.keys >= 1 && c.keys <= 26, "kv_recall: {}.keys={} must be in [1, 26]", s, c.keys);
  ENGRAM_CHECK(c.values >= 2 && c.values <= 10, "kv_recall: {}.values={} must be in [2, 10]", s,
               c.values);
  ENGRAM_CHECK(c.d_min >= 3, "kv_recall: {}.d_min={} must be >= 3 (a query follows its binding)", s,
               c.d_min);
  ENGRAM_CHECK(c.d_max >= c.d_min, "kv_recall: {}.d_max={} must be >= {}.d_min={}", s, c.d_max, s,
               c.d_min);
  ENGRAM_CHECK(c.bind_every >= 1, "kv_recall: {}.bind_every={} must be >= 1", s, c.bind_every);
  ENGRAM_CHECK(c.distractors >= 0, "kv_recall: {}.distractors={} must be >= 0", s, c.distractors);
  ENGRAM_CHECK(c.lead_in >= 0, "kv_recall: {}.lead_in={} must be >= 0", s, c.lead_in);
}

std::vector<FieldSpec> kv_recall_fields(const std::string& s) {
  const KVRecallConfig d;
  const int64_t big = int64_t(1) << 30;
  return {
      int_field(s + ".keys", d.keys, 1, 26, "kv recall: number of keys 'A'.."),
      int_field(s + ".values", d.values, 2, 10, "kv recall: number of values '0'.."),
      int_field(s + ".d_min", d.d_min, 3, big, "kv recall: shortest query distance (answer - value)"),
      int_field(s + ".d_max", d.d_max, 3, big, "kv recall: longest query distance (log-uniform)"),
      int_field(s + ".bind_every", d.bind_every, 1, big, "kv recall stream: ~1 binding per N tokens"),
      int_field(s + ".distractors", d.distractors, 0, 1 << 20,
                "kv recall probes: bindings of other keys between binding and query"),
      int_field(s + ".lead_in", d.lead_in, 0, 1 << 20, "kv recall probes: filler before the binding"),
  };
}

KVRecallConfig kv_recall_config(const Config& cfg, const std::string& s) {
  KVRecallConfig c;
  c.keys = int(cfg.get_int(s + ".keys"));
  c.values = int(cfg.get_int(s + ".values"));
  c.d_min = cfg.get_int(s + ".d_min");
  c.d_max = cfg.get_int(s + ".d_max");
  c.bind_every = cfg.get_int(s + ".bind_every");
  c.distractors = int(cfg.get_int(s + ".distractors"));
  c.lead_in = cfg.get_int(s + ".lead_in");
  check_kv_recall_config(c, s);
  return c;
}

std::string kv_recall_stream(const KVRecallConfig& cfg, int64_t n, uint64_t seed) {
  check_kv_recall_config(cfg);
  ENGRAM_CHECK(n >= 0, "kv_recall_stream: n_bytes={} must be >= 0", n);
  Generator gen(seed);
  std::string s(size_t(n), '\0');
  std::vector<char> used(size_t(n), 0);
  std::vector<int64_t> busy_until(size_t(cfg.keys), -1);  // answer position of the pending query
  std::vector<int> free_keys;
  auto is_free = [&](int64_t i) { return i + 2 < n && !used[i] && !used[i + 1] && !used[i + 2]; };
  auto place = [&](int64_t i, char a, char b, char c) {
    s[i] = a, s[i + 1] = b, s[i + 2] = c;
    used[i] = used[i + 1] = used[i + 2] = 1;
  };
  for (int64_t p = 0; p < n; ++p) {
    if (used[p] || gen.uniform() * double(cfg.bind_every) >= 1.0 || !is_free(p)) continue;
    free_keys.clear();
    for (int k = 0; k < cfg.keys; ++k)
      if (busy_until[k] < p) free_keys.push_back(k);
    if (free_keys.empty()) continue;
    const int k = free_keys[gen.randint(0, int64_t(free_keys.size()))];
    const char v = value_char(int(gen.randint(0, cfg.values)));
    for (int attempt = 0; attempt < 8; ++attempt) {
      const int64_t q = p + log_uniform(gen, cfg.d_min, cfg.d_max);  // answer at q + 2
      if (!is_free(q)) continue;
      place(p, key_char(k), '=', v);
      place(q, '?', key_char(k), v);
      busy_until[k] = q + 2;
      break;
    }
  }
  for (int64_t i = 0; i < n; ++i)
    if (!used[i]) s[i] = filler(gen);
  return s;
}

void write_kv_recall_corpus(const std::string& path, const KVRecallConfig& cfg, int64_t n_bytes,
                            uint64_t seed) {
  const std::string text = kv_recall_stream(cfg, n_bytes, seed);
  const std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  ENGRAM_CHECK(f, "write_kv_recall_corpus: cannot create '{}': {}", tmp, std::strerror(errno));
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok = std::fflush(f) == 0 && ok;
  ok = ::fsync(::fileno(f)) == 0 && ok;  // data on disk before the rename publishes it
  ok = std::fclose(f) == 0 && ok;
  if (!ok) {
    const int err = errno;
    std::remove(tmp.c_str());
    ENGRAM_FAIL("write_kv_recall_corpus: writing '{}' failed: {}", tmp, std::strerror(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    ENGRAM_FAIL("write_kv_recall_corpus: renaming '{}' to '{}' failed: {}", tmp, path,
                std::strerror(err));
  }
}

std::vector<KVRecallQuery> kv_recall_queries(std::string_view t) {
  std::vector<KVRecallQuery> out;
  int64_t last[26];
  std::fill(std::begin(last), std::end(last), int64_t(-1));
  const auto n = int64_t(t.size());
  for (int64_t i = 0; i + 2 < n; ++i) {
    const char c = t[i], c1 = t[i + 1];
    if (c >= 'A' && c <= 'Z' && c1 == '=') {
      last[c - 'A'] = i + 2;
    } else if (c == '?' && c1 >= 'A' && c1 <= 'Z') {
      out.push_back({.answer_pos = i + 2, .value_pos = last[c1 - 'A'], .key = c1, .answer = t[i + 2]});
    }
  }
  return out;
}

KVRecallProbe kv_recall_probe(const KVRecallConfig& cfg, int64_t d, Generator& gen) {
  check_kv_recall_config(cfg);
  ENGRAM_CHECK(d >= 3, "kv_recall_probe: distance {} must be >= 3", d);
  KVRecallProbe pr;
  const int64_t p = cfg.lead_in;  // the binding "K=v" at p, p+1, p+2
  pr.value_pos = p + 2;
  pr.answer_pos = p + 2 + d;      // the query "?Kv" at p+d, p+d+1, p+d+2
  pr.text.resize(size_t(pr.answer_pos + 1));
  for (char& c : pr.text) c = filler(gen);
  const int k = int(gen.randint(0, cfg.keys));
  pr.key = key_char(k);
  pr.answer = value_char(int(gen.randint(0, cfg.values)));
  pr.text[p] = pr.key, pr.text[p + 1] = '=', pr.text[p + 2] = pr.answer;
  pr.text[p + d] = '?', pr.text[p + d + 1] = pr.key, pr.text[p + d + 2] = pr.answer;
  // Distractors: m blocks of 3 in the gap [p + 3, p + d) of G = d - 3 tokens. Choosing m distinct
  // slots among G - 2m and shifting the i-th (sorted) by 2i gives every arrangement equally often.
  const int64_t G = d - 3;
  const int64_t m = cfg.keys > 1 ? std::min<int64_t>(cfg.distractors, G / 3) : 0;
  std::set<int64_t> slots;
  while (int64_t(slots.size()) < m) slots.insert(gen.randint(0, G - 2 * m));
  int64_t i = 0;
  for (int64_t slot : slots) {
    const int64_t at = p + 3 + slot + 2 * i++;
    int j = int(gen.randint(0, cfg.keys - 1));
    if (j >= k) ++j;  // any key but K
    pr.text[at] = key_char(j), pr.text[at + 1] = '=';
    pr.text[at + 2] = value_char(int(gen.randint(0, cfg.values)));
  }
  pr.distractors = int(m);
  return pr;
}

KVRecallResult evaluate_kv_recall(LanguageModel& lm, const KVRecallConfig& cfg,
                                  std::span<const int64_t> distances, int64_t trials_per_distance,
                                  int64_t seq_chunk, uint64_t seed) {
  check_kv_recall_config(cfg);
  const int64_t V = lm.vocab_size();
  ENGRAM_CHECK(V > 'z', "evaluate_kv_recall: the task's tokens are bytes (ids up to 'z' = {}) but "
               "the model has a vocabulary of {}; train it with the byte tokenizer", int('z'), V);
  ENGRAM_CHECK(trials_per_distance >= 1, "evaluate_kv_recall: trials_per_distance={} must be >= 1",
               trials_per_distance);
  ENGRAM_CHECK(seq_chunk >= 1, "evaluate_kv_recall: seq_chunk={} must be >= 1", seq_chunk);
  for (int64_t d : distances)
    ENGRAM_CHECK(d >= 3, "evaluate_kv_recall: distance {} must be >= 3", d);

  NoGradGuard no_grad;
  TrainingFlagGuard eval_mode(lm.module());
  KVRecallResult r;
  for (int64_t d : distances) {
    Generator gen(mix64(seed ^ mix64(uint64_t(d))));
    int64_t correct = 0, correct_full = 0;
    for (int64_t done = 0; done < trials_per_distance;) {
      const int64_t B = std::min(kKVRecallMaxBatch, trials_per_distance - done);
      std::vector<KVRecallProbe> probes;
      for (int64_t b = 0; b < B; ++b) probes.push_back(kv_recall_probe(cfg, d, gen));
      const int64_t L = probes[0].answer_pos;  // tokens fed: all before the answer
      LMState state = lm.initial_state(B);
      Tensor logits;
      int64_t start = 0;
      for (; start < L; start += seq_chunk) {
        const int64_t T = std::min(seq_chunk, L - start);
        std::vector<int64_t> ids(size_t(B * T));
        for (int64_t b = 0; b < B; ++b)
          for (int64_t t = 0; t < T; ++t) ids[b * T + t] = uint8_t(probes[b].text[start + t]);
        logits = lm.forward(from_vector(ids, {B, T}), state);
        if (start + T == L) break;
      }
      ENGRAM_CHECK(logits.dim() == 3 && logits.size(0) == B && logits.size(2) == V,
                   "evaluate_kv_recall: expected logits [{}, T, {}], got {}", B, V,
                   fmt::join(logits.shape(), ", "));
      // logits at the query key (position L - 1), [B, 1, V] -> B rows of V.
      const std::vector<float> z =
          raw::contiguous(raw::narrow(logits, 1, L - 1 - start, 1)).to_vector<float>();
      for (int64_t b = 0; b < B; ++b) {
        const float* row = z.data() + b * V;
        const int64_t best_digit = std::max_element(row + '0', row + '0' + cfg.values) - row;
        const int64_t best = std::max_element(row, row + V) - row;
        correct += best_digit == uint8_t(probes[b].answer);
        correct_full += best == uint8_t(probes[b].answer);
      }
      done += B;
    }
    r.distances.push_back(d);
    r.trials.push_back(trials_per_distance);
    r.accuracy.push_back(double(correct) / double(trials_per_distance));
    r.accuracy_full.push_back(double(correct_full) / double(trials_per_distance));
  }
  return r;
}

}  // namespace engram::apps
