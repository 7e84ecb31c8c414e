// tests/test_ssm_s4.cpp — S4D and S4 (nn/ssm/s4d.h, nn/ssm/s4.h):
//   - S4D's Vandermonde kernel equals the unrolled ZOH recurrence; the FFT convolution equals the
//     direct causal sum;
//   - S4's HiPPO-LegS init keeps the spectrum of A; its DPLR (Woodbury) discretisation equals a
//     direct solve of (I - dt/2 A)^-1 (I + dt/2 A), and its Cauchy/generating-function kernel
//     equals C A^^l B^ for odd and even lengths;
//   - both layers gradchecked in f64 w.r.t. the input and every parameter through two calls that
//     carry the state; forward == T calls of step; a stream cut in two equals the uncut one (and
//     the carried state matters);
//   - bad shapes are errors naming the layer and the shapes;
//   - PyTorch goldens in f64 (tests/golden/ssm_s4.json from make_ssm_s4_golden.py and
//     torch_ssm_s4.py), and f32 against f64 at N = 64.
#include <doctest/doctest.h>

#include <complex>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "autograd/golden.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "nn/ssm/hippo.h"
#include "nn/ssm/s4.h"
#include "nn/ssm/s4d.h"
#include "tests/module_gradcheck.h"
#include "tests/test_util.h"

using namespace engram;
using namespace engram::nn::ssm;
using engram::testing::contains;
using engram::testing::error_of;
using engram::testing::max_abs_diff;
using cd = std::complex<double>;

namespace {

// d sum(y * w) / d (x, every parameter) against central differences (tests/module_gradcheck.h).
GradcheckResult check_gradient(nn::Module& m, const std::function<Tensor(const Tensor&)>& run,
                               const Tensor& x) {
  GradcheckResult res = engram::testing::module_gradcheck(m, run, x);
  CHECK_MESSAGE(res.ok, res.message);
  return res;
}

// y of two forward calls over x's first `cut` tokens and the rest, the state carried.
Tensor two_calls(SequenceMixer& m, const Tensor& x, int64_t cut, State& state) {
  Tensor a = m.forward(slice(x, 1, 0, cut), state);
  Tensor b = m.forward(slice(x, 1, cut, x.size(1)), state);
  return cat({a, b}, 1);
}

// y of T calls of step.
Tensor by_steps(SequenceMixer& m, const Tensor& x, State& state) {
  std::vector<Tensor> ys;
  for (int64_t t = 0; t < x.size(1); ++t) ys.push_back(m.step(select(x, 1, t), state));
  return stack(ys, 1);
}

std::vector<cd> complex_of(const Tensor& t) {
  std::vector<double> v = t.to_vector<double>();
  std::vector<cd> c(v.size() / 2);
  for (size_t i = 0; i < c.size(); ++i) c[i] = {v[2 * i], v[2 * i + 1]};
  return c;
}

// log_dt ~ U[log 0.05, log 0.5]: larger steps than the init's, so the SSM (not D u) dominates.
void widen_steps(const Tensor& log_dt, Generator& g) {
  NoGradGuard ng;
  Tensor u = rand(log_dt.shape(), DType::f64, &g);
  raw::copy_(log_dt, add(mul(u, std::log(0.5) - std::log(0.05)), std::log(0.05)));
}

// forward == T steps, cut == uncut (outputs and final states), for any mixer in f64.
void check_modes_agree(SequenceMixer& m, const Tensor& x, int64_t cut, double tol) {
  NoGradGuard ng;
  const int64_t B = x.size(0);
  State whole = m.initial_state(B), stepped = m.initial_state(B), parts = m.initial_state(B);
  Tensor y_whole = m.forward(x, whole);
  Tensor y_steps = by_steps(m, x, stepped);
  Tensor y_parts = two_calls(m, x, cut, parts);
  double d_steps = max_abs_diff(y_whole, y_steps), d_parts = max_abs_diff(y_whole, y_parts);
  double s_steps = max_abs_diff(whole[0].second, stepped[0].second);
  double s_parts = max_abs_diff(whole[0].second, parts[0].second);
  MESSAGE(m.type_name() << ": forward vs steps " << d_steps << " (state " << s_steps
                        << "), cut vs uncut " << d_parts << " (state " << s_parts << ")");
  CHECK(d_steps < tol);
  CHECK(s_steps < tol);
  CHECK(d_parts < tol);
  CHECK(s_parts < tol);
  // the carried state matters: the second part read from a fresh state differs
  State fresh = m.initial_state(B);
  Tensor y_fresh = m.forward(slice(x, 1, cut, x.size(1)), fresh);
  CHECK(max_abs_diff(slice(y_whole, 1, cut, x.size(1)), y_fresh) > 1e-3);
  // and the outputs are not trivially small
  CHECK(max_abs_diff(y_whole, zeros_like(y_whole)) > 1e-2);
}

// Row-major complex n x n matrices on the host, for references written without the layer's ops.
using CMat = std::vector<cd>;

CMat matmul(const CMat& a, const CMat& b, int64_t n) {
  CMat c(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < n; ++j) c[i * n + j] += a[i * n + k] * b[k * n + j];
  return c;
}

// X = A^-1 R for R [n, m] by Gaussian elimination with partial pivoting.
std::vector<cd> solve(CMat A, std::vector<cd> R, int64_t n, int64_t m) {
  for (int64_t col = 0; col < n; ++col) {
    int64_t piv = col;
    for (int64_t r = col + 1; r < n; ++r)
      if (std::abs(A[r * n + col]) > std::abs(A[piv * n + col])) piv = r;
    for (int64_t j = 0; j < n; ++j) std::swap(A[col * n + j], A[piv * n + j]);
    for (int64_t j = 0; j < m; ++j) std::swap(R[col * m + j], R[piv * m + j]);
    for (int64_t r = 0; r < n; ++r) {
      if (r == col) continue;
      cd f = A[r * n + col] / A[col * n + col];
      for (int64_t j = 0; j < n; ++j) A[r * n + j] -= f * A[col * n + j];
      for (int64_t j = 0; j < m; ++j) R[r * m + j] -= f * R[col * m + j];
    }
  }
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < m; ++j) R[r * m + j] /= A[r * n + r];
  return R;
}

// S4's continuous system of channel h over all N modes, from its parameters: A = Lambda - P P^*.
struct HostSSM {
  int64_t N;
  CMat A;
  std::vector<cd> B, C;
  double dt;
};

HostSSM host_ssm(const S4& m, int64_t h) {
  const int64_t M = m.modes, N = 2 * M;
  std::vector<double> lar = m.log_A_real.to_vector<double>(), ai = m.A_imag.to_vector<double>();
  std::vector<cd> P = complex_of(m.P), B = complex_of(m.B), C = complex_of(m.C);
  std::vector<cd> lam(N), p(N);
  HostSSM s{N, CMat(N * N), std::vector<cd>(N), std::vector<cd>(N),
            std::exp(m.log_dt.to_vector<double>()[h])};
  for (int64_t n = 0; n < M; ++n) {
    lam[n] = cd(-std::exp(lar[h * M + n]), ai[h * M + n]), lam[n + M] = std::conj(lam[n]);
    p[n] = P[h * M + n], p[n + M] = std::conj(p[n]);
    s.B[n] = B[h * M + n], s.B[n + M] = std::conj(s.B[n]);
    s.C[n] = C[h * M + n], s.C[n + M] = std::conj(s.C[n]);
  }
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j)
      s.A[i * N + j] = (i == j ? lam[i] : 0.0) - p[i] * std::conj(p[j]);
  return s;
}

}  // namespace

// ---------------------------------------------------------------- S4D

TEST_CASE("ssm s4d: the Vandermonde kernel equals the unrolled ZOH recurrence (both inits)") {
  for (S4DInit init : {S4DInit::lin, S4DInit::inv}) {
    Generator g(1);
    S4D m(3, 8, init, &g);
    m.to(DType::f64);
    const int64_t L = 17, H = 3, M = 4;
    Tensor K = m.kernel(L);
    REQUIRE(K.shape() == Shape{H, L});
    std::vector<double> k = K.to_vector<double>(), log_dt = m.log_dt.to_vector<double>();
    std::vector<double> lar = m.log_A_real.to_vector<double>(), ai = m.A_imag.to_vector<double>();
    std::vector<cd> C = complex_of(m.C);
    double worst = 0;
    for (int64_t h = 0; h < H; ++h) {
      // impulse response of x_t = A^ x_{t-1} + B^ u_t, y_t = 2 Re C x_t
      std::vector<cd> x(M), A_bar(M);
      for (int64_t n = 0; n < M; ++n) {
        cd A(-std::exp(lar[h * M + n]), ai[h * M + n]);
        A_bar[n] = std::exp(std::exp(log_dt[h]) * A);
        x[n] = (A_bar[n] - 1.0) / A;  // x_0 = B^ u_0, u_0 = 1
      }
      for (int64_t l = 0; l < L; ++l) {
        cd y = 0;
        for (int64_t n = 0; n < M; ++n) y += C[h * M + n] * x[n];
        worst = std::max(worst, std::abs(2 * y.real() - k[h * L + l]));
        for (int64_t n = 0; n < M; ++n) x[n] *= A_bar[n];
      }
    }
    MESSAGE("S4D kernel vs recurrence: " << worst);
    CHECK(worst < 1e-13);
    CHECK(max_abs_diff(K, zeros_like(K)) > 1e-3);
  }
  // the two inits' imaginary parts: pi n and (N/pi)(N/(2n+1) - 1)
  Generator g(2);
  S4D lin(1, 6, S4DInit::lin, &g), inv(1, 6, S4DInit::inv, &g);
  std::vector<double> a = lin.A_imag.to_vector<double>(), b = inv.A_imag.to_vector<double>();
  for (int n = 0; n < 3; ++n) {
    CHECK(a[n] == doctest::Approx(M_PI * n));
    CHECK(b[n] == doctest::Approx(6 / M_PI * (6.0 / (2 * n + 1) - 1)));
  }
  for (double v : lin.log_A_real.to_vector<double>()) CHECK(v == doctest::Approx(std::log(0.5)));
}

TEST_CASE("ssm s4: the FFT convolution equals the direct causal convolution") {
  for (int64_t L : {1, 2, 7, 16}) {
    CAPTURE(L);
    Generator g(3);
    Tensor u = randn({2, 3, L}, DType::f64, &g), k = randn({3, L}, DType::f64, &g);
    Tensor y = causal_fft_conv(u, k);
    REQUIRE(y.shape() == Shape{2, 3, L});
    std::vector<double> uv = u.to_vector<double>(), kv = k.to_vector<double>();
    std::vector<double> want(2 * 3 * L, 0.0);
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t h = 0; h < 3; ++h)
        for (int64_t l = 0; l < L; ++l)
          for (int64_t j = 0; j <= l; ++j)
            want[(b * 3 + h) * L + l] += kv[h * L + j] * uv[(b * 3 + h) * L + l - j];
    CHECK(max_abs_diff(y.to_vector<double>(), want) < 1e-12);
  }
  CHECK(contains(error_of([] { causal_fft_conv(zeros({2, 3, 5}), zeros({3, 4})); }),
                 "u [2, 3, 5] and k [3, 4]"));
}

TEST_CASE("ssm s4d: gradchecked in f64 (input and every parameter) over two calls") {
  for (S4DInit init : {S4DInit::lin, S4DInit::inv}) {
    Generator g(4);
    S4D m(3, 4, init, &g);
    m.to(DType::f64);
    widen_steps(m.log_dt, g);
    Tensor x = randn({2, 6, 3}, DType::f64, &g);
    GradcheckResult r = check_gradient(m, [&](const Tensor& xi) {
      State s = m.initial_state(2);
      return two_calls(m, xi, 4, s);
    }, x);
    MESSAGE("S4D gradcheck max abs err " << r.max_abs_err << " (full Jacobian " << r.full_jacobian
                                         << ")");
  }
}

TEST_CASE("ssm s4d: forward == T steps, and a cut stream == the uncut one (f64)") {
  for (S4DInit init : {S4DInit::lin, S4DInit::inv}) {
    Generator g(5);
    S4D m(4, 8, init, &g);
    m.to(DType::f64);
    widen_steps(m.log_dt, g);
    Tensor x = randn({2, 13, 4}, DType::f64, &g);
    check_modes_agree(m, x, 6, 1e-10);
    check_modes_agree(m, x, 1, 1e-10);
  }
}

TEST_CASE("ssm s4d: bad shapes are errors naming the layer and the shapes") {
  Generator g(6);
  S4D m(4, 8, S4DInit::lin, &g);
  State s = m.initial_state(2);
  CHECK(contains(error_of([&] { m.forward(zeros({2, 5, 3}), s); }),
                 "S4D: expected input [B, T, 4]"));
  CHECK(contains(error_of([&] { m.forward(zeros({2, 5, 3}), s); }), "got [2, 5, 3]"));
  CHECK(contains(error_of([&] { m.forward(zeros({5, 4}), s); }), "got [5, 4]"));
  CHECK(contains(error_of([&] { m.step(zeros({2, 5}), s); }),
                 "S4D: step expects one token [B, 4]"));
  CHECK(contains(error_of([&] { m.forward(zeros({3, 5, 4}), s); }),
                 "S4D: state x must be [3, 4, 4, 2] for a batch of 3, got [2, 4, 4, 2]"));
  State empty;
  CHECK(contains(error_of([&] { m.step(zeros({2, 4}), empty); }),
                 "S4D: the state has no tensor 'x'"));
  CHECK(contains(error_of([&] { S4D bad(4, 5, S4DInit::lin, &g); }),
                 "S4D: state_size N must be even"));
}

// ---------------------------------------------------------------- S4

TEST_CASE("ssm s4: the HiPPO-LegS init keeps the spectrum of A (traces of A^k)") {
  const int64_t N = 8;
  Generator g(7);
  S4 m(2, N, &g);
  HippoLegS legs = make_hippo_legs(N);
  CMat hippo(legs.A.begin(), legs.A.end());
  for (int64_t h = 0; h < 2; ++h) {
    HostSSM s = host_ssm(m, h);
    CMat a = s.A, b = hippo;
    for (int k = 1; k <= 3; ++k) {
      cd ta = 0, tb = 0;
      for (int64_t i = 0; i < N; ++i) ta += a[i * N + i], tb += b[i * N + i];
      CAPTURE(k);
      // the parameters are stored in f32
      CHECK(std::abs(ta - tb) < 1e-5 * std::abs(tb));
      a = matmul(a, s.A, N), b = matmul(b, hippo, N);
    }
  }
}

TEST_CASE("ssm s4: DPLR discretisation and Cauchy kernel equal a direct solve and C A^^l B^") {
  Generator g(8);
  const int64_t H = 2, N = 8;
  S4 m(H, N, &g);
  m.to(DType::f64);
  {  // larger steps than the init's, so the kernel is far from D-dominated
    NoGradGuard ng;
    std::vector<double> log_dt{std::log(0.3), std::log(0.05)};
    raw::copy_(m.log_dt, from_vector(log_dt, {H}, DType::f64));
  }
  std::vector<cd> Ad = complex_of(m.discrete_A()), Bd = complex_of(m.discrete_B());
  double worst_A = 0, worst_K = 0;
  for (int64_t L : {1, 2, 7, 16}) {
    std::vector<double> K = m.kernel(L).to_vector<double>();
    for (int64_t h = 0; h < H; ++h) {
      HostSSM s = host_ssm(m, h);
      // A^ = (I - dt/2 A)^-1 (I + dt/2 A),  B^ = (I - dt/2 A)^-1 dt B
      CMat lhs(N * N), rhs(N * N);
      for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < N; ++j) {
          lhs[i * N + j] = (i == j ? 1.0 : 0.0) - s.dt / 2 * s.A[i * N + j];
          rhs[i * N + j] = (i == j ? 1.0 : 0.0) + s.dt / 2 * s.A[i * N + j];
        }
      CMat A_bar = solve(lhs, rhs, N, N);
      std::vector<cd> dtB(N);
      for (int64_t i = 0; i < N; ++i) dtB[i] = s.dt * s.B[i];
      std::vector<cd> x = solve(lhs, dtB, N, 1);  // A^^0 B^
      for (int64_t i = 0; i < N * N; ++i)
        worst_A = std::max(worst_A, std::abs(A_bar[i] - Ad[h * N * N + i]));
      for (int64_t i = 0; i < N; ++i) worst_A = std::max(worst_A, std::abs(x[i] - Bd[h * N + i]));
      for (int64_t l = 0; l < L; ++l) {
        cd y = 0;
        for (int64_t i = 0; i < N; ++i) y += s.C[i] * x[i];
        CHECK(std::abs(y.imag()) < 1e-12);  // conjugate-symmetric modes: a real kernel
        worst_K = std::max(worst_K, std::abs(y.real() - K[h * L + l]));
        std::vector<cd> next(N, 0.0);
        for (int64_t i = 0; i < N; ++i)
          for (int64_t j = 0; j < N; ++j) next[i] += A_bar[i * N + j] * x[j];
        x = next;
      }
    }
  }
  MESSAGE("S4 dense A^, B^ vs direct solve: " << worst_A << ", kernel vs C A^^l B^: " << worst_K);
  CHECK(worst_A < 1e-12);
  CHECK(worst_K < 1e-11);
  Tensor K = m.kernel(16);
  CHECK(max_abs_diff(K, zeros_like(K)) > 1e-2);
}

TEST_CASE("ssm s4: gradchecked in f64 (input and every parameter) over two calls") {
  Generator g(9);
  S4 m(2, 4, &g);
  m.to(DType::f64);
  widen_steps(m.log_dt, g);
  Tensor x = randn({2, 5, 2}, DType::f64, &g);
  GradcheckResult r = check_gradient(m, [&](const Tensor& xi) {
    State s = m.initial_state(2);
    return two_calls(m, xi, 3, s);
  }, x);
  MESSAGE("S4 gradcheck max abs err " << r.max_abs_err << " (full Jacobian " << r.full_jacobian
                                      << ")");
}

TEST_CASE("ssm s4: forward == T steps, and a cut stream == the uncut one (f64)") {
  Generator g(10);
  S4 m(3, 8, &g);
  m.to(DType::f64);
  widen_steps(m.log_dt, g);
  Tensor x = randn({2, 13, 3}, DType::f64, &g);
  check_modes_agree(m, x, 6, 1e-10);  // calls of 6 and 7 tokens
  check_modes_agree(m, x, 5, 1e-10);  // 5 and 8
  check_modes_agree(m, x, 1, 1e-10);  // 1 and 12
}

// From initial_state() the layers skip the carried state's terms (exactly zero); the full path,
// forced by a zero state that requires grad, must give the same outputs, final state and
// parameter gradients.
static void check_zero_state_skip(SequenceMixer& m, const Tensor& x) {
  auto run = [&](bool force_full) {
    State st = m.initial_state(x.size(0));
    Tensor x0 = state_get(st, "x", "test");
    REQUIRE(is_zero_state(x0));
    if (force_full) {
      Tensor leaf = detach(x0);
      leaf.requires_grad_(true);
      REQUIRE(!is_zero_state(leaf));
      state_set(st, "x", leaf);
    }
    for (Tensor& p : m.parameters()) p.impl()->grad.reset();
    Tensor y = m.forward(x, st);
    backward(sum(mul(y, y)));
    std::vector<Tensor> grads;
    for (Tensor& p : m.parameters()) grads.push_back(detach(p.grad()));
    return std::tuple{detach(y), detach(state_get(st, "x", "test")), grads};
  };
  auto [y_skip, x_skip, g_skip] = run(false);
  auto [y_full, x_full, g_full] = run(true);
  CHECK(max_abs_diff(y_skip, y_full) < 1e-13);
  CHECK(max_abs_diff(x_skip, x_full) < 1e-13);
  REQUIRE(g_skip.size() == g_full.size());
  for (size_t k = 0; k < g_skip.size(); ++k) CHECK(max_abs_diff(g_skip[k], g_full[k]) < 1e-12);
}

TEST_CASE("ssm s4d, s4: the zero-state skip equals the full carried-state path (f64)") {
  Generator g(21);
  S4D s4d(4, 8, S4DInit::lin, &g);
  s4d.to(DType::f64);
  S4 s4(3, 8, &g);
  s4.to(DType::f64);
  check_zero_state_skip(s4d, randn({2, 9, 4}, DType::f64, &g));
  check_zero_state_skip(s4, randn({2, 9, 3}, DType::f64, &g));
  Tensor nonzero = from_vector(std::vector<double>{0, 0, 0, 1e-300}, {2, 1, 1, 2}, DType::f64);
  CHECK(!is_zero_state(nonzero));  // a single tiny entry is not zero
}

TEST_CASE("ssm s4d, s4: without state gradients the final state is the same values, no graph") {
  Generator g(22);
  S4D s4d(4, 8, S4DInit::inv, &g);
  s4d.to(DType::f64);
  S4 s4(3, 8, &g);
  s4.to(DType::f64);
  for (SequenceMixer* m : std::vector<SequenceMixer*>{&s4d, &s4}) {
    Tensor x = randn({2, 7, m->width()}, DType::f64, &g);
    State warm = m->initial_state(2);
    {
      NoGradGuard values;
      m->forward(x, warm);  // a non-zero carried state, so the x0 terms run too
    }
    auto run = [&](bool state_grad) {
      State st = warm;
      for (Tensor& p : m->parameters()) p.impl()->grad.reset();
      std::optional<NoStateGradGuard> off;
      if (!state_grad) off.emplace();
      Tensor y = m->forward(x, st);
      const Tensor& x_L = state_get(st, "x", "test");
      CHECK(x_L.requires_grad() == state_grad);
      CHECK(state_grad_enabled() == state_grad);
      backward(sum(mul(y, y)));
      std::vector<Tensor> grads{detach(y), detach(x_L)};
      for (Tensor& p : m->parameters()) grads.push_back(detach(p.grad()));
      return grads;
    };
    std::vector<Tensor> with = run(true), without = run(false);
    CHECK(state_grad_enabled());  // the guard restored the mode
    REQUIRE(with.size() == without.size());
    for (size_t k = 0; k < with.size(); ++k) CHECK(max_abs_diff(with[k], without[k]) == 0.0);
  }
}

TEST_CASE("ssm s4: bad shapes are errors naming the layer and the shapes") {
  Generator g(11);
  S4 m(4, 8, &g);
  State s = m.initial_state(2);
  CHECK(contains(error_of([&] { m.forward(zeros({2, 5, 3}), s); }),
                 "S4: expected input [B, T, 4]"));
  CHECK(contains(error_of([&] { m.forward(zeros({2, 5, 3}), s); }), "got [2, 5, 3]"));
  CHECK(contains(error_of([&] { m.step(zeros({2, 4, 1}), s); }),
                 "S4: step expects one token [B, 4]"));
  CHECK(contains(error_of([&] { m.step(zeros({1, 4}), s); }),
                 "S4: state x must be [1, 4, 8, 2] for a batch of 1, got [2, 4, 8, 2]"));
  CHECK(contains(error_of([&] { S4 bad(4, 7, &g); }), "S4: state_size N must be even"));
}

// ---------------------------------------------------------------- PyTorch goldens

TEST_CASE("ssm s4: S4D (both inits) and S4 match PyTorch (tests/golden/ssm_s4.json, f64)") {
  const nlohmann::json doc = golden::load_json("ssm_s4.json");
  REQUIRE(doc.at("cases").size() == 3);
  for (const auto& c : doc.at("cases")) {
    const std::string name = c.at("name");
    CAPTURE(name);
    const auto& cfg = c.at("config");
    const int64_t H = cfg.at("d_model"), N = cfg.at("state_size"), cut = cfg.at("cut");
    Generator g(13);
    std::shared_ptr<SequenceMixer> layer;
    if (c.at("layer") == "S4D") {
      S4DInit init = cfg.at("init") == "lin" ? S4DInit::lin : S4DInit::inv;
      layer = std::make_shared<S4D>(H, N, init, &g);
    }
    else
      layer = std::make_shared<S4>(H, N, &g);
    layer->to(DType::f64);
    // the parameters by name: the same set, the same shapes
    nn::NamedTensors params = layer->named_parameters();
    std::set<std::string> ours, theirs;
    for (auto& [n, p] : params) ours.insert(n);
    for (auto& [n, j] : c.at("params").items()) theirs.insert(n);
    REQUIRE(ours == theirs);
    {
      NoGradGuard ng;
      for (auto& [n, p] : params) {
        Tensor t = golden::tensor_from_json(c.at("params").at(n));
        REQUIRE_MESSAGE(t.shape() == p.shape(), n);
        raw::copy_(p, t);
      }
    }
    Tensor x = golden::tensor_from_json(c.at("input"));
    x.requires_grad_(true);
    State st = layer->initial_state(x.size(0));
    Tensor y = two_calls(*layer, x, cut, st);
    Tensor w = golden::tensor_from_json(c.at("grad_output"));
    backward(sum(mul(y, w)));
    double worst = max_abs_diff(y, golden::tensor_from_json(c.at("output")));
    worst = std::max(worst, max_abs_diff(x.grad(), golden::tensor_from_json(c.at("input_grad"))));
    for (auto& [n, p] : params) {
      CAPTURE(n);
      double d = max_abs_diff(p.grad(), golden::tensor_from_json(c.at("param_grads").at(n)));
      CHECK(d < 1e-12);
      worst = std::max(worst, d);
    }
    {
      NoGradGuard ng;
      State ss = layer->initial_state(x.size(0));
      worst = std::max(worst, max_abs_diff(by_steps(*layer, x, ss),
                                           golden::tensor_from_json(c.at("step_output"))));
    }
    MESSAGE(name << ": max |engram - torch| over output, steps and every gradient " << worst);
    CHECK(worst < 1e-12);
  }
}

TEST_CASE("ssm s4: in f32 at N = 64, two calls of 128 tokens, both layers stay close to f64") {
  for (int which = 0; which < 2; ++which) {
    Generator g(14);
    std::shared_ptr<SequenceMixer> m32, m64;
    if (which == 0)
      m32 = std::make_shared<S4D>(4, 64, S4DInit::inv, &g),
      m64 = std::make_shared<S4D>(4, 64, S4DInit::inv, &g);
    else
      m32 = std::make_shared<S4>(4, 64, &g), m64 = std::make_shared<S4>(4, 64, &g);
    m64->to(DType::f64);
    {
      NoGradGuard ng;
      auto p32 = m32->named_parameters(), p64 = m64->named_parameters();
      for (size_t i = 0; i < p32.size(); ++i) raw::copy_(p64[i].second, p32[i].second);
    }
    Tensor x = randn({2, 256, 4}, DType::f32, &g);
    NoGradGuard ng;
    State s32 = m32->initial_state(2), s64 = m64->initial_state(2);
    Tensor y32 = two_calls(*m32, x, 128, s32);
    Tensor y64 = two_calls(*m64, to_dtype(x, DType::f64), 128, s64);
    double d = max_abs_diff(y32, y64), scale = max_abs_diff(y64, zeros_like(y64));
    MESSAGE(m32->type_name() << " f32 vs f64: max abs diff " << d << " (outputs up to " << scale
                             << ")");
    CHECK(d < 1e-4 * scale);
  }
}
