// tests/test_episodic_cmr.cpp — multi-head episodic CMR (memory/cmr/episodic_cmr.h) and the
// attention+CMR blocks (memory/cmr/attention_cmr_blocks.h):
//   - the fused drift scan equals memory/cmr/context.h's drift applied step by step (values and
//     gradients), so the context rule lives in one place;
//   - slot choice by hand: reads see only earlier writes, ring keeps the last M, lowest_use
//     evicts the least-read slot, segments write one mean value every S tokens;
//   - a stream cut into calls gives exactly the outputs of the uncut stream (the carried state);
//   - gradchecks in f64 through several steps and two calls, for every read rule and policy, and
//     for the blocks with a per-block and a shared bank.
#include <doctest/doctest.h>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "autograd/tape.h"
#include "memory/cmr/attention_cmr_blocks.h"
#include "memory/cmr/context.h"
#include "tests/module_gradcheck.h"
#include "tests/test_util.h"

using namespace engram;
using namespace engram::cmr;
using engram::testing::max_abs_diff;

namespace {

EpisodicCMRConfig small_config() {
  EpisodicCMRConfig c;
  c.d_model = 6, c.heads = 2, c.head_dim = 3, c.slots = 3;
  return c;
}

GradcheckOptions tight() {
  GradcheckOptions o;
  o.atol = 1e-7, o.rtol = 1e-6;
  return o;
}

// Gradcheck of sum(w * y) over every parameter of `m` and the input, y from two calls of
// `run` (the second continues the first's state).
void check_module_gradient(nn::Module& m, const std::function<Tensor(const Tensor&)>& run,
                           const Tensor& x) {
  GradcheckResult res = engram::testing::module_gradcheck(m, run, x, tight(), 11);
  CHECK_MESSAGE(res.ok, res.message);
}

}  // namespace

TEST_CASE("episodic cmr: the fused drift scan is context.h's drift step by step, gradients too") {
  Generator g(3);
  const int64_t B = 2, T = 6, D = 4;
  Tensor cin = normalize(randn({B, T, D}, DType::f64, &g)), c0 = normalize(randn({B, D}, DType::f64, &g));
  Tensor beta = add(mul(rand({B, T}, DType::f64, &g), 0.8), 0.1);
  for (Tensor* t : {&cin, &c0, &beta}) t->requires_grad_(true);
  Tensor fused = cmr_drift_scan(cin, beta, c0);
  Tensor w = randn(fused.shape(), DType::f64, &g);
  backward(sum(mul(fused, w)));
  std::vector<Tensor> g_fused{raw::clone(cin.grad()), raw::clone(beta.grad()), raw::clone(c0.grad())};
  for (Tensor* t : {&cin, &c0, &beta}) t->set_grad(Tensor());
  std::vector<Tensor> steps;
  Tensor c = c0;
  for (int64_t t = 0; t < T; ++t) {
    c = drift(c, select(cin, 1, t), unsqueeze(select(beta, 1, t), 1));
    steps.push_back(c);
  }
  Tensor ref = stack(steps, 1);
  CHECK(max_abs_diff(fused, ref) < 1e-14);
  backward(sum(mul(ref, w)));
  CHECK(max_abs_diff(g_fused[0], cin.grad()) < 1e-12);
  CHECK(max_abs_diff(g_fused[1], beta.grad()) < 1e-12);
  CHECK(max_abs_diff(g_fused[2], c0.grad()) < 1e-12);
  // and every context stays unit length, as CMR's rho is chosen to keep it
  std::vector<double> norms = sum(mul(fused, fused), {-1}).to_vector<double>();
  for (double n : norms) CHECK(n == doctest::Approx(1.0).epsilon(1e-12));
}

TEST_CASE("episodic cmr: reads see only earlier writes; ring keeps the last M; segments of S") {
  Generator g(5);
  EpisodicCMRConfig c = small_config();
  c.slots = 2;
  CMRBank bank(c, &g);
  bank.to(DType::f64);
  const int64_t B = 1, T = 5;
  Tensor x = randn({B, T, c.d_model}, DType::f64, &g);
  CMRBankState s = initial_bank_state(c, B, DType::f64);
  BankWrites w = bank.write(x, s);
  REQUIRE(w.write_steps == std::vector<int64_t>{0, 1, 2, 3, 4});
  Tensor q = randn({B * c.heads, T, c.head_dim}, DType::f64, &g);
  ReadPlan plan = plan_reads(c, q, w, s);
  // candidates: 2 carried (empty) + 5 writes + the null slot; token t sees writes max(0,t-2)..t-1
  std::vector<double> hid = plan.hidden.to_vector<double>();
  const int64_t N = 2 + 5 + 1;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < N; ++j) {
      bool visible = j == N - 1 || (j >= 2 && j - 2 < t && j - 2 >= t - 2);
      CHECK_MESSAGE(hid[t * N + j] == (visible ? 0.0 : 1.0), "t=", t, " candidate ", j);
    }
  CMRBankState next = bank.next_state(w, plan);
  std::vector<double> at = next.written_at.to_vector<double>();
  CHECK(std::min(at[0], at[1]) == 3.0);  // the last two writes survive
  CHECK(std::max(at[0], at[1]) == 4.0);
  CHECK(next.position.item() == 5.0);

  // segments of 2: writes close positions 1 and 3; the value is the mean of the two features
  c.segment = 2;
  CMRBank seg(c, &g);
  seg.to(DType::f64);
  BankWrites ws = seg.write(x, initial_bank_state(c, B, DType::f64));
  REQUIRE(ws.write_steps == std::vector<int64_t>{1, 3});
  NoGradGuard ng;
  Tensor f = seg.features->forward(x);  // [1, T, H*dh]; head 0 is the first dh columns
  Tensor mean01 = mul(add(select(f, 1, 0), select(f, 1, 1)), 0.5);
  Tensor v0 = select(select(ws.values, 0, 0), 0, c.slots);  // row 0 = head 0, first new write
  CHECK(max_abs_diff(v0, slice(select(mean01, 0, 0), 0, 0, c.head_dim)) < 1e-14);
}

TEST_CASE("episodic cmr: lowest_use replaces the slot read least") {
  Generator g(6);
  EpisodicCMRConfig c = small_config();
  c.heads = 1, c.head_dim = 2, c.d_model = 2, c.slots = 2, c.policy = SlotPolicy::lowest_use;
  c.usage_decay = 1.0;
  CMRBank bank(c, &g);
  bank.to(DType::f64);
  Tensor x = randn({1, 4, 2}, DType::f64, &g);
  CMRBankState s = initial_bank_state(c, 1, DType::f64);
  BankWrites w = bank.write(x, s);
  // queries that read the write of step 0 strongly at steps 1..2, so at step 2 slot 1 (written at
  // step 1) is the least used and step 2's write replaces it; step 3 then sees writes 0 and 2
  std::vector<double> keys = raw::contiguous(w.keys).to_vector<double>();  // [1, 2 + 4, 2]
  std::vector<double> q(4 * 2, 0.0);
  for (int64_t t = 1; t < 4; ++t) q[t * 2] = 50 * keys[2 * 2], q[t * 2 + 1] = 50 * keys[2 * 2 + 1];
  ReadPlan plan = plan_reads(c, from_vector(q, {1, 4, 2}, DType::f64), w, s);
  std::vector<double> hid = plan.hidden.to_vector<double>();
  const int64_t N = 2 + 4 + 1;
  auto sees = [&](int64_t t, int64_t write) { return hid[t * N + 2 + write] == 0.0; };
  CHECK((sees(3, 0) && sees(3, 2) && !sees(3, 1)));
  CHECK(sees(2, 0));
  CHECK(sees(2, 1));
}

TEST_CASE("episodic cmr: a stream cut into calls reads exactly what the uncut stream reads") {
  for (int64_t segment : {1, 3}) {
    for (SlotPolicy policy : {SlotPolicy::ring, SlotPolicy::lowest_use}) {
      Generator g(7);
      EpisodicCMRConfig c = small_config();
      c.segment = segment, c.policy = policy, c.top_k = 2, c.pre_assoc = true;
      EpisodicCMR m(c, &g);
      m.to(DType::f64);
      NoGradGuard ng;
      Tensor x = randn({2, 12, c.d_model}, DType::f64, &g);
      CMRBankState s = initial_bank_state(c, 2, DType::f64);
      Tensor whole = m.forward(x, x, s);
      CMRBankState s2 = initial_bank_state(c, 2, DType::f64);
      std::vector<Tensor> parts;
      for (auto [a, b] : {std::pair{0, 5}, std::pair{5, 6}, std::pair{6, 12}}) {
        Tensor xi = slice(x, 1, a, b);
        parts.push_back(m.forward(xi, xi, s2));
      }
      CHECK_MESSAGE(max_abs_diff(whole, cat(parts, 1)) < 1e-13, "segment ", segment);
      CHECK(max_abs_diff(s.keys, s2.keys) < 1e-13);
      CHECK(max_abs_diff(s.segment_sum, s2.segment_sum) < 1e-13);
    }
  }
}

TEST_CASE("episodic cmr: gradchecked in f64 over two calls, every read rule and policy") {
  struct Case {
    ReadRule read;
    SlotPolicy policy;
    int64_t segment, top_k;
    bool pre_assoc;
  };
  for (Case k : {Case{ReadRule::softmax, SlotPolicy::ring, 1, 0, false},
                 Case{ReadRule::cosine, SlotPolicy::lowest_use, 2, 2, true},
                 Case{ReadRule::softmax, SlotPolicy::lowest_use, 1, 1, true}}) {
    Generator g(8);
    EpisodicCMRConfig c = small_config();
    c.read = k.read, c.policy = k.policy, c.segment = k.segment, c.top_k = k.top_k;
    c.pre_assoc = k.pre_assoc, c.temperature = 0.5;
    EpisodicCMR m(c, &g);
    m.to(DType::f64);
    if (k.pre_assoc) raw::copy_(m.reader->pre_assoc, randn(m.reader->pre_assoc.shape(), DType::f64, &g));
    Tensor x = randn({2, 7, c.d_model}, DType::f64, &g);
    auto run = [&](const Tensor& xi) {
      CMRBankState s = initial_bank_state(c, 2, DType::f64);
      Tensor y1 = m.forward(slice(xi, 1, 0, 4), slice(xi, 1, 0, 4), s);
      // the second call reads slots carried from the first (the gradient flows back through them)
      Tensor y2 = m.forward(slice(xi, 1, 4, 7), slice(xi, 1, 4, 7), s);
      return cat({y1, y2}, 1);
    };
    check_module_gradient(m, run, x);
  }
}

TEST_CASE("attention+cmr blocks: gradchecked in f64, per-block and shared bank, both orders") {
  Generator g(9);
  LocalBlockConfig local;
  local.d_model = 6, local.heads = 2, local.window = 3, local.ff_mult = 2;
  EpisodicCMRConfig c = small_config();
  Tensor x = randn({2, 6, 6}, DType::f64, &g);
  auto run_block = [&](MemoryLMBlock& blk, CMRBank* shared_bank) {
    return [&blk, shared_bank, &c](const Tensor& xi) {
      BlockState st;
      std::vector<Tensor> ys;
      CMRBankState bank_state = initial_bank_state(c, xi.size(0), DType::f64);
      for (auto [a, b] : {std::pair{0, 4}, std::pair{4, 6}}) {
        Tensor part = slice(xi, 1, a, b);
        if (!shared_bank) {
          ys.push_back(blk.forward(part, st, nullptr));
          continue;
        }
        SharedCMRBank sb{shared_bank->write(part, bank_state), bank_state, {}};
        ys.push_back(blk.forward(part, st, &sb));
        bank_state = shared_bank->next_state(sb.writes, sb.plan);
      }
      return cat(ys, 1);
    };
  };
  SUBCASE("local attention only") {
    LocalAttentionBlock b(local, &g);
    b.to(DType::f64);
    check_module_gradient(b, run_block(b, nullptr), x);
  }
  SUBCASE("parallel, per-block bank") {
    ParallelAttentionCMRBlock b(local, c, false, &g);
    b.to(DType::f64);
    check_module_gradient(b, run_block(b, nullptr), x);
  }
  SUBCASE("series, attention first, per-block bank") {
    SeriesAttentionCMRBlock b(local, c, false, false, &g);
    b.to(DType::f64);
    check_module_gradient(b, run_block(b, nullptr), x);
  }
  SUBCASE("series, memory first, shared bank") {
    SeriesAttentionCMRBlock b(local, c, true, true, &g);
    CMRBank bank(c, &g);
    b.to(DType::f64), bank.to(DType::f64);
    check_module_gradient(b, run_block(b, &bank), x);
  }
}

TEST_CASE("episodic cmr: bad settings and shapes are one-line errors naming them") {
  Generator g(1);
  EpisodicCMRConfig c = small_config();
  c.slots = 0;
  CHECK(engram::testing::contains(engram::testing::error_of([&] { EpisodicCMR m(c, &g); }), "slots"));
  c = small_config();
  c.beta_init = 1.0;
  CHECK(engram::testing::contains(engram::testing::error_of([&] { EpisodicCMR m(c, &g); }), "beta_init"));
  c = small_config();
  EpisodicCMR m(c, &g);
  CMRBankState s = initial_bank_state(c, 2, DType::f32);
  Tensor bad = randn({2, 3, 5});
  CHECK(engram::testing::contains(engram::testing::error_of([&] { m.forward(bad, bad, s); }),
                                  "[B, T, 6]"));
}
