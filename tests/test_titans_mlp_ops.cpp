// tests/test_titans_mlp_ops.cpp — the fused Titans deep memory (autograd/titans_ops.cpp's
// titans_mlp_memory; Behrouz, Zhong & Mirrokni 2024, arXiv:2501.00663, §3.1 with L_M = 2):
//   M(x) = W2 silu(W1 x),  W1 [h, dk], W2 [dv, h],  W1_0c, W2_0c = the weights entering chunk c;
//   y_t = W2_{t-1} silu(W1_{t-1} q_t) ;  a_t = W1_0c k_t ;  z_t = silu(a_t) ;
//   e_t = 2 (W2_0c z_t - v_t) ;  G2_t = e_t z_t^T ;  G1_t = ((W2_0c^T e_t) * silu'(a_t)) k_t^T ;
//   S_t = eta_t S_{t-1} - theta_t G_t ;  W_t = (1 - alpha_t) W_{t-1} + S_t   (both layers).
// (1) a token-by-token loop of plain autograd ops (sigmoid, mul, matmul: silu' is built from
//     them, so the tape differentiates it, and through W*_0c, independently of the kernel's
//     hand-written second-order terms), values and every input's gradient, chunk 1, 2 and T;
// (2) chunk 1 against a plain C++ double loop; (3) f32 against f64; (4) shape errors.
// The registry (autograd/opinfo_titans.cpp) gradchecks it against finite differences.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/ops.h"
#include "tests/test_util.h"

using namespace engram;
using namespace engram::testing;

namespace {

struct Inputs {
  Tensor q, k, v, theta, eta, alpha, w1, w2, s1, s2;
  std::vector<Tensor*> all() { return {&q, &k, &v, &theta, &eta, &alpha, &w1, &w2, &s1, &s2}; }
};

Inputs make_inputs(int64_t B, int64_t T, int64_t dk, int64_t h, int64_t dv, uint64_t seed,
                   DType dt = DType::f64) {
  Generator g(seed);
  auto unif = [&](double lo, double hi) {
    std::vector<double> x(B * T);
    for (double& e : x) e = lo + (hi - lo) * g.uniform();
    return from_vector(x, {B, T}, dt);
  };
  const double unit = 1.0 / std::sqrt(double(dk));
  Inputs in;
  in.q = mul(randn({B, T, dk}, dt, &g), unit);
  in.k = mul(randn({B, T, dk}, dt, &g), unit);
  in.v = randn({B, T, dv}, dt, &g);
  // Gentler inner steps than the linear op's test: the MLP's curvature grows with its weights, so
  // theta / (1 - eta) near the linear test's would let 9 steps diverge (a property of the rule).
  in.theta = unif(0.05, 0.3);
  in.eta = unif(0.3, 0.8);
  in.alpha = unif(0.05, 0.3);
  in.w1 = mul(randn({B, h, dk}, dt, &g), 0.5);
  in.w2 = mul(randn({B, dv, h}, dt, &g), 0.5);
  in.s1 = mul(randn({B, h, dk}, dt, &g), 0.2);
  in.s2 = mul(randn({B, dv, h}, dt, &g), 0.2);
  return in;
}

// The obvious version: one token at a time with ordinary differentiable ops. Weights are
// [B, rows, cols]; vectors are carried as [B, n, 1] columns.
TitansMLPScan reference(const Inputs& in, bool with_s, int64_t chunk) {
  const int64_t B = in.q.shape()[0], T = in.q.shape()[1];
  Tensor W1 = in.w1, W2 = in.w2;
  Tensor S1 = with_s ? in.s1 : zeros(in.w1.shape(), in.q.dtype());
  Tensor S2 = with_s ? in.s2 : zeros(in.w2.shape(), in.q.dtype());
  Tensor W10, W20;
  auto silu_ = [](const Tensor& x) { return mul(x, sigmoid(x)); };
  std::vector<Tensor> ys;
  for (int64_t t = 0; t < T; ++t) {
    if (t % chunk == 0) W10 = W1, W20 = W2;  // the chunk's gradients are all taken here
    Tensor qt = unsqueeze(select(in.q, 1, t), -1), kt = unsqueeze(select(in.k, 1, t), -1);
    Tensor vt = unsqueeze(select(in.v, 1, t), -1);
    auto gate = [&](const Tensor& x) { return reshape(select(x, 1, t), {B, 1, 1}); };
    ys.push_back(squeeze(matmul(W2, silu_(matmul(W1, qt))), -1));  // y_t = W2 silu(W1 q)
    Tensor a = matmul(W10, kt);
    Tensor s = sigmoid(a);
    Tensor z = mul(a, s);
    Tensor dsilu = mul(s, 1.0 + mul(a, 1.0 - s));                  // silu'(a)
    Tensor e = mul(sub(matmul(W20, z), vt), 2.0);                  // e = 2 (W2_0 z - v)
    Tensor G2 = matmul(e, transpose(z, 1, 2));                     // e z^T
    Tensor delta = mul(matmul(transpose(W20, 1, 2), e), dsilu);    // (W2_0^T e) * silu'(a)
    Tensor G1 = matmul(delta, transpose(kt, 1, 2));                // delta k^T
    S1 = sub(mul(gate(in.eta), S1), mul(gate(in.theta), G1));
    S2 = sub(mul(gate(in.eta), S2), mul(gate(in.theta), G2));
    W1 = add(mul(1.0 - gate(in.alpha), W1), S1);
    W2 = add(mul(1.0 - gate(in.alpha), W2), S2);
  }
  return {stack(ys, 1), W1, W2, S1, S2};
}

// loss = <wy, y> + <ww1, W1> + <ww2, W2> + <ws1, S1> + <ws2, S2>, so every output's gradient flows.
struct Weights {
  Tensor wy, ww1, ww2, ws1, ws2;
};
Weights make_weights(const Inputs& in, uint64_t seed, DType dt = DType::f64) {
  Generator g(seed);
  return {randn({in.q.shape()[0], in.q.shape()[1], in.v.shape()[2]}, dt, &g),
          randn(in.w1.shape(), dt, &g), randn(in.w2.shape(), dt, &g), randn(in.w1.shape(), dt, &g),
          randn(in.w2.shape(), dt, &g)};
}
Tensor project(const TitansMLPScan& s, const Weights& w) {
  return add(add(add(sum(mul(s.retrieved, w.wy)), sum(mul(s.w1, w.ww1))),
                 add(sum(mul(s.w2, w.ww2)), sum(mul(s.s1, w.ws1)))),
             sum(mul(s.s2, w.ws2)));
}

struct Run {
  TitansMLPScan out;
  std::vector<Tensor> grads;  // q, k, v, theta, eta, alpha, w1, w2, s1, s2 (s* undefined if unused)
};
Run run(Inputs& in, bool with_s, const Weights& w,
        const std::function<TitansMLPScan(const Inputs&)>& fn) {
  for (Tensor* t : in.all()) {
    t->impl()->grad.reset();
    t->requires_grad_(true);
  }
  Run r;
  r.out = fn(in);
  backward(project(r.out, w));
  for (Tensor* t : in.all()) {
    const bool unused = (t == &in.s1 || t == &in.s2) && !with_s;
    r.grads.push_back(unused ? Tensor() : t->grad());
    t->impl()->grad.reset();
    t->requires_grad_(false);
  }
  return r;
}

std::vector<Tensor> outputs(const TitansMLPScan& s) {
  return {s.retrieved, s.w1, s.w2, s.s1, s.s2};
}

const char* kNames[] = {"q", "k", "v", "theta", "eta", "alpha", "w1", "w2", "s1", "s2"};

}  // namespace

TEST_CASE("titans_mlp_memory equals a token-by-token loop of plain ops, values and gradients") {
  const int64_t B = 2, T = 7, dk = 3, h = 4, dv = 2;
  double worst_out = 0, worst_grad = 0;
  for (int64_t chunk : {int64_t(1), int64_t(2), int64_t(3), T}) {
    for (bool with_s : {false, true}) {
      INFO("chunk " << chunk << " s1/s2 " << with_s);
      Inputs in = make_inputs(B, T, dk, h, dv, 10 + chunk);
      Weights w = make_weights(in, 5);
      Run ref = run(in, with_s, w, [&](const Inputs& x) { return reference(x, with_s, chunk); });
      Run got = run(in, with_s, w, [&](const Inputs& x) {
        return titans_mlp_memory(x.q, x.k, x.v, x.theta, x.eta, x.alpha, x.w1, x.w2,
                                 with_s ? x.s1 : Tensor(), with_s ? x.s2 : Tensor(), chunk);
      });
      std::vector<Tensor> go = outputs(got.out), ro = outputs(ref.out);
      double e = 0;
      for (size_t i = 0; i < go.size(); ++i) e = std::max(e, max_abs_diff(go[i], ro[i]));
      CHECK(e < 1e-12);
      worst_out = std::max(worst_out, e);
      for (size_t i = 0; i < ref.grads.size(); ++i) {
        if (!ref.grads[i].defined()) continue;
        INFO("gradient of " << std::string(kNames[i]));
        REQUIRE(got.grads[i].defined());
        double ge = max_abs_diff(got.grads[i], ref.grads[i]);
        CHECK(ge < 1e-10);
        worst_grad = std::max(worst_grad, ge);
      }
    }
  }
  MESSAGE("titans_mlp vs plain ops: max |output diff| " << worst_out << ", max |grad diff| "
                                                        << worst_grad);
}

TEST_CASE("titans_mlp_memory with chunk 1 is the sequential rule (gradient at W_{t-1})") {
  const int64_t B = 2, T = 6, dk = 3, h = 4, dv = 2;
  Inputs in = make_inputs(B, T, dk, h, dv, 21);
  TitansMLPScan fused = titans_mlp_memory(in.q, in.k, in.v, in.theta, in.eta, in.alpha, in.w1,
                                          in.w2, in.s1, in.s2, 1);
  std::vector<double> q = in.q.to_vector<double>(), k = in.k.to_vector<double>(),
                      v = in.v.to_vector<double>(), th = in.theta.to_vector<double>(),
                      et = in.eta.to_vector<double>(), al = in.alpha.to_vector<double>(),
                      w1 = in.w1.to_vector<double>(), w2 = in.w2.to_vector<double>(),
                      s1 = in.s1.to_vector<double>(), s2 = in.s2.to_vector<double>();
  const int64_t H1 = h * dk, H2 = dv * h;
  std::vector<double> y(B * T * dv), W1all(B * H1), W2all(B * H2), S1all(B * H1), S2all(B * H2);
  auto sg = [](double x) { return 1 / (1 + std::exp(-x)); };
  for (int64_t b = 0; b < B; ++b) {
    std::vector<double> W1(w1.begin() + b * H1, w1.begin() + (b + 1) * H1);
    std::vector<double> W2(w2.begin() + b * H2, w2.begin() + (b + 1) * H2);
    std::vector<double> S1(s1.begin() + b * H1, s1.begin() + (b + 1) * H1);
    std::vector<double> S2(s2.begin() + b * H2, s2.begin() + (b + 1) * H2);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t bt = b * T + t;
      std::vector<double> r(h), a(h), z(h), e(dv), g(h, 0.0);
      for (int64_t i = 0; i < h; ++i) {
        double u = 0;
        a[i] = 0;
        for (int64_t j = 0; j < dk; ++j) {
          u += W1[i * dk + j] * q[bt * dk + j];
          a[i] += W1[i * dk + j] * k[bt * dk + j];  // gradient at the current weights
        }
        r[i] = u * sg(u);
        z[i] = a[i] * sg(a[i]);
      }
      for (int64_t o = 0; o < dv; ++o) {
        double yo = 0, p = 0;
        for (int64_t i = 0; i < h; ++i) {
          yo += W2[o * h + i] * r[i];
          p += W2[o * h + i] * z[i];
        }
        y[bt * dv + o] = yo;
        e[o] = 2 * (p - v[bt * dv + o]);
      }
      for (int64_t i = 0; i < h; ++i)
        for (int64_t o = 0; o < dv; ++o) g[i] += W2[o * h + i] * e[o];
      for (int64_t i = 0; i < h; ++i) {
        const double s = sg(a[i]), dsilu = s * (1 + a[i] * (1 - s));
        for (int64_t j = 0; j < dk; ++j) {
          double& sv = S1[i * dk + j];
          sv = et[bt] * sv - th[bt] * g[i] * dsilu * k[bt * dk + j];
        }
      }
      for (int64_t o = 0; o < dv; ++o)
        for (int64_t i = 0; i < h; ++i) {
          double& sv = S2[o * h + i];
          sv = et[bt] * sv - th[bt] * e[o] * z[i];
        }
      for (int64_t x = 0; x < H1; ++x) W1[x] = (1 - al[bt]) * W1[x] + S1[x];
      for (int64_t x = 0; x < H2; ++x) W2[x] = (1 - al[bt]) * W2[x] + S2[x];
    }
    std::copy(W1.begin(), W1.end(), W1all.begin() + b * H1);
    std::copy(W2.begin(), W2.end(), W2all.begin() + b * H2);
    std::copy(S1.begin(), S1.end(), S1all.begin() + b * H1);
    std::copy(S2.begin(), S2.end(), S2all.begin() + b * H2);
  }
  double e = std::max({max_abs_diff(fused.retrieved.to_vector<double>(), y),
                       max_abs_diff(fused.w1.to_vector<double>(), W1all),
                       max_abs_diff(fused.w2.to_vector<double>(), W2all),
                       max_abs_diff(fused.s1.to_vector<double>(), S1all),
                       max_abs_diff(fused.s2.to_vector<double>(), S2all)});
  MESSAGE("titans_mlp chunk 1 vs sequential loop: max |diff| " << e);
  CHECK(e < 1e-12);
}

TEST_CASE("titans_mlp_memory in f32 agrees with f64") {
  const int64_t B = 2, T = 9, dk = 4, h = 5, dv = 3;
  double worst = 0;
  for (int64_t chunk : {int64_t(1), int64_t(4)}) {
    INFO("chunk " << chunk);
    Inputs in64 = make_inputs(B, T, dk, h, dv, 44);
    // Small inner steps: 9 sequential steps at the default gates can turn chaotic, where f32's
    // rounding is amplified far beyond its epsilon and the comparison would test the dynamics.
    in64.theta = mul(in64.theta, 0.4);
    Inputs in32;
    std::vector<Tensor*> a64 = in64.all(), a32 = in32.all();
    for (size_t i = 0; i < a64.size(); ++i) *a32[i] = to_dtype(*a64[i], DType::f32);
    Weights w64 = make_weights(in64, 6);
    Weights w32{to_dtype(w64.wy, DType::f32), to_dtype(w64.ww1, DType::f32),
                to_dtype(w64.ww2, DType::f32), to_dtype(w64.ws1, DType::f32),
                to_dtype(w64.ws2, DType::f32)};
    auto fused = [&](const Inputs& x) {
      return titans_mlp_memory(x.q, x.k, x.v, x.theta, x.eta, x.alpha, x.w1, x.w2, x.s1, x.s2,
                               chunk);
    };
    Run r64 = run(in64, true, w64, fused), r32 = run(in32, true, w32, fused);
    std::vector<Tensor> o32 = outputs(r32.out), o64 = outputs(r64.out);
    std::vector<std::pair<Tensor, Tensor>> pairs;
    for (size_t i = 0; i < o64.size(); ++i) pairs.push_back({o32[i], o64[i]});
    for (size_t i = 0; i < r64.grads.size(); ++i) pairs.push_back({r32.grads[i], r64.grads[i]});
    for (auto& [lo, hi] : pairs) {
      REQUIRE(lo.dtype() == DType::f32);
      std::vector<double> a = lo.to_vector<double>(), b = hi.to_vector<double>();
      double scale = 0;
      for (double x : b) scale = std::max(scale, std::abs(x));
      // relative to the tensor's largest entry: an entry near 0 has no relative precision in f32
      double rel = max_abs_diff(a, b) / scale;
      CHECK(scale < 1e3);  // the sample stays in a tame range
      CHECK(rel < 1e-5);
      worst = std::max(worst, rel);
    }
  }
  MESSAGE("titans_mlp f32 vs f64: max relative diff " << worst);
}

TEST_CASE("titans_mlp_memory over a large batch (OpenMP over B) equals row-by-row runs") {
  // B * T * (h dk + dv h) = 8 * 32 * 512 is above the kernels' threading threshold, one row below.
  const int64_t B = 8, T = 32, dk = 16, h = 16, dv = 16, chunk = 8;
  Inputs in = make_inputs(B, T, dk, h, dv, 66);
  in.w1 = mul(in.w1, 0.25);
  in.w2 = mul(in.w2, 0.25);
  in.theta = mul(in.theta, 0.2);  // small inner steps keep 32 updates of a 16-wide MLP bounded
  Weights w = make_weights(in, 9);
  auto fused = [&](const Inputs& x) {
    return titans_mlp_memory(x.q, x.k, x.v, x.theta, x.eta, x.alpha, x.w1, x.w2, x.s1, x.s2,
                             chunk);
  };
  Run all = run(in, true, w, fused);
  double worst = 0;
  for (int64_t b = 0; b < B; ++b) {
    Inputs row;
    std::vector<Tensor*> src = in.all(), dst = row.all();
    for (size_t i = 0; i < src.size(); ++i) *dst[i] = contiguous(slice(*src[i], 0, b, b + 1));
    Weights wr{slice(w.wy, 0, b, b + 1), slice(w.ww1, 0, b, b + 1), slice(w.ww2, 0, b, b + 1),
               slice(w.ws1, 0, b, b + 1), slice(w.ws2, 0, b, b + 1)};
    Run one = run(row, true, wr, fused);
    std::vector<Tensor> oa = outputs(all.out), oo = outputs(one.out);
    for (size_t i = 0; i < oa.size(); ++i)
      worst = std::max(worst, max_abs_diff(slice(oa[i], 0, b, b + 1), oo[i]));
    for (size_t i = 0; i < one.grads.size(); ++i)
      worst = std::max(worst, max_abs_diff(slice(all.grads[i], 0, b, b + 1), one.grads[i]));
  }
  CHECK(std::isfinite(all.out.retrieved.to_vector<double>()[0]));
  CHECK(worst == 0);  // the same arithmetic per row, whichever thread runs it
}

TEST_CASE("titans_mlp_memory rejects bad shapes naming them") {
  const int64_t B = 2, T = 4, dk = 3, h = 5, dv = 2;
  Inputs in = make_inputs(B, T, dk, h, dv, 55);
  auto call = [&](const Inputs& x, int64_t chunk = 2, bool s = true) {
    return error_of([&] {
      titans_mlp_memory(x.q, x.k, x.v, x.theta, x.eta, x.alpha, x.w1, x.w2, s ? x.s1 : Tensor(),
                        s ? x.s2 : Tensor(), chunk);
    });
  };
  CHECK(call(in) == "");
  CHECK(call(in, 1, false) == "");
  {
    Inputs bad = in;
    bad.k = zeros({B, T, dk + 1}, DType::f64);
    std::string msg = call(bad);
    CHECK(contains(msg, "titans_mlp_memory"));
    CHECK(contains(msg, "[2, 4, 3]"));
    CHECK(contains(msg, "[2, 4, 4]"));
  }
  {
    Inputs bad = in;
    bad.v = zeros({B, T + 1, dv}, DType::f64);
    std::string msg = call(bad);
    CHECK(contains(msg, "titans_mlp_memory"));
    CHECK(contains(msg, "[2, 5, 2]"));
  }
  {
    Inputs bad = in;
    bad.alpha = zeros({B, T, 1}, DType::f64);
    std::string msg = call(bad);
    CHECK(contains(msg, "titans_mlp_memory"));
    CHECK(contains(msg, "[2, 4, 1]"));
  }
  {
    Inputs bad = in;
    bad.w1 = zeros({B, dk, h}, DType::f64);  // transposed: [B, dk, h] instead of [B, h, dk]
    std::string msg = call(bad);
    CHECK(contains(msg, "titans_mlp_memory: w1"));
    CHECK(contains(msg, "[2, 3, 5]"));
  }
  {
    Inputs bad = in;
    bad.w2 = zeros({B, h, dv}, DType::f64);  // transposed: [B, h, dv] instead of [B, dv, h]
    std::string msg = call(bad);
    CHECK(contains(msg, "titans_mlp_memory: w2"));
    CHECK(contains(msg, "[2, 2, 5]"));
    CHECK(contains(msg, "[2, 5, 2]"));
  }
  {
    Inputs bad = in;
    bad.s1 = zeros({1, h, dk}, DType::f64);
    std::string msg = call(bad);
    CHECK(contains(msg, "titans_mlp_memory: s1"));
    CHECK(contains(msg, "[1, 5, 3]"));
  }
  {
    Inputs bad = in;
    bad.s2 = zeros({B, dv, h + 1}, DType::f64);
    std::string msg = call(bad);
    CHECK(contains(msg, "titans_mlp_memory: s2"));
    CHECK(contains(msg, "[2, 2, 6]"));
  }
  {
    std::string msg = call(in, 0);
    CHECK(contains(msg, "titans_mlp_memory: chunk must be positive"));
  }
  {
    Inputs bad = in;
    bad.q = to_dtype(in.q, DType::f32);
    CHECK(contains(call(bad), "titans_mlp_memory"));
  }
  CHECK_THROWS_AS(titans_mlp_memory(in.q, in.k, in.v, in.theta, in.eta, in.alpha, in.w1, Tensor(),
                                    Tensor(), Tensor(), 2),
                  engram::Error);
}
