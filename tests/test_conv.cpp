// tests/test_conv.cpp — direct value tests of the conv family (the registry gradchecks them; these
// pin conv2d against a naive nested-loop reference, forward and backward, the output-shape
// formulas, the pools' values and the error messages).
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "autograd/ops.h"
#include "tests/test_util.h"

using namespace engram;
using namespace engram::testing;

static bool message_contains(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
  } catch (const Error& e) {
    return std::string(e.what()).find(needle) != std::string::npos;
  }
  return false;
}

namespace {
struct Geo {
  int64_t B, C, H, W, O, kh, kw, s, p, d;
  int64_t Ho() const { return (H + 2 * p - d * (kh - 1) - 1) / s + 1; }
  int64_t Wo() const { return (W + 2 * p - d * (kw - 1) - 1) / s + 1; }
};
// The input position read by output (oh, ow) at kernel tap (i, j), or false in the padding.
bool tap(const Geo& g, int64_t oh, int64_t ow, int64_t i, int64_t j, int64_t& ih, int64_t& iw) {
  ih = oh * g.s - g.p + i * g.d;
  iw = ow * g.s - g.p + j * g.d;
  return ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
}
}  // namespace

// y[b, o, oh, ow] = bias[o] + sum_{c, i, j} x[b, c, ih, iw] * w[o, c, i, j], straight from the
// definition; also the gradients of L = sum(y * r).
struct NaiveConv {
  std::vector<double> y, dx, dw, db;
};
static NaiveConv naive_conv(const Geo& g, const std::vector<double>& x, const std::vector<double>& w,
                            const std::vector<double>& bias, const std::vector<double>& r) {
  const int64_t Ho = g.Ho(), Wo = g.Wo();
  NaiveConv n;
  n.y.assign(g.B * g.O * Ho * Wo, 0.0);
  n.dx.assign(x.size(), 0.0);
  n.dw.assign(w.size(), 0.0);
  n.db.assign(g.O, 0.0);
  for (int64_t b = 0; b < g.B; ++b)
    for (int64_t o = 0; o < g.O; ++o)
      for (int64_t oh = 0; oh < Ho; ++oh)
        for (int64_t ow = 0; ow < Wo; ++ow) {
          const int64_t yi = ((b * g.O + o) * Ho + oh) * Wo + ow;
          double acc = bias.empty() ? 0.0 : bias[o];
          n.db[o] += r[yi];
          for (int64_t c = 0; c < g.C; ++c)
            for (int64_t i = 0; i < g.kh; ++i)
              for (int64_t j = 0; j < g.kw; ++j) {
                int64_t ih, iw;
                if (!tap(g, oh, ow, i, j, ih, iw)) continue;
                const int64_t xi = ((b * g.C + c) * g.H + ih) * g.W + iw;
                const int64_t wi = ((o * g.C + c) * g.kh + i) * g.kw + j;
                acc += x[xi] * w[wi];
                n.dx[xi] += r[yi] * w[wi];
                n.dw[wi] += r[yi] * x[xi];
              }
          n.y[yi] = acc;
        }
  return n;
}

// Largest |got - want| / (1 + |want|) below tol (a NaN counts as +inf: tests/test_util.h).
static void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol,
                        const std::string& what) {  // a string: doctest logs a const char* as a pointer
  INFO(what);
  CHECK(max_rel_diff(got, want, 1.0) < tol);
}

TEST_CASE("conv2d matches a naive nested-loop convolution, forward and backward") {
  Generator g(11);
  // Fixed edge cases plus random geometries (stride, padding, dilation, non-square everything).
  std::vector<Geo> geos = {
      {2, 3, 7, 6, 4, 3, 3, 1, 1, 1},   // the usual 3x3, padding 1
      {1, 2, 9, 8, 3, 3, 2, 2, 0, 1},   // stride 2, non-square kernel
      {2, 1, 8, 9, 2, 3, 3, 1, 2, 2},   // dilation 2, padding 2
      {3, 4, 5, 5, 2, 1, 1, 1, 0, 1},   // 1x1 (no unrolling)
      {1, 2, 4, 3, 2, 2, 2, 3, 1, 1},   // stride larger than the kernel
      {3, 8, 40, 40, 3, 3, 3, 1, 1, 1}, // several images per im2col chunk, several chunks
      {3, 8, 50, 50, 2, 3, 3, 1, 1, 1}, // one image per chunk
  };
  for (int k = 0; k < 6; ++k) {
    Geo r{1 + g.randint(0, 3), 1 + g.randint(0, 3), 0, 0, 1 + g.randint(0, 4), 1 + g.randint(0, 3),
          1 + g.randint(0, 3), 1 + g.randint(0, 3), g.randint(0, 3), 1 + g.randint(0, 2)};
    r.H = r.d * (r.kh - 1) + 1 + g.randint(0, 8);
    r.W = r.d * (r.kw - 1) + 1 + g.randint(0, 8);
    geos.push_back(r);
  }
  for (const Geo& G : geos) {
    for (bool with_bias : {true, false}) {
      INFO("x [" << G.B << ", " << G.C << ", " << G.H << ", " << G.W << "] w [" << G.O << ", "
                 << G.C << ", " << G.kh << ", " << G.kw << "] s" << G.s << " p" << G.p << " d"
                 << G.d << (with_bias ? " bias" : " no bias"));
      Tensor x = randn({G.B, G.C, G.H, G.W}, DType::f64, &g);
      Tensor w = randn({G.O, G.C, G.kh, G.kw}, DType::f64, &g);
      Tensor b = with_bias ? randn({G.O}, DType::f64, &g) : Tensor();
      Tensor r = randn({G.B, G.O, G.Ho(), G.Wo()}, DType::f64, &g);
      NaiveConv want = naive_conv(G, x.to_vector<double>(), w.to_vector<double>(),
                                  with_bias ? b.to_vector<double>() : std::vector<double>{},
                                  r.to_vector<double>());
      x.requires_grad_(true);
      w.requires_grad_(true);
      if (with_bias) b.requires_grad_(true);
      Tensor y = conv2d(x, w, b, G.s, G.p, G.d);
      CHECK(y.shape() == Shape{G.B, G.O, G.Ho(), G.Wo()});
      check_close(y.to_vector<double>(), want.y, 1e-12, "y");
      backward(sum(mul(y, r)));
      check_close(x.grad().to_vector<double>(), want.dx, 1e-12, "dx");
      check_close(w.grad().to_vector<double>(), want.dw, 1e-12, "dw");
      if (with_bias) check_close(b.grad().to_vector<double>(), want.db, 1e-12, "db");
      // f32 agrees to single precision
      Tensor y32 = conv2d(to_dtype(detach(x), DType::f32), to_dtype(detach(w), DType::f32),
                          with_bias ? to_dtype(detach(b), DType::f32) : Tensor(), G.s, G.p, G.d);
      check_close(y32.to_vector<double>(), want.y, 1e-4, "y (f32)");
    }
  }
}

TEST_CASE("conv2d gives the same gradients when only some inputs require them") {
  Generator g(9);
  for (int64_t k : {3, 1}) {  // 3x3 unrolls; 1x1 without bias reads x directly
    const int64_t pad = k == 3 ? 1 : 0;
    Tensor x = randn({3, 2, 6, 5}, DType::f64, &g), w = randn({4, 2, k, k}, DType::f64, &g);
    Tensor b = randn({4}, DType::f64, &g), r = randn({3, 4, 6, 5}, DType::f64, &g);
    for (bool with_bias : {true, false}) {
      // all inputs at once
      Tensor xa = raw::clone(x), wa = raw::clone(w), ba = with_bias ? raw::clone(b) : Tensor();
      xa.requires_grad_(true);
      wa.requires_grad_(true);
      if (with_bias) ba.requires_grad_(true);
      backward(sum(mul(conv2d(xa, wa, ba, 1, pad), r)));
      // then one at a time (frozen weights with a trainable bias take their own path)
      for (int which = 0; which < (with_bias ? 3 : 2); ++which) {
        INFO("k " << k << std::string(with_bias ? " bias" : " no bias") << ", only input " << which);
        Tensor xs = raw::clone(x), ws = raw::clone(w), bs = with_bias ? raw::clone(b) : Tensor();
        Tensor& t = which == 0 ? xs : which == 1 ? ws : bs;
        t.requires_grad_(true);
        backward(sum(mul(conv2d(xs, ws, bs, 1, pad), r)));
        const Tensor& want = which == 0 ? xa : which == 1 ? wa : ba;
        check_close(t.grad().to_vector<double>(), want.grad().to_vector<double>(), 1e-12, "grad");
      }
    }
  }
}

TEST_CASE("conv2d reads strided (non-contiguous) inputs") {
  Generator g(5);
  Tensor base = randn({6, 2, 5, 3}, DType::f64, &g);
  Tensor x = permute(base, {1, 3, 0, 2});  // [2, 3, 6, 5], a view with odd strides
  Tensor w = randn({4, 3, 3, 3}, DType::f64, &g);
  Tensor b = randn({4}, DType::f64, &g);
  Tensor y = conv2d(x, w, b, 1, 1, 1), yc = conv2d(contiguous(x), w, b, 1, 1, 1);
  check_close(y.to_vector<double>(), yc.to_vector<double>(), 1e-14, "strided x");
  Tensor w1 = randn({4, 3, 1, 1}, DType::f64, &g);  // 1x1 on a strided input must still unroll
  check_close(conv2d(x, w1, b).to_vector<double>(), conv2d(contiguous(x), w1, b).to_vector<double>(),
              1e-14, "strided x, 1x1");
}

TEST_CASE("conv and pool output shapes follow PyTorch's formulas") {
  auto conv_shape = [](Shape xs, Shape ws, int64_t s, int64_t p, int64_t d) {
    return conv2d(zeros(xs), zeros(ws), Tensor(), s, p, d).shape();
  };
  CHECK(conv_shape({64, 1, 28, 28}, {32, 1, 3, 3}, 1, 1, 1) == Shape{64, 32, 28, 28});
  CHECK(conv_shape({2, 3, 28, 28}, {8, 3, 3, 3}, 1, 0, 1) == Shape{2, 8, 26, 26});
  CHECK(conv_shape({2, 3, 28, 28}, {8, 3, 3, 3}, 2, 0, 1) == Shape{2, 8, 13, 13});
  CHECK(conv_shape({2, 3, 28, 28}, {8, 3, 3, 3}, 2, 1, 1) == Shape{2, 8, 14, 14});
  CHECK(conv_shape({1, 3, 10, 7}, {5, 3, 3, 3}, 1, 0, 2) == Shape{1, 5, 6, 3});
  CHECK(conv_shape({1, 3, 10, 7}, {5, 3, 2, 4}, 3, 2, 1) == Shape{1, 5, 5, 3});
  CHECK(conv_shape({1, 1, 5, 5}, {1, 1, 5, 5}, 1, 0, 1) == Shape{1, 1, 1, 1});
  CHECK(conv2d(zeros({3, 9, 9}), zeros({2, 3, 3, 3}), zeros({2}), 2, 1).shape() == Shape{2, 5, 5});
  CHECK(max_pool2d(zeros({64, 32, 28, 28}), 2).shape() == Shape{64, 32, 14, 14});
  CHECK(max_pool2d(zeros({1, 1, 7, 7}), 2).shape() == Shape{1, 1, 3, 3});  // floor, not ceil
  CHECK(max_pool2d(zeros({1, 1, 7, 6}), 3, 2, 1).shape() == Shape{1, 1, 4, 3});
  CHECK(avg_pool2d(zeros({2, 3, 9, 8}), 3, 1, 1).shape() == Shape{2, 3, 9, 8});
  CHECK(avg_pool2d(zeros({4, 5, 5}), 2).shape() == Shape{4, 2, 2});
}

TEST_CASE("max_pool2d picks each window's maximum and routes the gradient to it") {
  // one 4x4 plane; 2x2 windows hold maxima 6, 8, 14, 16 at distinct places
  Tensor x = from_vector<double>({1, 6, 2, 3,    //
                                  5, 0, 8, 4,    //
                                  9, 10, 16, 11, //
                                  14, 12, 13, 15},
                                 {1, 1, 4, 4});
  x.requires_grad_(true);
  Tensor y = max_pool2d(x, 2);
  CHECK(y.to_vector<double>() == std::vector<double>{6, 8, 14, 16});
  backward(sum(mul(y, from_vector<double>({1, 2, 3, 4}, {1, 1, 2, 2}))));
  CHECK(x.grad().to_vector<double>() ==
        std::vector<double>{0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 4, 0, 3, 0, 0, 0});
  // padding counts as -inf: an all-negative plane still gives its own (negative) values
  Tensor neg = from_vector<double>({-5, -3, -4, -1}, {1, 1, 2, 2});
  CHECK(max_pool2d(neg, 2, 1, 1).to_vector<double>() ==
        std::vector<double>{-5, -3, -3, -4, -1, -1, -4, -1, -1});
  // overlapping windows (k3 s1) on a random plane agree with a direct max, f32 and f64
  Generator g(3);
  Tensor r = randn({2, 3, 6, 7}, DType::f64, &g);
  auto v = r.to_vector<double>();
  for (DType dt : {DType::f64, DType::f32}) {
    auto got = max_pool2d(to_dtype(r, dt), 3, 1).to_vector<double>();
    size_t k = 0;
    for (int64_t bc = 0; bc < 6; ++bc)
      for (int64_t oh = 0; oh < 4; ++oh)
        for (int64_t ow = 0; ow < 5; ++ow) {
          double m = -std::numeric_limits<double>::infinity();
          for (int64_t i = 0; i < 3; ++i)
            for (int64_t j = 0; j < 3; ++j) m = std::max(m, v[(bc * 6 + oh + i) * 7 + ow + j]);
          CHECK(got[k++] == doctest::Approx(m).epsilon(1e-6));
        }
  }
}

TEST_CASE("avg_pool2d divides by k*k, counting the padding") {
  Tensor x = from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  CHECK(avg_pool2d(x, 3).to_vector<double>() == std::vector<double>{5});
  // padding 1, k2 s2: windows {1}, {2,3}, {4,7}, {5,6,8,9}, each over 4
  auto v = avg_pool2d(x, 2, 2, 1).to_vector<double>();
  std::vector<double> want = {0.25, 1.25, 2.75, 7};
  for (size_t i = 0; i < want.size(); ++i) CHECK(v[i] == doctest::Approx(want[i]).epsilon(1e-12));
  Tensor xx = raw::clone(x);
  xx.requires_grad_(true);
  backward(sum(avg_pool2d(xx, 2, 1, 0)));  // interior elements sit in 4 windows, corners in 1
  CHECK(xx.grad().to_vector<double>() ==
        std::vector<double>{0.25, 0.5, 0.25, 0.5, 1, 0.5, 0.25, 0.5, 0.25});
}

TEST_CASE("conv and pool errors name the op and the shapes") {
  CHECK(message_contains([] { conv2d(zeros({2, 3, 8, 8}), zeros({4, 2, 3, 3}), Tensor()); },
                         "conv2d: input [2, 3, 8, 8] has 3 channels but weight [4, 2, 3, 3] expects 2"));
  CHECK(message_contains([] { conv2d(zeros({2, 3, 8, 8}), zeros({4, 3, 3, 3}), zeros({3})); },
                         "conv2d: bias must be [4]"));
  CHECK(message_contains([] { conv2d(zeros({2, 8, 8}), zeros({4, 3, 3}), Tensor()); }, "[4, 3, 3]"));
  CHECK(message_contains([] { conv2d(zeros({1, 1, 2, 2}), zeros({1, 1, 3, 3}), Tensor()); },
                         "conv2d: input [1, 1, 2, 2]"));
  CHECK(message_contains([] { conv2d(zeros({1, 1, 5, 5}), zeros({1, 1, 3, 3}), Tensor(), 0); },
                         "conv2d: needs stride >= 1"));
  CHECK(message_contains([] { conv2d(zeros({1, 1, 5, 5}), zeros({1, 1, 3, 3}, DType::f64), Tensor()); },
                         "conv2d: dtype mismatch"));
  CHECK(message_contains([] { max_pool2d(zeros({1, 1, 5, 5}), 2, 2, 2); },
                         "max_pool2d: padding 2 is more than half the kernel 2"));
  CHECK(message_contains([] { avg_pool2d(zeros({5, 5}), 2); }, "avg_pool2d: expected input"));
  CHECK(message_contains([] { max_pool2d(zeros({1, 1, 2, 2}), 3); },
                         "max_pool2d: input [1, 1, 2, 2] (padding 0) is smaller than the kernel 3"));
}
