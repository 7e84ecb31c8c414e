// tests/test_attention_fused.cpp — attention's fused masked softmax (autograd/attention_ops.cpp)
// against the unfused path it replaced in MultiHeadAttention: an explicit [Tq, Tk] mask tensor,
// masked_fill(scale * x, mask, -inf), softmax. The registry (opinfo_reduce.cpp) gradchecks it and
// matches PyTorch; here: the same values and gradients as the unfused path in f64 and f32 for
// every mask rule, strided scores, exact zeros on hidden keys, NaN rows, and the error messages.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/ops.h"
#include "tests/test_util.h"

using namespace engram;
using namespace engram::testing;

namespace {

// nn/attention.h's rule written out the slow way: 1 where query i must not see key j.
Tensor explicit_mask(int64_t Tq, int64_t Tk, int64_t window, int64_t prefix, DType dt) {
  std::vector<double> m(Tq * Tk);
  for (int64_t i = 0; i < Tq; ++i)
    for (int64_t j = 0; j < Tk; ++j) {
      const int64_t diag = i + (Tk - Tq);
      const bool hidden = j > diag || (window > 0 && j <= diag - window);
      m[i * Tk + j] = hidden && j >= prefix ? 1.0 : 0.0;
    }
  return from_vector(m, {Tq, Tk}, dt);
}

Tensor unfused(const Tensor& x, double scale, bool causal, int64_t window, int64_t prefix) {
  Tensor s = mul(x, scale);
  const int64_t Tq = x.size(-2), Tk = x.size(-1);
  if (causal) s = masked_fill(s, explicit_mask(Tq, Tk, window, prefix, x.dtype()), -INFINITY);
  return softmax(s, -1);
}

struct Case {
  Shape shape;
  double scale;
  bool causal;
  int64_t window, prefix;
};

}  // namespace

TEST_CASE("masked_softmax: equals masked_fill + softmax, values and gradients, f64 and f32") {
  const std::vector<Case> cases = {
      {{2, 3, 4}, 0.5, false, 0, 0},  {{2, 4, 4}, 0.7, true, 0, 0}, {{3, 5}, 1.0, true, 2, 0},
      {{2, 3, 7}, 1.3, true, 2, 2},   {{4, 6}, 0.9, true, 3, 3},    {{1, 2, 9, 9}, 0.3, true, 4, 1},
      {{2, 1, 6}, 1.0, true, 0, 0},  // a single query row (decoding step) sees every key
  };
  for (DType dt : {DType::f64, DType::f32}) {
    const double tol = dt == DType::f64 ? 1e-14 : 1e-6;
    for (const Case& c : cases) {
      const std::string what = fmt::format("{} {}", shape_str(c.shape), dtype_name(dt));
      CAPTURE(what);
      Generator g(7);
      Tensor x = randn(c.shape, dt, &g), w = randn(c.shape, dt, &g);
      Tensor xa = raw::clone(x), xb = raw::clone(x);
      xa.requires_grad_(true), xb.requires_grad_(true);
      // one graph at a time: a backward pass consumes the whole tape
      Tensor ya = masked_softmax(xa, c.scale, c.causal, c.window, c.prefix);
      backward(sum(mul(ya, w)));
      Tensor yb = unfused(xb, c.scale, c.causal, c.window, c.prefix);
      backward(sum(mul(yb, w)));
      CHECK(max_abs_diff(ya, yb) < tol);
      CHECK(max_abs_diff(xa.grad(), xb.grad()) < 10 * tol);
      // hidden keys are exactly zero, not merely small
      if (c.causal) {
        const auto y = ya.to_vector<double>();
        const auto m = explicit_mask(c.shape[c.shape.size() - 2], c.shape.back(), c.window,
                                     c.prefix, DType::f64)
                           .to_vector<double>();
        for (size_t i = 0; i < y.size(); ++i)
          if (m[i % m.size()] != 0) CHECK(y[i] == 0.0);
      }
    }
  }
}

TEST_CASE("masked_softmax: strided scores (a transposed view) read through their strides") {
  Generator g(3);
  Tensor base = randn({2, 5, 5}, DType::f64, &g);
  Tensor view = transpose(base, 1, 2);  // last-dim stride 5
  Tensor dense = raw::clone(view);
  CHECK(max_abs_diff(masked_softmax(view, 0.8, true, 2, 1), masked_softmax(dense, 0.8, true, 2, 1)) <
        1e-15);
}

TEST_CASE("masked_softmax: a row that sees no key is NaN, as in PyTorch; the others are finite") {
  // Tq 3 > Tk 2: query 0's diagonal is at key -1, so it sees nothing (and there is no prefix).
  Tensor y = masked_softmax(ones({3, 2}, DType::f64), 1.0, true, 0, 0);
  const auto v = y.to_vector<double>();
  CHECK(std::isnan(v[0]));
  CHECK(std::isnan(v[1]));
  CHECK(v[2] == doctest::Approx(1.0));
  CHECK(v[3] == 0.0);
  CHECK(v[4] == doctest::Approx(0.5));
  // ... but a prefix makes the same row visible
  CHECK(masked_softmax(ones({3, 2}, DType::f64), 1.0, true, 0, 1).to_vector<double>()[0] == 1.0);
}

TEST_CASE("masked_softmax: bad arguments name what is wrong") {
  CHECK(contains(error_of([] { masked_softmax(ones({4}, DType::f32), 1.0, true); }),
                 "expected x [..., Tq, Tk], got [4]"));
  CHECK(contains(error_of([] { masked_softmax(ones({2, 2}, DType::f32), 1.0, true, -1); }),
                 "window -1 and prefix 0 must be >= 0"));
  CHECK(contains(error_of([] { masked_softmax(ones({2, 2}, DType::f32), 1.0, false, 2); }),
                 "window and prefix apply to a causal mask only"));
  CHECK(contains(error_of([] { masked_softmax(zeros({2, 2}, DType::i64), 1.0, false); }),
                 "expected a floating tensor"));
}
