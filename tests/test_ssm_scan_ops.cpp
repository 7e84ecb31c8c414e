// tests/test_ssm_scan_ops.cpp — the state-space primitives of nn/ssm/ against plain references:
//   - HiPPO-LegS (nn/ssm/hippo.h): the matrix entries, S = A + P P^T normal, the DPLR
//     diagonalisation (V unitary, S V = V Lambda, A rebuilt from Lambda, V^* P, V^* B) to 1e-10;
//   - linear_scan_2x2 equals a per-step loop of 2x2 products (broadcast M, h0, non-contiguous f,
//     sizes large enough for the OpenMP split), and a complex mode equals complex multiplication;
//   - cauchy_kernel equals a direct std::complex double loop (broadcast leading dims, f32 too);
//   - vandermonde equals std::exp of the complex products (long runs past the reseed, f32 to
//     float rounding, a non-contiguous a), its gradient the sum of p conj(V) g;
//   - complex_mul is bit-identical to the four real products it replaces (forward) and equals
//     std::complex products under broadcasting;
//   - the gradients of both ops under a broadcast M / shared z are the reduced full gradients;
//   - bad shapes are errors naming the op and the shapes.
// The registry (autograd/opinfo_ssm_scan.cpp, opinfo_fft_scan.cpp) gradchecks the ops and
// compares them with PyTorch.
#include <doctest/doctest.h>

#include <complex>

#include "autograd/ops.h"
#include "nn/ssm/hippo.h"
#include "tests/test_util.h"

using namespace engram;
using namespace engram::nn::ssm;
using engram::testing::contains;
using engram::testing::error_of;
using engram::testing::max_abs_diff;

namespace {

// max |X - Y| over two complex matrices/vectors.
double max_cdiff(const std::vector<cdouble>& a, const std::vector<cdouble>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, engram::testing::abs_diff(0, std::abs(a[i] - b[i])));
  return m;
}

// C = X Y for row-major n x n complex matrices.
std::vector<cdouble> cmatmul(const std::vector<cdouble>& X, const std::vector<cdouble>& Y, int64_t n) {
  std::vector<cdouble> C(n * n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < n; ++j) C[i * n + j] += X[i * n + k] * Y[k * n + j];
  return C;
}

std::vector<cdouble> adjoint(const std::vector<cdouble>& X, int64_t n) {
  std::vector<cdouble> A(n * n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) A[j * n + i] = std::conj(X[i * n + j]);
  return A;
}

// The 2x2 scan by a per-step loop on host vectors: M [B, T, F, 2, 2], f [B, T, F, 2], h0 [B, F, 2]
// (empty = zeros), all dense.
std::vector<double> scan_loop(const std::vector<double>& M, const std::vector<double>& f,
                              const std::vector<double>& h0, int64_t B, int64_t T, int64_t F) {
  std::vector<double> h(B * T * F * 2);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < F; ++c) {
      double p0 = h0.empty() ? 0 : h0[(b * F + c) * 2], p1 = h0.empty() ? 0 : h0[(b * F + c) * 2 + 1];
      for (int64_t t = 0; t < T; ++t) {
        const int64_t i = (b * T + t) * F + c;
        const double* m = &M[i * 4];
        double x0 = m[0] * p0 + m[1] * p1 + f[i * 2], x1 = m[2] * p0 + m[3] * p1 + f[i * 2 + 1];
        h[i * 2] = p0 = x0;
        h[i * 2 + 1] = p1 = x1;
      }
    }
  return h;
}

}  // namespace

TEST_CASE("hippo: the LegS matrices have the closed-form entries") {
  HippoLegS h = make_hippo_legs(4);
  CHECK(h.A[0 * 4 + 0] == -1.0);
  CHECK(h.A[3 * 4 + 3] == -4.0);
  CHECK(h.A[2 * 4 + 1] == doctest::Approx(-std::sqrt(5.0) * std::sqrt(3.0)));
  CHECK(h.A[1 * 4 + 2] == 0.0);
  CHECK(h.B[2] == doctest::Approx(std::sqrt(5.0)));
  CHECK(h.P[3] == doctest::Approx(std::sqrt(3.5)));
  // S = A + P P^T is -1/2 I plus a skew-symmetric matrix (hence normal)
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 4; ++j) {
      double s = h.A[i * 4 + j] + h.P[i] * h.P[j], st = h.A[j * 4 + i] + h.P[j] * h.P[i];
      if (i == j) CHECK(s == doctest::Approx(-0.5));
      else CHECK(s == doctest::Approx(-st));
    }
  CHECK(contains(error_of([] { make_hippo_legs(0); }), "make_hippo_legs"));
}

TEST_CASE("hippo: the DPLR diagonalisation is exact (V unitary, S V = V Lambda, A rebuilt)") {
  for (int64_t N : {1, 2, 7, 8, 64}) {
    CAPTURE(N);
    HippoLegS h = make_hippo_legs(N);
    HippoDPLR d = make_dplr_hippo(N);
    REQUIRE((int64_t)d.Lambda.size() == N);
    // V^* V = I
    std::vector<cdouble> I(N * N);
    for (int64_t i = 0; i < N; ++i) I[i * N + i] = 1;
    CHECK(max_cdiff(cmatmul(adjoint(d.V, N), d.V, N), I) < 1e-10);
    // S V = V diag(Lambda)
    std::vector<cdouble> S(N * N), VL(N * N);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j) {
        S[i * N + j] = h.A[i * N + j] + h.P[i] * h.P[j];
        VL[i * N + j] = d.V[i * N + j] * d.Lambda[j];
      }
    CHECK(max_cdiff(cmatmul(S, d.V, N), VL) < 1e-10 * N);
    // A = V (diag(Lambda) - (V^* P)(V^* P)^*) V^*
    std::vector<cdouble> inner(N * N), A(N * N);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j)
        inner[i * N + j] = (i == j ? d.Lambda[i] : 0.0) - d.P[i] * std::conj(d.P[j]);
    for (int64_t i = 0; i < N * N; ++i) A[i] = h.A[i];
    CHECK(max_cdiff(cmatmul(cmatmul(d.V, inner, N), adjoint(d.V, N), N), A) < 1e-10 * N);
    // B, P in the eigenbasis: V (V^* B) = B
    std::vector<cdouble> VB(N), B(N);
    for (int64_t i = 0; i < N; ++i) {
      B[i] = d.B_orig[i];
      for (int64_t j = 0; j < N; ++j) VB[i] += d.V[i * N + j] * d.B[j];
    }
    CHECK(max_cdiff(VB, B) < 1e-10 * N);
    // Lambda = -1/2 + i w, w ascending, in +- pairs
    for (int64_t j = 0; j < N; ++j) {
      CHECK(d.Lambda[j].real() == doctest::Approx(-0.5));
      if (j > 0) CHECK(d.Lambda[j].imag() >= d.Lambda[j - 1].imag());
      CHECK(std::abs(d.Lambda[j].imag() + d.Lambda[N - 1 - j].imag()) < 1e-9 * N);
    }
  }
}

TEST_CASE("hippo: hermitian_eigh solves a small Hermitian matrix and refuses a non-Hermitian one") {
  // [[2, i], [-i, 2]]: eigenvalues 1 and 3
  std::vector<cdouble> H{2, cdouble(0, 1), cdouble(0, -1), 2}, V;
  std::vector<double> w;
  hermitian_eigh(2, H, w, V);
  CHECK(w[0] == doctest::Approx(1.0));
  CHECK(w[1] == doctest::Approx(3.0));
  for (int j = 0; j < 2; ++j)  // H v = w v, column j
    for (int i = 0; i < 2; ++i)
      CHECK(std::abs(H[i * 2] * V[j] + H[i * 2 + 1] * V[2 + j] - w[j] * V[i * 2 + j]) < 1e-12);
  std::vector<cdouble> bad{2, 1, 0, 2};
  CHECK(contains(error_of([&] { hermitian_eigh(2, bad, w, V); }), "not Hermitian"));
  // complex_tensor and complex_values round-trip
  Tensor t = complex_tensor({cdouble(1, 2), cdouble(-3, 0.5)}, {2});
  CHECK(t.shape() == Shape{2, 2});
  CHECK(complex_values(t)[1] == cdouble(-3, 0.5));
}

TEST_CASE("linear_scan_2x2 equals a per-step loop (per-step and broadcast M, h0, large sizes)") {
  Generator g(5);
  struct Case {
    int64_t B, T, F;
    Shape ms;  // M's own shape, broadcast to [B, T, F, 2, 2]
    bool h0;
  };
  for (const Case& c : {Case{2, 5, 3, {2, 5, 3, 2, 2}, true}, Case{3, 4, 2, {2, 2, 2}, false},
                        Case{2, 6, 4, {1, 6, 4, 2, 2}, true}, Case{1, 1, 1, {1, 1, 1, 2, 2}, true},
                        Case{4, 70, 80, {80, 2, 2}, true}, Case{3, 40, 300, {3, 40, 300, 2, 2}, false}}) {
    CAPTURE(c.B);
    CAPTURE(c.T);
    CAPTURE(c.F);
    Tensor M = mul(rand(c.ms, DType::f64, &g) - 0.5, 1.2);
    Tensor f = randn({c.B, c.T, c.F, 2}, DType::f64, &g);
    Tensor h0 = c.h0 ? randn({c.B, c.F, 2}, DType::f64, &g) : Tensor();
    Tensor h = linear_scan_2x2(M, f, h0);
    std::vector<double> want =
        scan_loop(contiguous(expand(M, {c.B, c.T, c.F, 2, 2})).to_vector<double>(),
                  f.to_vector<double>(), c.h0 ? h0.to_vector<double>() : std::vector<double>{},
                  c.B, c.T, c.F);
    CHECK(max_abs_diff(h.to_vector<double>(), want) < 1e-12);
    // f32 agrees to f32 rounding
    Tensor h32 = linear_scan_2x2(to_dtype(M, DType::f32), to_dtype(f, DType::f32),
                                 c.h0 ? to_dtype(h0, DType::f32) : Tensor());
    CHECK(max_abs_diff(h32.to_vector<double>(), want) < 1e-4);
  }
}

TEST_CASE("linear_scan_2x2: non-contiguous f and several feature dims give the dense result") {
  Generator g(6);
  Tensor M = mul(rand({2, 1, 2, 2}, DType::f64, &g) - 0.5, 1.2);  // [F1, 1 (broadcast F2), 2, 2]
  Tensor fT = randn({2, 3, 2, 2, 2}, DType::f64, &g);               // [T, B, F1, F2, 2] -> permuted
  Tensor f = permute(fT, {1, 0, 2, 3, 4});                          // [B=3, T=2, 2, 2, 2]
  Tensor h0 = randn({2, 2, 2}, DType::f64, &g);                     // [F1, F2, 2] shared over B
  Tensor h = linear_scan_2x2(M, f, h0);
  CHECK(h.shape() == Shape{3, 2, 2, 2, 2});
  Tensor hd = linear_scan_2x2(contiguous(expand(M, {3, 2, 2, 2, 2, 2})), contiguous(f),
                              contiguous(expand(h0, {3, 2, 2, 2})));
  CHECK(max_abs_diff(h, hd) < 1e-14);
}

TEST_CASE("linear_scan_2x2 with M = [[re, -im], [im, re]] is the complex recurrence h = a h + b") {
  Generator g(7);
  const int64_t B = 2, T = 9, F = 3;
  Tensor a = mul(rand({F, 2}, DType::f64, &g) - 0.5, 1.6), b = randn({B, T, F, 2}, DType::f64, &g);
  Tensor re = select(a, -1, 0), im = select(a, -1, 1);
  Tensor M = stack({stack({re, neg(im)}, -1), stack({im, re}, -1)}, -2);  // [F, 2, 2]
  Tensor h = linear_scan_2x2(M, b);
  std::vector<cdouble> av = complex_values(a), bv = complex_values(b), hv = complex_values(h);
  double err = 0;
  for (int64_t bi = 0; bi < B; ++bi)
    for (int64_t c = 0; c < F; ++c) {
      cdouble x = 0;
      for (int64_t t = 0; t < T; ++t) {
        x = av[c] * x + bv[(bi * T + t) * F + c];
        err = std::max(err, std::abs(x - hv[(bi * T + t) * F + c]));
      }
    }
  CHECK(err < 1e-12);
}

TEST_CASE("linear_scan_2x2: the gradient of a shared M is the sum of the per-step gradients") {
  Generator g(8);
  Tensor M = mul(rand({3, 2, 2}, DType::f64, &g) - 0.5, 1.2);
  Tensor f = randn({2, 5, 3, 2}, DType::f64, &g), h0 = randn({2, 3, 2}, DType::f64, &g);
  Tensor w = randn({2, 5, 3, 2}, DType::f64, &g);
  M.requires_grad_(true);
  backward(sum(mul(linear_scan_2x2(M, f, h0), w)));
  Tensor Mfull = contiguous(expand(detach(M), {2, 5, 3, 2, 2}));
  Mfull.requires_grad_(true);
  backward(sum(mul(linear_scan_2x2(Mfull, f, h0), w)));
  CHECK(max_abs_diff(M.grad(), sum(Mfull.grad(), {0, 1})) < 1e-12);
}

TEST_CASE("linear_scan_2x2: bad shapes are errors naming the op and the shapes") {
  Tensor f = zeros({2, 3, 4, 2}, DType::f64);
  CHECK(contains(error_of([&] { linear_scan_2x2(zeros({4, 3, 3}, DType::f64), f); }),
                 "linear_scan_2x2: M of shape [4, 3, 3]"));
  CHECK(contains(error_of([&] { linear_scan_2x2(zeros({5, 2, 2}, DType::f64), f); }),
                 "does not broadcast"));
  CHECK(contains(error_of([&] { linear_scan_2x2(zeros({2, 2}, DType::f64), zeros({2, 3, 4, 3}, DType::f64)); }),
                 "linear_scan_2x2: expected f of shape [B, T, F..., 2], got [2, 3, 4, 3]"));
  CHECK(contains(error_of([&] { linear_scan_2x2(zeros({2, 2}, DType::f64), f, zeros({2, 5, 2}, DType::f64)); }),
                 "linear_scan_2x2: h0 of shape [2, 5, 2]"));
  CHECK(contains(error_of([&] { linear_scan_2x2(zeros({2, 2}), f); }), "dtype mismatch"));
}

TEST_CASE("cauchy_kernel equals a direct complex loop (broadcast leading dims, f32 too)") {
  Generator g(9);
  // v [2, 1, N], w [1, 3, N], z [3, L]: rows broadcast to [2, 3]
  const int64_t N = 5, L = 7;
  Tensor v = randn({2, 1, N, 2}, DType::f64, &g), z = randn({3, L, 2}, DType::f64, &g);
  Tensor w = randn({1, 3, N, 2}, DType::f64, &g);
  // Re w in [-1, -0.3), Re z in [0, 0.5): |z - w| >= 0.3
  w = stack({mul(rand({1, 3, N}, DType::f64, &g), 0.7) - 1.0, select(w, -1, 1)}, -1);
  z = stack({mul(rand({3, L}, DType::f64, &g), 0.5), select(z, -1, 1)}, -1);
  Tensor k = cauchy_kernel(v, z, w);
  REQUIRE(k.shape() == Shape{2, 3, L, 2});
  std::vector<cdouble> vv = complex_values(v), zv = complex_values(z), wv = complex_values(w),
                       kv = complex_values(k);
  double err = 0;
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t l = 0; l < L; ++l) {
        cdouble want = 0;
        for (int64_t n = 0; n < N; ++n) want += vv[a * N + n] / (zv[b * L + l] - wv[b * N + n]);
        err = std::max(err, std::abs(want - kv[(a * 3 + b) * L + l]));
      }
  CHECK(err < 1e-12);
  Tensor k32 = cauchy_kernel(to_dtype(v, DType::f32), to_dtype(z, DType::f32), to_dtype(w, DType::f32));
  CHECK(max_abs_diff(k32, k) < 1e-4);
  // a size big enough for the OpenMP split gives the same as the sum of its row slices
  Tensor vb = randn({64, 16, 2}, DType::f64, &g);
  Tensor wb = stack({mul(rand({64, 16}, DType::f64, &g), 0.7) - 1.0, randn({64, 16}, DType::f64, &g)}, -1);
  Tensor zb = stack({mul(rand({64, 50}, DType::f64, &g), 0.5), randn({64, 50}, DType::f64, &g)}, -1);
  Tensor kb = cauchy_kernel(vb, zb, wb);
  Tensor k7 = cauchy_kernel(select(vb, 0, 7), select(zb, 0, 7), select(wb, 0, 7));
  CHECK(max_abs_diff(select(kb, 0, 7), k7) < 1e-14);
}

TEST_CASE("cauchy_kernel: the gradients of a shared z are the sums over rows, and bad shapes error") {
  Generator g(10);
  Tensor v = randn({3, 4, 2}, DType::f64, &g), w = randn({3, 4, 2}, DType::f64, &g);
  w = stack({mul(rand({3, 4}, DType::f64, &g), 0.7) - 1.0, select(w, -1, 1)}, -1);
  Tensor z = stack({mul(rand({6}, DType::f64, &g), 0.5), randn({6}, DType::f64, &g)}, -1);
  Tensor up = randn({3, 6, 2}, DType::f64, &g);
  z.requires_grad_(true);
  backward(sum(mul(cauchy_kernel(v, z, w), up)));
  Tensor zf = contiguous(expand(detach(z), {3, 6, 2}));
  zf.requires_grad_(true);
  backward(sum(mul(cauchy_kernel(v, zf, w), up)));
  CHECK(max_abs_diff(z.grad(), sum(zf.grad(), {0})) < 1e-12);
  CHECK(contains(error_of([&] { cauchy_kernel(v, detach(z), zeros({3, 5, 2}, DType::f64)); }),
                 "cauchy_kernel: expected v, w [.., N, 2] (same N)"));
  CHECK(contains(error_of([&] { cauchy_kernel(zeros({3, 4, 3}, DType::f64), detach(z), w); }),
                 "cauchy_kernel: expected v, w"));
  CHECK(contains(error_of([&] { cauchy_kernel(zeros({2, 4, 2}, DType::f64), detach(zf), w); }),
                 "do not broadcast"));
}

TEST_CASE("vandermonde equals exp of the complex products (long runs, f32, strided a, errors)") {
  Generator g(11);
  // decaying and growing modes, large imaginary parts (S4D-Inv reaches |Im dtA| ~ 1e2)
  Tensor re = mul(rand({4, 3}, DType::f64, &g), 0.6) - 0.5;
  Tensor im = mul(randn({4, 3}, DType::f64, &g), 30.0);
  Tensor a = stack({re, im}, -1);  // [4, 3, 2]
  const int64_t P = 300;           // many 16-power reseed blocks
  for (auto [start, step] : {std::pair{0.0, 1.0}, std::pair{7.0, -0.5}}) {
    Tensor V = vandermonde(a, P, start, step);
    REQUIRE(V.shape() == Shape{4, 3, P, 2});
    std::vector<cdouble> av = complex_values(a), vv = complex_values(V);
    double err = 0;
    for (int64_t r = 0; r < 12; ++r)
      for (int64_t j = 0; j < P; ++j) {
        cdouble want = std::exp(av[r] * (start + j * step));
        err = std::max(err, std::abs(vv[r * P + j] - want) / std::max(1.0, std::abs(want)));
      }
    // the reference's own angle Im(a) p (up to ~3e4 rad here) carries ~3e4 * 2^-53 = 3e-12
    CHECK(err < 1e-11);
    // f32: the powers of the float a, computed in double and rounded once to float
    Tensor a32 = to_dtype(a, DType::f32);
    Tensor V32 = vandermonde(a32, P, start, step);
    Tensor V_of_a32 = vandermonde(to_dtype(a32, DType::f64), P, start, step);
    CHECK(engram::testing::max_rel_diff(to_dtype(V32, DType::f64).to_vector<double>(),
                                        V_of_a32.to_vector<double>(), 1.0) < 1e-7);
  }
  // a non-contiguous a (a transposed view) gives its contiguous copy's powers
  Tensor at = transpose(a, 0, 1);
  CHECK(max_abs_diff(vandermonde(at, 20), vandermonde(contiguous(at), 20)) == 0.0);
  // the gradient: da = sum_j p_j conj(V_j) g_j
  Tensor a_leaf = detach(a);
  a_leaf.requires_grad_(true);
  Tensor up = randn({4, 3, 9, 2}, DType::f64, &g);
  backward(sum(mul(vandermonde(a_leaf, 9, 2.0, 0.5), up)));
  std::vector<cdouble> av = complex_values(a), uv = complex_values(up),
                       gv = complex_values(a_leaf.grad());
  double gerr = 0;
  for (int64_t r = 0; r < 12; ++r) {
    cdouble want = 0;
    for (int64_t j = 0; j < 9; ++j) {
      const double p = 2.0 + 0.5 * j;
      want += p * std::conj(std::exp(av[r] * p)) * uv[r * 9 + j];
    }
    gerr = std::max(gerr, std::abs(want - gv[r]));
  }
  CHECK(gerr < 1e-10);
  CHECK(contains(error_of([&] { vandermonde(zeros({3, 4}, DType::f64), 5); }),
                 "vandermonde: expected complex a [.., 2]"));
  CHECK(contains(error_of([&] { vandermonde(a, 0); }), "vandermonde: count must be >= 1, got 0"));
  CHECK(contains(error_of([&] { vandermonde(a, 3, 0.0, INFINITY); }), "must be finite"));
}

TEST_CASE("complex_mul: bit-identical to its four real products, broadcasting, errors") {
  Generator g(12);
  Tensor a = randn({2, 3, 5, 2}), b = randn({5, 2});  // f32: a filter broadcast over a batch
  Tensor ar = select(a, -1, 0), ai = select(a, -1, 1), br = select(b, -1, 0), bi = select(b, -1, 1);
  Tensor four = stack({sub(mul(ar, br), mul(ai, bi)), add(mul(ar, bi), mul(ai, br))}, -1);
  CHECK(max_abs_diff(complex_mul(a, b), four) == 0.0);
  Tensor x = randn({2, 1, 4, 2}, DType::f64, &g), y = randn({3, 1, 2}, DType::f64, &g);
  Tensor z = complex_mul(x, y);
  REQUIRE(z.shape() == Shape{2, 3, 4, 2});
  std::vector<cdouble> xv = complex_values(x), yv = complex_values(y), zv = complex_values(z);
  double err = 0;
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t k = 0; k < 4; ++k)
        err = std::max(err, std::abs(zv[(i * 3 + j) * 4 + k] - xv[i * 4 + k] * yv[j]));
  CHECK(err < 1e-15);
  CHECK(contains(error_of([&] { complex_mul(zeros({3, 3}), zeros({3, 2})); }),
                 "complex_mul: expects complex tensors [..., 2] (re, im), got [3, 3] and [3, 2]"));
  CHECK(contains(error_of([&] { complex_mul(zeros({3, 2}), zeros({4, 2})); }), "complex_mul"));
  CHECK(contains(error_of([&] { complex_mul(zeros({3, 2}), zeros({3, 2}, DType::f64)); }),
                 "dtype mismatch"));
}
