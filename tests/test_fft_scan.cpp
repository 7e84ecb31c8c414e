// tests/test_fft_scan.cpp — rfft / irfft against known spectra and naive DFTs, round trips in f32
// and f64, and linear_scan (forward and backward) against naive loops; error messages for bad
// shapes. Gradients of every op are also gradchecked through the registry (test_registry.cpp).
#include <doctest/doctest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "autograd/ops.h"
#include "tests/test_util.h"

using namespace engram;
using namespace engram::testing;

namespace {

// Naive DFT of each row of a [rows, n] f64 signal: [rows, n/2+1, 2].
std::vector<double> naive_rfft(const std::vector<double>& x, int64_t rows, int64_t n) {
  const int64_t h = n / 2 + 1;
  std::vector<double> out(rows * h * 2);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < h; ++k) {
      double re = 0, im = 0;
      for (int64_t m = 0; m < n; ++m) {
        double th = 2 * std::numbers::pi * double(k * m) / double(n);
        re += x[r * n + m] * std::cos(th);
        im -= x[r * n + m] * std::sin(th);
      }
      out[(r * h + k) * 2] = re;
      out[(r * h + k) * 2 + 1] = im;
    }
  return out;
}

// h_t = a_t h_{t-1} + b_t on contiguous [B, T, F] vectors (a, b already full shape).
std::vector<double> naive_scan(const std::vector<double>& a, const std::vector<double>& b,
                               const std::vector<double>* h0, int64_t B, int64_t T, int64_t F) {
  std::vector<double> h(B * T * F);
  for (int64_t i = 0; i < B; ++i)
    for (int64_t f = 0; f < F; ++f) {
      double prev = h0 ? (*h0)[i * F + f] : 0.0;
      for (int64_t t = 0; t < T; ++t) {
        int64_t k = (i * T + t) * F + f;
        prev = a[k] * prev + b[k];
        h[k] = prev;
      }
    }
  return h;
}

}  // namespace

TEST_CASE("rfft of a cosine peaks at its frequency") {
  for (DType dt : {DType::f64, DType::f32}) {
    const int64_t n = 16, freq = 3;
    std::vector<double> x(n);
    for (int64_t m = 0; m < n; ++m) x[m] = std::cos(2 * std::numbers::pi * double(freq * m) / n);
    Tensor y = rfft(from_vector(x, {n}, dt));
    REQUIRE(y.shape() == Shape{n / 2 + 1, 2});
    std::vector<double> v = y.to_vector<double>();
    for (int64_t k = 0; k <= n / 2; ++k) {
      CHECK(std::abs(v[k * 2] - (k == freq ? n / 2.0 : 0.0)) < 1e-5);
      CHECK(std::abs(v[k * 2 + 1]) < 1e-5);
    }
  }
}

TEST_CASE("rfft matches a naive DFT for odd and even n, batch dims, non-contiguous input") {
  Generator g(3);
  for (int64_t n : {1, 2, 5, 8, 15, 64}) {
    Tensor x = randn({2, 3, n}, DType::f64, &g);
    Tensor y = rfft(x);
    REQUIRE(y.shape() == Shape{2, 3, n / 2 + 1, 2});
    CHECK(max_abs_diff(y.to_vector<double>(), naive_rfft(x.to_vector<double>(), 6, n)) < 1e-9);
  }
  // x^T of a [n, 4] tensor: its last dim has stride 4
  Tensor base = randn({7, 4}, DType::f64, &g);
  Tensor xt = transpose(base, 0, 1);
  REQUIRE(!xt.is_contiguous());
  Tensor y = rfft(xt);
  CHECK(max_abs_diff(y.to_vector<double>(), naive_rfft(xt.to_vector<double>(), 4, 7)) < 1e-9);
}

TEST_CASE("irfft(rfft(x), n) == x for even and odd n in f32 and f64") {
  Generator g(5);
  for (DType dt : {DType::f64, DType::f32}) {
    const double tol = dt == DType::f64 ? 1e-12 : 1e-5;
    for (int64_t n : {1, 2, 3, 8, 9, 100, 127}) {
      Tensor x = randn({3, 2, n}, dt, &g);
      Tensor back = irfft(rfft(x), n);
      REQUIRE(back.shape() == x.shape());
      CHECK(back.dtype() == dt);
      CHECK(max_abs_diff(back.to_vector<double>(), x.to_vector<double>()) < tol);
    }
  }
  // enough rows to be split into several plan blocks and run on threads
  Tensor x = randn({1000, 33}, DType::f32, &g);
  CHECK(max_abs_diff(irfft(rfft(x), 33).to_vector<double>(), x.to_vector<double>()) < 1e-5);
  // f32 spectra (|X_k| ~ sqrt(33)) against the f64 naive DFT of the same f32 input: the measured
  // error is 1.7e-6 here (up to 2.4e-6 over seeds 1..8), so 1e-5 leaves a few times that.
  Tensor y = rfft(x);
  CHECK(max_abs_diff(y.to_vector<double>(), naive_rfft(x.to_vector<double>(), 1000, 33)) < 1e-5);
}

TEST_CASE("irfft ignores the imaginary parts of DC and Nyquist, and trims or pads like torch") {
  // X = [1+5i, 2-1i, 3+7i] for n = 4: x_m = (1 + 2*Re(X_1 e^{i pi m/2}) + 3 (-1)^m) / 4
  Tensor X = from_vector(std::vector<double>{1, 5, 2, -1, 3, 7}, {3, 2}, DType::f64);
  std::vector<double> x = irfft(X, 4).to_vector<double>();
  std::vector<double> want(4);
  for (int m = 0; m < 4; ++m) {
    double th = std::numbers::pi * m / 2;
    want[m] = (1 + 2 * (2 * std::cos(th) + 1 * std::sin(th)) + 3 * std::cos(std::numbers::pi * m)) / 4;
  }
  CHECK(max_abs_diff(x, want) < 1e-12);
  // a longer spectrum is trimmed to n/2+1 bins: bins past index 2 do not matter for n = 4
  Tensor Xlong = from_vector(std::vector<double>{1, 5, 2, -1, 3, 7, 9, 9}, {4, 2}, DType::f64);
  CHECK(max_abs_diff(irfft(Xlong, 4).to_vector<double>(), want) < 1e-12);
  // a shorter one is zero-padded: [1, 2-1i] for n = 4 equals [1, 2-1i, 0]
  Tensor Xshort = from_vector(std::vector<double>{1, 0, 2, -1}, {2, 2}, DType::f64);
  Tensor Xpad = from_vector(std::vector<double>{1, 0, 2, -1, 0, 0}, {3, 2}, DType::f64);
  CHECK(max_abs_diff(irfft(Xshort, 4).to_vector<double>(), irfft(Xpad, 4).to_vector<double>()) <
        1e-12);
}

TEST_CASE("rfft and irfft backwards match their adjoint formulas") {
  Generator g(11);
  for (int64_t n : {6, 7}) {
    // <rfft(x), G> = <x, rfft^T(G)>: check d/dx sum(rfft(x) * G) = rfft^T G by the naive DFT
    Tensor x = randn({n}, DType::f64, &g).requires_grad_();
    Tensor G = randn({n / 2 + 1, 2}, DType::f64, &g);
    backward(sum(mul(rfft(x), G)));
    std::vector<double> gv = G.to_vector<double>(), want(n, 0.0);
    for (int64_t m = 0; m < n; ++m)
      for (int64_t k = 0; k <= n / 2; ++k) {
        double th = 2 * std::numbers::pi * double(k * m) / double(n);
        want[m] += gv[k * 2] * std::cos(th) - gv[k * 2 + 1] * std::sin(th);
      }
    CHECK(max_abs_diff(x.grad().to_vector<double>(), want) < 1e-10);

    // irfft's imag DC / Nyquist get exactly zero gradient
    Tensor X = randn({n / 2 + 1, 2}, DType::f64, &g).requires_grad_();
    backward(sum(mul(irfft(X, n), randn({n}, DType::f64, &g))));
    std::vector<double> dX = X.grad().to_vector<double>();
    CHECK(std::abs(dX[1]) < 1e-14);
    if (n % 2 == 0) CHECK(std::abs(dX[(n / 2) * 2 + 1]) < 1e-14);
  }
}

TEST_CASE("fft shape and dtype errors name the op") {
  CHECK_THROWS_WITH_AS(rfft(scalar_tensor(1.0)), doctest::Contains("rfft"), Error);
  CHECK_THROWS_WITH_AS(rfft(zeros({3, 0})), doctest::Contains("rfft"), Error);
  CHECK_THROWS_WITH_AS(rfft(randint(0, 3, {4})), doctest::Contains("rfft"), Error);
  CHECK_THROWS_WITH_AS(irfft(zeros({5, 3}), 8), doctest::Contains("irfft"), Error);
  CHECK_THROWS_WITH_AS(irfft(zeros({2}), 2), doctest::Contains("irfft"), Error);
  CHECK_THROWS_WITH_AS(irfft(zeros({5, 2}), 0), doctest::Contains("irfft"), Error);
}

TEST_CASE("linear_scan matches a naive loop (f32/f64, with and without h0, strided, large)") {
  Generator g(7);
  for (DType dt : {DType::f64, DType::f32}) {
    const double tol = dt == DType::f64 ? 1e-12 : 1e-4;
    for (Shape s : {Shape{3, 6, 4}, Shape{2, 5}, Shape{2, 1, 3}, Shape{4, 50, 600}}) {
      const int64_t B = s[0], T = s[1], F = shape_numel(s) / (B * T);
      Shape hs = s;
      hs.erase(hs.begin() + 1);
      Tensor a = mul(rand(s, dt, &g), 1.8) - 0.9, b = randn(s, dt, &g), h0 = randn(hs, dt, &g);
      std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>(),
                          h0v = h0.to_vector<double>();
      CHECK(max_abs_diff(linear_scan(a, b).to_vector<double>(), naive_scan(av, bv, nullptr, B, T, F)) <
            tol);
      CHECK(max_abs_diff(linear_scan(a, b, h0).to_vector<double>(),
                         naive_scan(av, bv, &h0v, B, T, F)) < tol);
    }
  }
  // non-contiguous inputs: [B, T, F] views of [T, B, F] and [B, F, T] buffers
  Tensor a = transpose(mul(rand({6, 3, 4}, DType::f64, &g), 1.8) - 0.9, 0, 1);
  Tensor b = transpose(randn({3, 4, 6}, DType::f64, &g), 1, 2);
  REQUIRE(!a.is_contiguous());
  REQUIRE(!b.is_contiguous());
  std::vector<double> want = naive_scan(a.to_vector<double>(), b.to_vector<double>(), nullptr, 3, 6, 4);
  CHECK(max_abs_diff(linear_scan(a, b).to_vector<double>(), want) < 1e-12);
}

TEST_CASE("linear_scan broadcasts a and h0, and its gradients match an unrolled loop of ops") {
  Generator g(9);
  const int64_t B = 2, T = 5, D = 3;
  struct Case {
    Shape a, b, h0;
  };
  for (const Case& c : {Case{{B, T, 1}, {B, T, D}, {B, D}}, Case{{1, T, D}, {B, T, D}, {}},
                        Case{{D}, {B, T, D}, {1, D}}, Case{{B, T, D}, {B, T, D}, {B, D}}}) {
    Tensor a = detach(mul(rand(c.a, DType::f64, &g), 1.8) - 0.9).requires_grad_();
    Tensor b = randn(c.b, DType::f64, &g).requires_grad_();
    Tensor h0 = c.h0.empty() ? Tensor() : randn(c.h0, DType::f64, &g).requires_grad_();
    Tensor w = randn({B, T, D}, DType::f64, &g);

    Tensor h = linear_scan(a, b, h0);
    REQUIRE(h.shape() == Shape{B, T, D});
    backward(sum(mul(h, w)));
    Tensor ga = a.grad(), gb = b.grad(), gh0 = h0.defined() ? h0.grad() : Tensor();
    zero_grad({a, b});
    if (h0.defined()) zero_grad({h0});

    // the same recurrence unrolled with recorded ops
    Tensor ae = expand(a, {B, T, D}), be = expand(b, {B, T, D});
    Tensor prev = h0.defined() ? expand(h0, {B, D}) : zeros({B, D}, DType::f64);
    std::vector<Tensor> hs;
    for (int64_t t = 0; t < T; ++t) {
      prev = add(mul(select(ae, 1, t), prev), select(be, 1, t));
      hs.push_back(prev);
    }
    Tensor href = stack(hs, 1);
    CHECK(max_abs_diff(h.to_vector<double>(), href.to_vector<double>()) < 1e-12);
    backward(sum(mul(href, w)));
    CHECK(max_abs_diff(ga.to_vector<double>(), a.grad().to_vector<double>()) < 1e-12);
    CHECK(max_abs_diff(gb.to_vector<double>(), b.grad().to_vector<double>()) < 1e-12);
    if (h0.defined()) CHECK(max_abs_diff(gh0.to_vector<double>(), h0.grad().to_vector<double>()) < 1e-12);
  }
}

TEST_CASE("linear_scan shape errors name the op and the shapes") {
  CHECK_THROWS_WITH_AS(linear_scan(zeros({2, 3}), zeros({2, 4})), doctest::Contains("linear_scan"),
                       Error);
  CHECK_THROWS_WITH_AS(linear_scan(zeros({4}), zeros({4})), doctest::Contains("[B, T, ...]"), Error);
  CHECK_THROWS_WITH_AS(linear_scan(zeros({2, 3, 4}), zeros({2, 3, 4}), zeros({3, 4})),
                       doctest::Contains("h0 of shape [3, 4]"), Error);
  CHECK_THROWS_WITH_AS(linear_scan(zeros({2, 3}), zeros({2, 3}, DType::f64)),
                       doctest::Contains("linear_scan"), Error);
  // T = 0 gives an empty output, and h0 gets a zero gradient
  Tensor h0 = randn({2, 3}, DType::f64).requires_grad_();
  Tensor h = linear_scan(zeros({2, 0, 3}, DType::f64), zeros({2, 0, 3}, DType::f64), h0);
  CHECK(h.shape() == Shape{2, 0, 3});
  backward(sum(h));
  REQUIRE(h0.grad().defined());
  CHECK(max_abs_diff(h0.grad().to_vector<double>(), std::vector<double>(6, 0.0)) == 0.0);
}
