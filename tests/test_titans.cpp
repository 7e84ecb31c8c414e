// tests/test_titans.cpp — Titans' neural memory module, the MAG and gated hybrid blocks
// (memory/titans/) and the memory language models around them (apps/common/memory_lm.h):
//   - gradchecks in f64 through several steps and across two calls (the state carries the graph);
//   - chunk = 1 is the sequential rule, and a stream cut at chunk boundaries equals the uncut one;
//   - every memory LM kind, cut into calls, gives the logits of the uncut stream (the carried
//     state is exactly what the model would have had), in f64;
//   - the hybrid gate is logged per token and layer, in (0, 1) or summing to 1.
#include <doctest/doctest.h>

#include "apps/common/memory_lm.h"
#include "apps/common/trainer.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "autograd/tape.h"
#include "memory/titans/memory_blocks.h"
#include "tests/module_gradcheck.h"
#include "tests/test_util.h"

using namespace engram;
using namespace engram::titans;
using engram::testing::max_abs_diff;

namespace {

NeuralMemoryConfig small_memory(int64_t chunk) {
  NeuralMemoryConfig c;
  c.d_model = 6, c.heads = 2, c.head_dim = 3, c.chunk = chunk, c.max_lr = 0.2;
  return c;
}

void check_gradient(nn::Module& m, const std::function<Tensor(const Tensor&)>& run, const Tensor& x) {
  GradcheckResult res = engram::testing::module_gradcheck(m, run, x);
  CHECK_MESSAGE(res.ok, res.message);
}

// y of two calls over x's first `cut` tokens and the rest, the state carried.
template <class F> Tensor two_calls(const Tensor& x, int64_t cut, F&& call) {
  Tensor a = call(slice(x, 1, 0, cut)), b = call(slice(x, 1, cut, x.size(1)));
  return cat({a, b}, 1);
}

}  // namespace

TEST_CASE("titans neural memory: gradchecked in f64 over two calls, chunks of 1 and 3, depth 1 and 2") {
  for (auto [chunk, depth] : {std::pair{1, 1}, std::pair{3, 1}, std::pair{1, 2}, std::pair{3, 2}}) {
    CAPTURE(chunk);
    CAPTURE(depth);
    Generator g(2);
    NeuralMemoryConfig c = small_memory(chunk);
    c.depth = depth;
    NeuralMemory m(c, &g);
    m.to(DType::f64);
    if (depth == 1)
      raw::copy_(m.initial_memory, mul(randn(m.initial_memory.shape(), DType::f64, &g), 0.3));
    Tensor x = randn({2, 7, 6}, DType::f64, &g);
    check_gradient(m, [&](const Tensor& xi) {
      NeuralMemoryState s;
      return two_calls(xi, 4, [&](const Tensor& part) { return m.forward(part, s); });
    }, x);
  }
}

TEST_CASE("titans neural memory: a stream cut at chunk boundaries equals the uncut stream") {
  Generator g(3);
  NeuralMemoryConfig c = small_memory(4);
  c.depth = 2;
  NeuralMemory m(c, &g);
  m.to(DType::f64);
  NoGradGuard ng;
  Tensor x = randn({2, 12, 6}, DType::f64, &g);
  NeuralMemoryState whole_state, cut_state;
  Tensor whole = m.forward(x, whole_state);
  Tensor cut = two_calls(x, 8, [&](const Tensor& part) { return m.forward(part, cut_state); });
  CHECK(max_abs_diff(whole, cut) < 1e-13);
  CHECK(max_abs_diff(whole_state.memory, cut_state.memory) < 1e-13);
  CHECK(max_abs_diff(whole_state.memory2, cut_state.memory2) < 1e-13);
  // the gates start where the config puts them, whatever the token
  std::vector<double> theta = m.last_theta.to_vector<double>();
  for (double t : theta) CHECK(t == doctest::Approx(0.2 * 0.5).epsilon(0.05));
}

TEST_CASE("titans neural memory: max_lr x chunk > 1 is refused (the chunked update diverges)") {
  Generator g(1);
  NeuralMemoryConfig c = small_memory(16);
  c.max_lr = 0.1;
  CHECK(engram::testing::contains(engram::testing::error_of([&] { NeuralMemory m(c, &g); }),
                                  "max_lr 0.1 x chunk 16 = 1.6 > 1"));
}

TEST_CASE("titans blocks: MAG and the gated hybrid gradchecked in f64 over two calls") {
  Generator g(4);
  cmr::LocalBlockConfig local;
  local.d_model = 6, local.heads = 2, local.window = 3, local.ff_mult = 2;
  cmr::EpisodicCMRConfig epi;
  epi.d_model = 6, epi.heads = 2, epi.head_dim = 3, epi.slots = 3;
  Tensor x = randn({2, 6, 6}, DType::f64, &g);
  auto run = [](cmr::MemoryLMBlock& b) {
    return [&b](const Tensor& xi) {
      cmr::BlockState st;
      return two_calls(xi, 4, [&](const Tensor& part) { return b.forward(part, st, nullptr); });
    };
  };
  SUBCASE("MAG with 2 persistent tokens") {
    local.persistent = 2;
    MAGBlock b(local, small_memory(2), &g);
    b.to(DType::f64);
    check_gradient(b, run(b), x);
  }
  SUBCASE("hybrid, sigmoid gate") {
    GatedHybridBlock b(local, small_memory(2), epi, false, HybridGate::sigmoid, &g);
    b.to(DType::f64);
    check_gradient(b, run(b), x);
    NoGradGuard ng;
    cmr::BlockState st;
    b.forward(x, st, nullptr);
    REQUIRE(b.last_gate.shape() == Shape{2, 6});
    for (double v : b.last_gate.to_vector<double>()) CHECK((v > 0 && v < 1));
  }
  SUBCASE("hybrid, softmax over attention, neural and episodic") {
    GatedHybridBlock b(local, small_memory(2), epi, false, HybridGate::softmax, &g);
    b.to(DType::f64);
    check_gradient(b, run(b), x);
    NoGradGuard ng;
    cmr::BlockState st;
    b.forward(x, st, nullptr);
    REQUIRE(b.last_gate.shape() == Shape{2, 6, 3});
    std::vector<double> s = sum(b.last_gate, {2}).to_vector<double>();
    for (double v : s) CHECK(v == doctest::Approx(1.0));
  }
}

TEST_CASE("memory LMs: every kind cut into calls gives the logits of the uncut stream (f64)") {
  for (std::string kind : apps::memory_lm_kinds()) {
    for (std::string placement : {"per_block", "shared"}) {
      if (placement == "shared" && (kind == "local_attention" || kind == "titans_mag")) continue;
      CAPTURE(kind);
      CAPTURE(placement);
      apps::Config cfg(apps::lm_schema("titans_test"));
      for (std::string s : {"model.d_model=8", "model.layers=2", "model.heads=2", "model.window=5",
                            "model.memory_heads=2", "model.memory_slots=4", "model.memory_segment=2",
                            "model.titans_chunk=3", "model.titans_max_lr=0.3", "model.titans_depth=2",
                            "model.memory_policy=lowest_use",
                            "model.memory_top_k=2", "model.persistent=2"})
        cfg.apply_override(s);
      cfg.set("model.kind", kind, "test");
      cfg.set("model.memory_placement", placement, "test");
      Generator g(5);
      auto lm = apps::make_language_model(cfg, 32, &g);
      lm->module().to(DType::f64);
      NoGradGuard ng;
      Tensor ids = randint(0, 32, {2, 18}, &g);
      apps::LMState whole_state = lm->initial_state(2), cut_state = lm->initial_state(2);
      Tensor whole = lm->forward(ids, whole_state);
      // cut at 6 and 12: multiples of the segment (2) and of the chunk (3)
      std::vector<Tensor> parts;
      for (auto [a, b] : {std::pair{0, 6}, std::pair{6, 12}, std::pair{12, 18}})
        parts.push_back(lm->forward(slice(ids, 1, a, b), cut_state));
      CHECK(max_abs_diff(whole, cat(parts, 1)) < 1e-12);
      if (kind == "hybrid") {
        std::vector<Tensor> gates = apps::memory_lm_gates(*lm);
        CHECK(gates.size() == 2);
      }
    }
  }
}
