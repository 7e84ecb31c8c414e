// tests/test_memory.cpp — the CRSD memory modules: values against naive references, gradchecks
// in f64 through several time steps (inputs and every parameter), and recurrent == sequence mode.
#include <doctest/doctest.h>

#include "autograd/gradcheck.h"
#include "memory/crsd/crsd.h"
#include "tests/test_util.h"

using namespace engram;
using namespace engram::testing;
using namespace engram::memory;

namespace {

// Gradchecks `run` with respect to `inputs` and every parameter of `m` (module already in f64).
void gradcheck_module(nn::Module& m, std::vector<Tensor> inputs, std::function<Tensor()> run,
                      double atol = 1e-5, double rtol = 1e-3) {
  std::vector<Tensor> all = inputs;
  std::vector<bool> flags(inputs.size(), true);
  for (auto& [name, p] : m.named_parameters()) {
    all.push_back(p);
    flags.push_back(true);
  }
  GradcheckOptions opt;
  opt.atol = atol;
  opt.rtol = rtol;
  GradcheckResult r = gradcheck([&](const std::vector<Tensor>&) { return run(); }, all, flags, opt);
  CHECK_MESSAGE(r.ok, m.type_name() << ": " << r.message);
}

}  // namespace

TEST_CASE("hebbian_scan matches a per-step loop of ordinary ops, values and gradients") {
  Generator g(3);
  const int64_t B = 2, T = 7, dk = 3, dv = 4;
  Tensor q = randn({B, T, dk}, DType::f64, &g), k = randn({B, T, dk}, DType::f64, &g);
  Tensor v = randn({B, T, dv}, DType::f64, &g), h0 = randn({B, dk, dv}, DType::f64, &g);
  for (bool detach_memory : {false, true}) {
    Tensor gam = full({}, 0.8, DType::f64), eta = full({}, 0.3, DType::f64);
    for (Tensor* t : {&q, &k, &v, &gam, &eta}) {
      t->impl()->grad.reset();
      t->requires_grad_(true);
    }
    // Reference: the loop PyTorch users would write.
    Tensor H = h0;
    std::vector<Tensor> rs;
    for (int64_t t = 0; t < T; ++t) {
      Tensor kv = matmul(unsqueeze(select(k, 1, t), -1), unsqueeze(select(v, 1, t), 1));
      H = add(mul(detach_memory ? detach(H) : H, gam), mul(kv, eta));
      rs.push_back(squeeze(matmul(unsqueeze(select(q, 1, t), 1), H), 1));
    }
    Tensor ref = stack(rs, 1);
    Tensor w = randn(ref.shape(), DType::f64, &g);
    backward(sum(mul(ref, w)));
    std::vector<Tensor> ref_grads;
    for (Tensor* t : {&q, &k, &v, &gam, &eta}) {
      ref_grads.push_back(t->grad());
      t->impl()->grad.reset();
    }
    HebbianScan fused = hebbian_scan(q, k, v, gam, eta, h0, detach_memory, /*chunk=*/3);
    CHECK(max_abs_diff(fused.recall, ref) < 1e-12);
    CHECK(max_abs_diff(fused.state, H) < 1e-12);
    backward(sum(mul(fused.recall, w)));
    int i = 0;
    for (Tensor* t : {&q, &k, &v, &gam, &eta}) {
      INFO("input " << i << " detach " << detach_memory);
      CHECK(max_abs_diff(t->grad(), ref_grads[i++]) < 1e-10);
    }
  }
}

TEST_CASE("HebbianMemory recalls a stored association and gradchecks through time") {
  HebbianOptions opt;
  opt.gamma_init = 0.5;
  opt.eta_init = 1.0;
  HebbianMemory mem(4, 3, opt);
  // store (k, v) at t=0; query with q = k at t=1 while writing an orthogonal key
  Tensor k = from_vector<float>({1, 0, 0, 0, 0, 1, 0, 0}, {1, 2, 4});
  Tensor v = from_vector<float>({1, 2, 3, 0, 0, 0}, {1, 2, 3});
  Tensor q = from_vector<float>({0, 1, 0, 0, 1, 0, 0, 0}, {1, 2, 4});
  auto out = mem.forward(q, k, v);
  auto r = out.recall.to_vector<float>();
  // t=1: H = 0.5 * (1.0 * e0 v0^T) + 1.0 * e1 * 0 => recall of e0 = 0.5 * v0 * softplus(eta_raw)
  double eta = mem.eta().item();
  CHECK(r[3] == doctest::Approx(0.5 * eta * 1));
  CHECK(r[4] == doctest::Approx(0.5 * eta * 2));
  CHECK(r[5] == doctest::Approx(0.5 * eta * 3));
  CHECK(eta == doctest::Approx(1.0));

  for (int64_t top_k : {0, 2}) {
    HebbianOptions o;
    o.top_k = top_k;
    o.chunk = 2;
    HebbianMemory m(3, 4, o);
    m.to(DType::f64);
    Generator g(11);
    Tensor qq = randn({2, 5, 3}, DType::f64, &g), kk = randn({2, 5, 3}, DType::f64, &g);
    Tensor vv = randn({2, 5, 4}, DType::f64, &g), h0 = randn({2, 3, 4}, DType::f64, &g);
    gradcheck_module(m, {qq, kk, vv, h0}, [&] {
      auto o2 = m.forward(qq, kk, vv, h0);
      return add(sum(square(o2.recall)), sum(o2.state));
    });
  }
}

TEST_CASE("EpisodicBuffer writes to empty slots first, then replaces the least important") {
  EpisodicOptions opt;
  opt.slots = 2;
  opt.temperature = 0.05;
  EpisodicBuffer buf(2, 1, opt);
  EpisodicState st = buf.initial_state(1);
  auto step = [&](std::vector<float> key, float value) {
    Tensor k = from_vector<float>(key, {1, 2});
    return buf.step(k, k, from_vector<float>({value}, {1, 1}), st).item();
  };
  CHECK(step({1, 0}, 10) == doctest::Approx(0.0));   // empty buffer recalls nothing
  CHECK(st.filled.to_vector<float>() == std::vector<float>{1, 0});
  // one filled slot takes all the attention, however dissimilar
  CHECK(step({0, 1}, 20) == doctest::Approx(10.0));
  CHECK(st.filled.to_vector<float>() == std::vector<float>{1, 1});
  // query e0 now recalls ~10 (sharp temperature)
  CHECK(step({1, 0}, 30) == doctest::Approx(10.0).epsilon(1e-3));
  // that write (a repeat of key e0, novelty 0) replaced the least important slot: slot 0 had
  // importance 1 * decay^2, slot 1 had 1 * decay (both novel when written) -> slot 0 replaced
  auto vals = st.values.to_vector<float>();
  CHECK(vals[0] == doctest::Approx(30.0));
  CHECK(vals[1] == doctest::Approx(20.0));
}

TEST_CASE("EpisodicBuffer gradchecks through several steps (top-k and recency window too)") {
  for (int variant = 0; variant < 3; ++variant) {
    EpisodicOptions opt;
    opt.slots = 3;
    opt.temperature = 0.5;
    if (variant == 1) opt.top_k = 2;
    if (variant == 2) opt.recency_window = 2;
    EpisodicBuffer buf(3, 2, opt);
    Generator g(5 + variant);
    Tensor q = randn({2, 5, 3}, DType::f64, &g), k = randn({2, 5, 3}, DType::f64, &g);
    Tensor v = randn({2, 5, 2}, DType::f64, &g);
    INFO("variant " << variant);
    gradcheck_module(buf, {q, k, v}, [&] {
      EpisodicState st = buf.initial_state(2, DType::f64);
      return sum(square(buf.forward(q, k, v, st)));
    });
  }
}

// The fused sequence (forward, episodic_scan) against step() at every t: recalls, every slot
// tensor after the last step and the gradients of q, k, v and of the start keys and values, in
// f64, through replacement (T > slots), from a filled start state, with each option.
TEST_CASE("EpisodicBuffer: the fused scan equals step() at every t, values and gradients") {
  for (int variant = 0; variant < 5; ++variant) {
    EpisodicOptions opt;
    opt.slots = 4;
    opt.temperature = 0.3;
    opt.decay = 0.9;
    if (variant == 1) opt.top_k = 2;
    if (variant == 2) opt.recency_window = 3;
    if (variant == 3) opt.detach_memory = true;
    if (variant == 4) opt.top_k = 3, opt.recency_window = 4;
    INFO("variant " << variant);
    EpisodicBuffer buf(3, 2, opt);
    Generator g(40 + variant);
    const int64_t B = 3, T = 9;
    Tensor q = randn({B, T, 3}, DType::f64, &g), k = randn({B, T, 3}, DType::f64, &g);
    Tensor v = randn({B, T, 2}, DType::f64, &g);
    // a start state with two filled slots per row (different ones), their own ages and importance
    EpisodicState start = buf.initial_state(B, DType::f64);
    start.keys = randn({B, 4, 3}, DType::f64, &g), start.values = randn({B, 4, 2}, DType::f64, &g);
    start.filled = from_vector<double>({1, 1, 0, 0, 0, 1, 0, 1, 1, 0, 1, 0}, {B, 4});
    start.importance = mul(start.filled, rand({B, 4}, DType::f64, &g));
    start.age = mul(start.filled, from_vector<double>({2, 5, 0, 0, 0, 1, 0, 4, 3, 0, 6, 0}, {B, 4}));
    Tensor wr = randn({B, T, 2}, DType::f64, &g), wk = randn({B, 4, 3}, DType::f64, &g),
           wv = randn({B, 4, 2}, DType::f64, &g);
    auto run = [&](bool fused) {
      std::vector<Tensor> leaves;
      for (const Tensor& x : {q, k, v, start.keys, start.values}) {
        leaves.push_back(raw::clone(x));
        leaves.back().requires_grad_();
      }
      EpisodicState st = start;
      st.keys = leaves[3], st.values = leaves[4];
      Tensor recall;
      if (fused) {
        recall = buf.forward(leaves[0], leaves[1], leaves[2], st);
      } else {
        std::vector<Tensor> rs;
        for (int64_t t = 0; t < T; ++t)
          rs.push_back(buf.step(select(leaves[0], 1, t), select(leaves[1], 1, t),
                                select(leaves[2], 1, t), st));
        recall = stack(rs, 1);
      }
      Tensor loss = add(add(sum(mul(recall, wr)), sum(mul(st.keys, wk))), sum(mul(st.values, wv)));
      std::vector<Tensor> out{recall, st.keys, st.values, st.importance, st.age, st.filled};
      if (loss.requires_grad()) {
        backward(loss);
        for (Tensor& l : leaves) out.push_back(l.grad().defined() ? l.grad() : zeros_like(l));
      } else {
        for (Tensor& l : leaves) out.push_back(zeros_like(l));
      }
      return out;
    };
    std::vector<Tensor> fused = run(true), reference = run(false);
    const char* names[] = {"recall", "keys", "values", "importance", "age", "filled",
                           "dq", "dk", "dv", "dkeys0", "dvalues0"};
    for (size_t i = 0; i < fused.size(); ++i) {
      INFO(names[i]);
      CHECK(max_abs_diff(fused[i], reference[i]) < 1e-12);
    }
    CHECK(max_abs_diff(fused[6], zeros_like(fused[6])) > 0.0);  // the reads' gradients reached q
    if (!opt.detach_memory) CHECK(max_abs_diff(fused[7], zeros_like(fused[7])) > 0.0);  // and the writes' reached k
  }
}

static CRSDConfig tiny_config() {
  CRSDConfig c;
  c.vocab_size = 7;
  c.d_model = 6;
  c.d_mem = 3;
  c.layers = 2;
  c.reservoir.size = 5;
  c.episodic.slots = 3;
  c.hebbian.chunk = 2;
  return c;
}

TEST_CASE("CRSDCell gradchecks in f64 over several steps, input and every parameter") {
  CRSDConfig c = tiny_config();
  Generator g(21);
  CRSDCell cell(c, &g);
  cell.to(DType::f64);
  Tensor u = randn({2, 4, c.d_model}, DType::f64, &g);
  gradcheck_module(cell, {u}, [&] {
    CRSDCellState st = cell.initial_state(2, DType::f64);
    return sum(square(cell.forward(u, st)));
  });
}

TEST_CASE("CRSD language model: recurrent (token by token) and sequence modes agree") {
  CRSDConfig c = tiny_config();
  Generator g(8);
  CRSDLanguageModel lm(c, &g);
  Tensor ids = randint(0, c.vocab_size, {2, 9}, &g);
  CRSDLanguageModel::State seq_state;
  Tensor seq_logits = lm.forward(ids, seq_state);
  CHECK(seq_logits.shape() == Shape{2, 9, c.vocab_size});
  CRSDLanguageModel::State rec_state;
  std::vector<Tensor> steps;
  for (int64_t t = 0; t < 9; ++t) steps.push_back(lm.forward(raw::narrow(ids, 1, t, 1), rec_state));
  Tensor rec_logits = cat(steps, 1);
  CHECK(max_abs_diff(seq_logits, rec_logits) < 1e-5);
  CHECK(max_abs_diff(seq_state[1].hebbian, rec_state[1].hebbian) < 1e-5);
  CHECK(max_abs_diff(seq_state[0].episodic.values, rec_state[0].episodic.values) < 1e-5);
  tape().clear();
}

TEST_CASE("CRSD language model gradchecks end to end in f64 (embedding to logits)") {
  CRSDConfig c = tiny_config();
  c.layers = 1;
  Generator g(9);
  CRSDLanguageModel lm(c, &g);
  lm.to(DType::f64);
  Tensor ids = randint(0, c.vocab_size, {1, 3}, &g);
  Tensor target = randint(0, c.vocab_size, {3}, &g);
  gradcheck_module(lm, {}, [&] {
    CRSDLanguageModel::State st;
    Tensor logits = lm.forward(ids, st);
    return cross_entropy(reshape(logits, {3, c.vocab_size}), target);
  });
}

TEST_CASE("memory modules reject bad shapes with messages that name them") {
  HebbianMemory mem(4, 3);
  CHECK_THROWS_WITH_AS(mem.forward(zeros({1, 2, 5}), zeros({1, 2, 5}), zeros({1, 2, 3})),
                       doctest::Contains("HebbianMemory"), Error);
  CRSDConfig c = tiny_config();
  CRSDLanguageModel lm(c);
  CRSDLanguageModel::State st;
  CHECK_THROWS_WITH_AS(lm.forward(zeros({2, 3}), st), doctest::Contains("i64"), Error);
}
