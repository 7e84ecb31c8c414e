// tests/test_titans_ops.cpp — the fused Titans linear memory (autograd/titans_ops.cpp; Behrouz,
// Zhong & Mirrokni 2024, arXiv:2501.00663) against independent references:
//   y_t = M_{t-1} q_t ;  e_t = 2 (M0_c k_t - v_t) ;  S_t = eta_t S_{t-1} - theta_t e_t k_t^T ;
//   M_t = (1 - alpha_t) M_{t-1} + S_t,   M0_c = M entering chunk c.
// (1) a token-by-token loop of plain autograd ops, values and every input's gradient (the tape
//     differentiates through M0_c, so the second-order terms are checked too); (2) chunk 1 against
//     a hand-written sequential loop with the gradient at M_{t-1}; (3) one chunk with no momentum
//     against the closed form where every gradient is taken at m0; (4) f32 against f64; (5) shape
//     errors. The registry (autograd/opinfo_titans.cpp) gradchecks it against finite differences.
#include <doctest/doctest.h>

#include "autograd/ops.h"
#include "tests/test_util.h"

using namespace engram;
using namespace engram::testing;

namespace {

struct Inputs {
  Tensor q, k, v, theta, eta, alpha, m0, s0;
  std::vector<Tensor*> all() { return {&q, &k, &v, &theta, &eta, &alpha, &m0, &s0}; }
};

Inputs make_inputs(int64_t B, int64_t T, int64_t dk, int64_t dv, uint64_t seed, DType dt = DType::f64) {
  Generator g(seed);
  auto unif = [&](double lo, double hi) {
    std::vector<double> x(B * T);
    for (double& e : x) e = lo + (hi - lo) * g.uniform();
    return from_vector(x, {B, T}, dt);
  };
  Inputs in;
  in.q = randn({B, T, dk}, dt, &g);
  in.k = randn({B, T, dk}, dt, &g);
  in.v = randn({B, T, dv}, dt, &g);
  in.theta = unif(0.05, 0.5);
  in.eta = unif(0.3, 0.9);
  in.alpha = unif(0.05, 0.3);
  in.m0 = randn({B, dv, dk}, dt, &g);
  in.s0 = randn({B, dv, dk}, dt, &g);
  return in;
}

// The obvious version: one token at a time with ordinary differentiable ops (the loop a PyTorch
// user would write). M, S are [B, dv, dk]; vectors are carried as [B, n, 1] columns.
TitansMemoryScan reference(const Inputs& in, bool with_s0, int64_t chunk) {
  const int64_t B = in.q.shape()[0], T = in.q.shape()[1], dk = in.q.shape()[2];
  const int64_t dv = in.v.shape()[2];
  Tensor M = in.m0;
  Tensor S = with_s0 ? in.s0 : zeros({B, dv, dk}, in.q.dtype());
  Tensor M0;
  std::vector<Tensor> ys;
  for (int64_t t = 0; t < T; ++t) {
    if (t % chunk == 0) M0 = M;  // the chunk's gradients are all taken here
    Tensor qt = unsqueeze(select(in.q, 1, t), -1), kt = unsqueeze(select(in.k, 1, t), -1);
    Tensor vt = unsqueeze(select(in.v, 1, t), -1);
    auto gate = [&](const Tensor& x) { return reshape(select(x, 1, t), {B, 1, 1}); };
    ys.push_back(squeeze(matmul(M, qt), -1));                          // y_t = M_{t-1} q_t
    Tensor e = mul(sub(matmul(M0, kt), vt), 2.0);                       // e_t = 2 (M0 k - v)
    Tensor grad = matmul(e, transpose(kt, 1, 2));                       // e_t k_t^T
    S = sub(mul(gate(in.eta), S), mul(gate(in.theta), grad));          // momentum
    M = add(mul(1.0 - gate(in.alpha), M), S);                          // forgetting
  }
  return {stack(ys, 1), M, S};
}

// loss = <wy, y> + <wm, M> + <ws, S>, so every output's gradient flows.
struct Weights {
  Tensor wy, wm, ws;
};
Tensor project(const TitansMemoryScan& s, const Weights& w) {
  return add(add(sum(mul(s.retrieved, w.wy)), sum(mul(s.memory, w.wm))), sum(mul(s.momentum, w.ws)));
}

// Runs fn with every input (s0 only when used) requiring grad; returns outputs and gradients.
struct Run {
  TitansMemoryScan out;
  std::vector<Tensor> grads;  // q, k, v, theta, eta, alpha, m0, s0 (s0 undefined if unused)
};
Run run(Inputs& in, bool with_s0, const Weights& w,
        const std::function<TitansMemoryScan(const Inputs&)>& fn) {
  for (Tensor* t : in.all()) {
    t->impl()->grad.reset();
    t->requires_grad_(true);
  }
  Run r;
  r.out = fn(in);
  backward(project(r.out, w));
  for (Tensor* t : in.all()) {
    r.grads.push_back(t == &in.s0 && !with_s0 ? Tensor() : t->grad());
    t->impl()->grad.reset();
    t->requires_grad_(false);
  }
  return r;
}

const char* kNames[] = {"q", "k", "v", "theta", "eta", "alpha", "m0", "s0"};

}  // namespace

TEST_CASE("titans_linear_memory equals a token-by-token loop of plain ops, values and gradients") {
  const int64_t B = 2, T = 7, dk = 3, dv = 4;
  double worst_out = 0, worst_grad = 0;
  for (int64_t chunk : {int64_t(1), int64_t(2), int64_t(3), T}) {
    for (bool with_s0 : {false, true}) {
      INFO("chunk " << chunk << " s0 " << with_s0);
      Inputs in = make_inputs(B, T, dk, dv, 10 + chunk);
      Generator g(5);
      Weights w{randn({B, T, dv}, DType::f64, &g), randn({B, dv, dk}, DType::f64, &g),
                randn({B, dv, dk}, DType::f64, &g)};
      Run ref = run(in, with_s0, w, [&](const Inputs& x) { return reference(x, with_s0, chunk); });
      Run got = run(in, with_s0, w, [&](const Inputs& x) {
        return titans_linear_memory(x.q, x.k, x.v, x.theta, x.eta, x.alpha, x.m0,
                                    with_s0 ? x.s0 : Tensor(), chunk);
      });
      double e = std::max({max_abs_diff(got.out.retrieved, ref.out.retrieved),
                           max_abs_diff(got.out.memory, ref.out.memory),
                           max_abs_diff(got.out.momentum, ref.out.momentum)});
      CHECK(e < 1e-12);
      worst_out = std::max(worst_out, e);
      for (size_t i = 0; i < ref.grads.size(); ++i) {
        if (!ref.grads[i].defined()) continue;
        INFO("gradient of " << kNames[i]);
        REQUIRE(got.grads[i].defined());
        double ge = max_abs_diff(got.grads[i], ref.grads[i]);
        CHECK(ge < 1e-10);
        worst_grad = std::max(worst_grad, ge);
      }
    }
  }
  MESSAGE("titans vs plain ops: max |output diff| " << worst_out << ", max |grad diff| " << worst_grad);
}

TEST_CASE("titans_linear_memory with m0 an expand()ed shared memory sums its gradient back") {
  const int64_t B = 3, T = 5, dk = 2, dv = 3;
  Inputs in = make_inputs(B, T, dk, dv, 7);
  Generator g(8);
  Tensor base = randn({1, dv, dk}, DType::f64, &g);
  Tensor wy = randn({B, T, dv}, DType::f64, &g);
  base.requires_grad_(true);
  TitansMemoryScan fused = titans_linear_memory(in.q, in.k, in.v, in.theta, in.eta, in.alpha,
                                                expand(base, {B, dv, dk}), Tensor(), 2);
  backward(sum(mul(fused.retrieved, wy)));
  Tensor got = base.grad();
  base.impl()->grad.reset();
  Inputs ref_in = in;
  ref_in.m0 = expand(base, {B, dv, dk});
  TitansMemoryScan ref = reference(ref_in, false, 2);
  CHECK(max_abs_diff(fused.retrieved, ref.retrieved) < 1e-12);
  backward(sum(mul(ref.retrieved, wy)));
  REQUIRE(got.defined());
  CHECK(got.shape() == (Shape{1, dv, dk}));
  CHECK(max_abs_diff(got, base.grad()) < 1e-10);
}

TEST_CASE("titans_linear_memory with chunk 1 is the sequential rule (gradient at M_{t-1})") {
  const int64_t B = 2, T = 6, dk = 3, dv = 2;
  Inputs in = make_inputs(B, T, dk, dv, 21);
  TitansMemoryScan fused =
      titans_linear_memory(in.q, in.k, in.v, in.theta, in.eta, in.alpha, in.m0, in.s0, 1);
  std::vector<double> q = in.q.to_vector<double>(), k = in.k.to_vector<double>(),
                      v = in.v.to_vector<double>(), th = in.theta.to_vector<double>(),
                      et = in.eta.to_vector<double>(), al = in.alpha.to_vector<double>(),
                      m0 = in.m0.to_vector<double>(), s0 = in.s0.to_vector<double>();
  std::vector<double> y(B * T * dv), Mall(B * dv * dk), Sall(B * dv * dk);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<double> M(m0.begin() + b * dv * dk, m0.begin() + (b + 1) * dv * dk);
    std::vector<double> S(s0.begin() + b * dv * dk, s0.begin() + (b + 1) * dv * dk);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t bt = b * T + t;
      std::vector<double> e(dv);
      for (int64_t i = 0; i < dv; ++i) {
        double yi = 0, mk = 0;
        for (int64_t j = 0; j < dk; ++j) {
          yi += M[i * dk + j] * q[bt * dk + j];
          mk += M[i * dk + j] * k[bt * dk + j];  // gradient at the current weights
        }
        y[bt * dv + i] = yi;
        e[i] = 2 * (mk - v[bt * dv + i]);
      }
      for (int64_t i = 0; i < dv; ++i)
        for (int64_t j = 0; j < dk; ++j) {
          double& s = S[i * dk + j];
          s = et[bt] * s - th[bt] * e[i] * k[bt * dk + j];
          M[i * dk + j] = (1 - al[bt]) * M[i * dk + j] + s;
        }
    }
    std::copy(M.begin(), M.end(), Mall.begin() + b * dv * dk);
    std::copy(S.begin(), S.end(), Sall.begin() + b * dv * dk);
  }
  double e = std::max({max_abs_diff(fused.retrieved.to_vector<double>(), y),
                       max_abs_diff(fused.memory.to_vector<double>(), Mall),
                       max_abs_diff(fused.momentum.to_vector<double>(), Sall)});
  MESSAGE("titans chunk 1 vs sequential loop: max |diff| " << e);
  CHECK(e < 1e-12);
}

TEST_CASE("titans_linear_memory as one chunk without momentum has every gradient at m0") {
  // With eta = 0 and s0 = 0, S_t = -theta_t e_t k_t^T with e_t = 2 (m0 k_t - v_t) fixed in
  // advance, so M_{t-1} = P_{t-1} m0 - sum_{s<t} (prod_{s<r<t} (1 - alpha_r)) theta_s e_s k_s^T
  // with P_{t-1} = prod_{r<t} (1 - alpha_r): built here directly, term by term.
  const int64_t B = 2, T = 5, dk = 3, dv = 2;
  Inputs in = make_inputs(B, T, dk, dv, 33);
  in.eta = zeros({B, T}, DType::f64);
  TitansMemoryScan fused =
      titans_linear_memory(in.q, in.k, in.v, in.theta, in.eta, in.alpha, in.m0, Tensor(), T);
  std::vector<double> q = in.q.to_vector<double>(), k = in.k.to_vector<double>(),
                      v = in.v.to_vector<double>(), th = in.theta.to_vector<double>(),
                      al = in.alpha.to_vector<double>(), m0 = in.m0.to_vector<double>();
  std::vector<double> y(B * T * dv);
  for (int64_t b = 0; b < B; ++b) {
    const double* W = m0.data() + b * dv * dk;
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> Mt(dv * dk);  // M_{t-1}
      double P = 1;
      for (int64_t r = 0; r < t; ++r) P *= 1 - al[b * T + r];
      for (int64_t x = 0; x < dv * dk; ++x) Mt[x] = P * W[x];
      for (int64_t s = 0; s < t; ++s) {
        const int64_t bs = b * T + s;
        double decay = 1;
        for (int64_t r = s + 1; r < t; ++r) decay *= 1 - al[b * T + r];
        for (int64_t i = 0; i < dv; ++i) {
          double wk = 0;
          for (int64_t j = 0; j < dk; ++j) wk += W[i * dk + j] * k[bs * dk + j];
          const double es = 2 * (wk - v[bs * dv + i]);
          for (int64_t j = 0; j < dk; ++j) Mt[i * dk + j] -= decay * th[bs] * es * k[bs * dk + j];
        }
      }
      for (int64_t i = 0; i < dv; ++i) {
        double yi = 0;
        for (int64_t j = 0; j < dk; ++j) yi += Mt[i * dk + j] * q[(b * T + t) * dk + j];
        y[(b * T + t) * dv + i] = yi;
      }
    }
  }
  double e = max_abs_diff(fused.retrieved.to_vector<double>(), y);
  MESSAGE("titans one chunk, eta 0 vs closed form: max |diff| " << e);
  CHECK(e < 1e-12);
}

TEST_CASE("titans_linear_memory in f32 agrees with f64") {
  const int64_t B = 2, T = 9, dk = 4, dv = 3;
  double worst = 0;
  for (int64_t chunk : {int64_t(1), int64_t(4)}) {
    INFO("chunk " << chunk);
    Inputs in64 = make_inputs(B, T, dk, dv, 44);
    Inputs in32;
    std::vector<Tensor*> a64 = in64.all(), a32 = in32.all();
    for (size_t i = 0; i < a64.size(); ++i) *a32[i] = to_dtype(*a64[i], DType::f32);
    Generator g(6);
    Weights w64{randn({B, T, dv}, DType::f64, &g), randn({B, dv, dk}, DType::f64, &g),
                randn({B, dv, dk}, DType::f64, &g)};
    Weights w32{to_dtype(w64.wy, DType::f32), to_dtype(w64.wm, DType::f32),
                to_dtype(w64.ws, DType::f32)};
    auto fused = [&](const Inputs& x) {
      return titans_linear_memory(x.q, x.k, x.v, x.theta, x.eta, x.alpha, x.m0, x.s0, chunk);
    };
    Run r64 = run(in64, true, w64, fused), r32 = run(in32, true, w32, fused);
    std::vector<std::pair<Tensor, Tensor>> pairs{{r32.out.retrieved, r64.out.retrieved},
                                                 {r32.out.memory, r64.out.memory},
                                                 {r32.out.momentum, r64.out.momentum}};
    for (size_t i = 0; i < r64.grads.size(); ++i) pairs.push_back({r32.grads[i], r64.grads[i]});
    for (auto& [lo, hi] : pairs) {
      std::vector<double> a = lo.to_vector<double>(), b = hi.to_vector<double>();
      double scale = 0;
      for (double x : b) scale = std::max(scale, std::abs(x));
      // relative to the tensor's largest entry: an entry near 0 has no relative precision in f32
      double rel = max_abs_diff(a, b) / scale;
      CHECK(rel < 1e-5);
      worst = std::max(worst, rel);
    }
  }
  MESSAGE("titans f32 vs f64: max relative diff " << worst);
}

TEST_CASE("titans_linear_memory over a large batch (OpenMP over B) equals row-by-row runs") {
  // B * T * dv * dk = 131072 is above the kernels' threading threshold, one row (16384) below it.
  const int64_t B = 8, T = 64, dk = 16, dv = 16, chunk = 8;
  Inputs in = make_inputs(B, T, dk, dv, 66);
  in.k = mul(in.k, 0.25);  // |k| ~ 1, so 64 gradient steps stay bounded
  Generator g(9);
  Weights w{randn({B, T, dv}, DType::f64, &g), randn({B, dv, dk}, DType::f64, &g),
            randn({B, dv, dk}, DType::f64, &g)};
  auto fused = [&](const Inputs& x) {
    return titans_linear_memory(x.q, x.k, x.v, x.theta, x.eta, x.alpha, x.m0, x.s0, chunk);
  };
  Run all = run(in, true, w, fused);
  double worst = 0;
  for (int64_t b = 0; b < B; ++b) {
    Inputs row;
    std::vector<Tensor*> src = in.all(), dst = row.all();
    for (size_t i = 0; i < src.size(); ++i) *dst[i] = contiguous(slice(*src[i], 0, b, b + 1));
    Weights wr{slice(w.wy, 0, b, b + 1), slice(w.wm, 0, b, b + 1), slice(w.ws, 0, b, b + 1)};
    Run one = run(row, true, wr, fused);
    worst = std::max({worst, max_abs_diff(slice(all.out.retrieved, 0, b, b + 1), one.out.retrieved),
                      max_abs_diff(slice(all.out.memory, 0, b, b + 1), one.out.memory),
                      max_abs_diff(slice(all.out.momentum, 0, b, b + 1), one.out.momentum)});
    for (size_t i = 0; i < one.grads.size(); ++i)
      worst = std::max(worst, max_abs_diff(slice(all.grads[i], 0, b, b + 1), one.grads[i]));
  }
  CHECK(worst == 0);  // the same arithmetic per row, whichever thread runs it
}

TEST_CASE("titans_linear_memory rejects bad shapes naming them") {
  const int64_t B = 2, T = 4, dk = 3, dv = 2;
  Inputs in = make_inputs(B, T, dk, dv, 55);
  auto call = [&](const Inputs& x, int64_t chunk = 2, bool s0 = true) {
    return error_of([&] {
      titans_linear_memory(x.q, x.k, x.v, x.theta, x.eta, x.alpha, x.m0, s0 ? x.s0 : Tensor(),
                           chunk);
    });
  };
  CHECK(call(in) == "");
  CHECK(call(in, 1, false) == "");
  {
    Inputs bad = in;
    bad.k = zeros({B, T, dk + 1}, DType::f64);
    std::string msg = call(bad);
    CHECK(contains(msg, "titans_linear_memory"));
    CHECK(contains(msg, "[2, 4, 3]"));
    CHECK(contains(msg, "[2, 4, 4]"));
  }
  {
    Inputs bad = in;
    bad.v = zeros({B, T + 1, dv}, DType::f64);
    std::string msg = call(bad);
    CHECK(contains(msg, "titans_linear_memory"));
    CHECK(contains(msg, "[2, 5, 2]"));
  }
  {
    Inputs bad = in;
    bad.eta = zeros({B, T, 1}, DType::f64);
    std::string msg = call(bad);
    CHECK(contains(msg, "titans_linear_memory"));
    CHECK(contains(msg, "[2, 4, 1]"));
  }
  {
    Inputs bad = in;
    bad.m0 = zeros({B, dk, dv}, DType::f64);  // transposed memory: [B, dk, dv] instead of [B, dv, dk]
    std::string msg = call(bad);
    CHECK(contains(msg, "titans_linear_memory: m0"));
    CHECK(contains(msg, "[2, 2, 3]"));
    CHECK(contains(msg, "[2, 3, 2]"));
  }
  {
    Inputs bad = in;
    bad.s0 = zeros({1, dv, dk}, DType::f64);
    std::string msg = call(bad);
    CHECK(contains(msg, "titans_linear_memory: s0"));
    CHECK(contains(msg, "[1, 2, 3]"));
  }
  {
    std::string msg = call(in, 0);
    CHECK(contains(msg, "titans_linear_memory: chunk must be positive"));
  }
  {
    Inputs bad = in;
    bad.q = to_dtype(in.q, DType::f32);
    CHECK(contains(call(bad), "titans_linear_memory"));
  }
  CHECK_THROWS_AS(titans_linear_memory(in.q, in.k, in.v, in.theta, in.eta, in.alpha, Tensor(),
                                       Tensor(), 2),
                  engram::Error);
}
