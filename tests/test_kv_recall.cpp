// tests/test_kv_recall.cpp — the byte-level key-value recall task (apps/common/kv_recall.h,
// MQAR-style): the stream is deterministic per seed, every query's answer is the most recent
// binding of its key at a distance d = pos(answer) - pos(value) in [d_min, d_max], probes put the
// answer exactly d after the bound value, and evaluate_kv_recall scores an oracle LanguageModel
// (state-carrying, it remembers the last "K=v") at 1.0 and a constant one at chance; bad settings
// are errors naming the key.
#include <doctest/doctest.h>

#include <array>
#include <fstream>
#include <sstream>

#include "apps/common/kv_recall.h"
#include "autograd/tape.h"
#include "tests/test_util.h"

using namespace engram;
using namespace engram::apps;
using engram::testing::contains;
using engram::testing::error_of;
using engram::testing::TempDir;

namespace {

struct NoParams : nn::Module {
  std::string type_name() const override { return "NoParams"; }
};

// Reads the stream byte by byte, remembering per row and key the last bound value (state
// "last" [B, 26], i64) and the previous two tokens ("prev" [B, 2]), so a binding or query cut by a
// chunk boundary is still seen. At a query key ("?K") it puts logit 10 on K's value; with
// `constant`, it ignores the input and always favours '0' (and 'a' over the whole vocabulary).
class ToyLM : public LanguageModel {
 public:
  explicit ToyLM(bool constant) : constant_(constant) {}
  std::string kind() const override { return constant_ ? "constant" : "oracle"; }
  nn::Module& module() override { return module_; }
  int64_t vocab_size() const override { return 256; }
  LMState initial_state(int64_t B) const override {
    return {{"last", full({B, 26}, -1, DType::i64)}, {"prev", zeros({B, 2}, DType::i64)}};
  }
  Tensor forward(const Tensor& ids, LMState& state) override {
    saw_training_ = saw_training_ || module_.is_training();
    saw_grad_ = saw_grad_ || grad_enabled();
    const int64_t B = ids.size(0), T = ids.size(1), V = 256;
    std::vector<int64_t> x = ids.to_vector<int64_t>(), last = state[0].second.to_vector<int64_t>(),
                         prev = state[1].second.to_vector<int64_t>();
    std::vector<float> z(size_t(B * T * V), 0.0f);
    for (int64_t b = 0; b < B; ++b) {
      int64_t p2 = prev[b * 2], p1 = prev[b * 2 + 1];  // tokens at t-2, t-1
      for (int64_t t = 0; t < T; ++t) {
        const int64_t c = x[b * T + t];
        float* row = z.data() + (b * T + t) * V;
        if (constant_) {
          row['0'] = 2.0f, row['a'] = 5.0f;
        } else {
          if (p1 == '=' && p2 >= 'A' && p2 <= 'Z') last[b * 26 + (p2 - 'A')] = c;
          if (p1 == '?' && c >= 'A' && c <= 'Z' && last[b * 26 + (c - 'A')] >= 0)
            row[last[b * 26 + (c - 'A')]] = 10.0f;
        }
        p2 = p1, p1 = c;
      }
      prev[b * 2] = p2, prev[b * 2 + 1] = p1;
    }
    state = {{"last", from_vector(last, {B, 26})}, {"prev", from_vector(prev, {B, 2})}};
    return from_vector(z, {B, T, V});
  }
  Tensor forward_traced(const Tensor& ids, LMState& state, nn::NamedTensors&) override {
    return forward(ids, state);
  }
  bool saw_training_ = false, saw_grad_ = false;

 private:
  bool constant_;
  NoParams module_;
};

KVRecallConfig small_config() {
  KVRecallConfig c;
  c.keys = 8, c.values = 10, c.d_min = 5, c.d_max = 200, c.bind_every = 16;
  return c;
}

}  // namespace

TEST_CASE("kv_recall: the stream is deterministic per seed and uses only the task's alphabet") {
  const KVRecallConfig c = small_config();
  const std::string a = kv_recall_stream(c, 20000, 1), b = kv_recall_stream(c, 20000, 1);
  CHECK(a.size() == 20000);
  CHECK(a == b);
  CHECK(a != kv_recall_stream(c, 20000, 2));
  for (char ch : a) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch < 'A' + c.keys) ||
                    (ch >= '0' && ch < '0' + c.values) || ch == '=' || ch == '?';
    REQUIRE_MESSAGE(ok, "unexpected byte ", int(ch));
  }
  CHECK(kv_recall_stream(c, 0, 1).empty());
}

TEST_CASE("kv_recall: every query answers the most recent binding of its key, d in [d_min, d_max]") {
  for (const int64_t d_max : {5, 60, 200, 2000}) {
    KVRecallConfig c = small_config();
    c.d_max = d_max;
    c.keys = d_max == 60 ? 2 : 8;  // few keys: keys run out, rebinding after each query is common
    const std::string s = kv_recall_stream(c, 30000, 7 + d_max);
    const std::vector<KVRecallQuery> qs = kv_recall_queries(s);
    int64_t bindings = 0;
    for (size_t i = 0; i + 1 < s.size(); ++i) bindings += s[i] >= 'A' && s[i] <= 'Z' && s[i + 1] == '=';
    CHECK(int64_t(qs.size()) == bindings);  // one query per binding
    CHECK(bindings > 30000 / c.bind_every / 4);
    int64_t short_d = 0, long_d = 0;
    for (const KVRecallQuery& q : qs) {
      // Brute force: scan back from the query for the last "K=".
      int64_t j = q.answer_pos - 3;
      while (j >= 0 && !(s[j] == q.key && s[j + 1] == '=')) --j;
      REQUIRE(j >= 0);
      CHECK(q.value_pos == j + 2);
      CHECK(s[j + 2] == q.answer);
      CHECK(s[q.answer_pos - 2] == '?');
      CHECK(s[q.answer_pos - 1] == q.key);
      CHECK(q.distance() >= c.d_min);
      CHECK(q.distance() <= c.d_max);
      short_d += q.distance() < std::sqrt(double(c.d_min * c.d_max));
      long_d += q.distance() >= std::sqrt(double(c.d_min * c.d_max));
    }
    if (c.d_max > c.d_min) {  // log-uniform: about as many below the geometric mean as above
      CHECK(short_d > int64_t(qs.size()) / 4);
      CHECK(long_d > int64_t(qs.size()) / 4);
    }
  }
}

TEST_CASE("kv_recall: the parser finds queries with and without a binding") {
  const std::vector<KVRecallQuery> qs = kv_recall_queries("abA=3xx?A3B=1?C7?B1");
  REQUIRE(qs.size() == 3);
  CHECK((qs[0].key == 'A' && qs[0].answer == '3' && qs[0].value_pos == 4 && qs[0].answer_pos == 9));
  CHECK(qs[0].distance() == 5);
  CHECK((qs[1].key == 'C' && qs[1].value_pos == -1));
  CHECK((qs[2].key == 'B' && qs[2].answer == '1' && qs[2].value_pos == 12 && qs[2].distance() == 6));
}

TEST_CASE("kv_recall: probes place the answer exactly d after the bound value") {
  KVRecallConfig c = small_config();
  c.distractors = 3, c.lead_in = 5;
  Generator gen(3);
  for (const int64_t d : {3, 4, 8, 9, 12, 50, 777}) {
    for (int trial = 0; trial < 20; ++trial) {
      const KVRecallProbe p = kv_recall_probe(c, d, gen);
      REQUIRE(int64_t(p.text.size()) == p.answer_pos + 1);
      CHECK(p.answer_pos - p.value_pos == d);
      CHECK(p.value_pos == c.lead_in + 2);
      CHECK(p.text.substr(size_t(p.value_pos - 2), 3) == std::string{p.key, '=', p.answer});
      CHECK(p.text.substr(size_t(p.answer_pos - 2), 3) == std::string{'?', p.key, p.answer});
      CHECK(p.distractors == std::min<int64_t>(3, (d - 3) / 3));
      const std::vector<KVRecallQuery> qs = kv_recall_queries(p.text);
      REQUIRE(qs.size() == 1);
      CHECK(qs[0].value_pos == p.value_pos);
      CHECK(qs[0].distance() == d);
      // The distractors are bindings of other keys, in the gap.
      int64_t other = 0, same = 0;
      for (int64_t i = 0; i + 1 < int64_t(p.text.size()); ++i) {
        if (p.text[i] < 'A' || p.text[i] > 'Z' || p.text[i + 1] != '=') continue;
        if (p.text[i] == p.key) ++same;
        else {
          ++other;
          CHECK(i > p.value_pos);
          CHECK(i + 2 < p.answer_pos - 2);
        }
      }
      CHECK(same == 1);
      CHECK(other == p.distractors);
    }
  }
}

TEST_CASE("kv_recall: an oracle model scores 1.0 at every distance, a constant one chance") {
  KVRecallConfig c = small_config();
  c.distractors = 2;
  const std::vector<int64_t> ds = {3, 10, 40, 300};
  ToyLM oracle(false);
  oracle.module().train(true);
  for (const int64_t chunk : {int64_t(7), int64_t(1000)}) {  // state carried across chunks
    const KVRecallResult r = evaluate_kv_recall(oracle, c, ds, 40, chunk, 11);
    CHECK(r.distances == ds);
    CHECK(r.trials == std::vector<int64_t>(ds.size(), 40));
    for (size_t i = 0; i < ds.size(); ++i) {
      CHECK(r.accuracy[i] == 1.0);
      CHECK(r.accuracy_full[i] == 1.0);
    }
  }
  CHECK_FALSE(oracle.saw_training_);         // evaluated in eval mode, without recording
  CHECK_FALSE(oracle.saw_grad_);
  CHECK(oracle.module().is_training());      // and the flag is restored

  ToyLM constant(true);
  const KVRecallResult r = evaluate_kv_recall(constant, c, ds, 200, 64, 5);
  for (size_t i = 0; i < ds.size(); ++i) {
    CHECK(r.accuracy[i] > 0.02);   // the share of answers that are '0': about 1/10
    CHECK(r.accuracy[i] < 0.25);
    CHECK(r.accuracy_full[i] == 0.0);  // it always says 'a'
  }
  // Same seed, same probes; a distance's probes do not depend on the others evaluated with it.
  const std::vector<int64_t> one = {40};
  const KVRecallResult again = evaluate_kv_recall(constant, c, one, 200, 64, 5);
  CHECK(again.accuracy[0] == r.accuracy[2]);
}

TEST_CASE("kv_recall: the corpus file holds the stream") {
  TempDir dir;
  const KVRecallConfig c = small_config();
  const std::string path = dir.file("kv.txt");
  write_kv_recall_corpus(path, c, 5000, 9);
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  CHECK(ss.str() == kv_recall_stream(c, 5000, 9));
  CHECK(contains(error_of([&] { write_kv_recall_corpus(dir.file("no/such/dir/kv.txt"), c, 10, 1); }),
                 "cannot create"));
}

TEST_CASE("kv_recall: bad settings are errors naming the key") {
  auto bad = [](auto edit) {
    KVRecallConfig c;
    edit(c);
    return error_of([&] { check_kv_recall_config(c, "kv"); });
  };
  CHECK(contains(bad([](KVRecallConfig& c) { c.keys = 27; }), "kv.keys=27"));
  CHECK(contains(bad([](KVRecallConfig& c) { c.keys = 0; }), "kv.keys=0"));
  CHECK(contains(bad([](KVRecallConfig& c) { c.values = 11; }), "kv.values=11"));
  CHECK(contains(bad([](KVRecallConfig& c) { c.values = 1; }), "kv.values=1"));
  CHECK(contains(bad([](KVRecallConfig& c) { c.d_min = 2; }), "kv.d_min=2"));
  CHECK(contains(bad([](KVRecallConfig& c) { c.d_min = 50, c.d_max = 40; }), "kv.d_max=40"));
  CHECK(bad([](KVRecallConfig&) {}).empty());

  // Through a Config: the schema's ranges, then the cross-field check of kv_recall_config.
  auto schema = std::make_shared<const Schema>("t", kv_recall_fields("task"));
  Config cfg(schema);
  CHECK(kv_recall_config(cfg, "task").keys == KVRecallConfig{}.keys);
  CHECK(contains(error_of([&] { cfg.apply_override("task.keys=30"); }), "task.keys"));
  cfg.apply_override("task.d_min=100");
  cfg.apply_override("task.d_max=50");
  CHECK(contains(error_of([&] { kv_recall_config(cfg, "task"); }), "task.d_max=50"));
  cfg.apply_override("task.d_max=500");
  CHECK(kv_recall_config(cfg, "task").d_max == 500);

  ToyLM oracle(false);
  KVRecallConfig c;
  const std::vector<int64_t> two = {2};
  CHECK(contains(error_of([&] { evaluate_kv_recall(oracle, c, two, 4, 8, 1); }), "distance 2"));
  CHECK(contains(error_of([&] { Generator g; kv_recall_probe(c, 1, g); }), "distance 1"));
}
