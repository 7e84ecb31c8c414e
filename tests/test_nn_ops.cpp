// tests/test_nn_ops.cpp — direct value tests of the nn family (the registry gradchecks them; these
// pin the forward values, the loss conventions and the error messages).
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>

#include "autograd/ops.h"
#include "tests/test_util.h"

using namespace engram;
using namespace engram::testing;

static double ce_row(const std::vector<double>& z, int64_t t, double e) {
  double m = z[0];
  for (double v : z) m = std::max(m, v);
  double s = 0;
  for (double v : z) s += std::exp(v - m);
  double lse = m + std::log(s), smooth = 0;
  for (double v : z) smooth += lse - v;
  return (1 - e) * (lse - z[(size_t)t]) + e / (double)z.size() * smooth;
}

static bool message_contains(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
  } catch (const Error& e) {
    return std::string(e.what()).find(needle) != std::string::npos;
  }
  return false;
}

TEST_CASE("cross_entropy matches a hand-computed value") {
  // row 0: logits [1, 2, 3], target 2 -> log(e^1 + e^2 + e^3) - 3 = 0.40760596444
  // row 1: logits [0, 0, 0], target 0 -> log 3
  Tensor z = from_vector<double>({1, 2, 3, 0, 0, 0}, {2, 3});
  Tensor t = from_vector<int64_t>({2, 0}, {2});
  Tensor none = cross_entropy(z, t, -100, 0.0, Reduction::none);
  auto v = none.to_vector<double>();
  CHECK(v[0] == doctest::Approx(0.40760596444438).epsilon(1e-12));
  CHECK(v[1] == doctest::Approx(std::log(3.0)).epsilon(1e-12));
  CHECK(cross_entropy(z, t).item() == doctest::Approx((v[0] + v[1]) / 2).epsilon(1e-12));
  CHECK(cross_entropy(z, t, -100, 0.0, Reduction::sum).item() ==
        doctest::Approx(v[0] + v[1]).epsilon(1e-12));
  // f32 agrees too
  Tensor z32 = to_dtype(z, DType::f32);
  CHECK(cross_entropy(z32, t).item() == doctest::Approx((v[0] + v[1]) / 2).epsilon(1e-6));
}

TEST_CASE("cross_entropy label smoothing follows PyTorch's formula") {
  tape().clear();  // start from an empty tape whatever ran before
  Tensor z = from_vector<double>({0.5, -1.0, 2.0, 0.1, 0.3, -0.2, 1.5, 0.0}, {2, 4});
  Tensor t = from_vector<int64_t>({1, 2}, {2});
  double e = 0.2;
  double r0 = ce_row({0.5, -1.0, 2.0, 0.1}, 1, e), r1 = ce_row({0.3, -0.2, 1.5, 0.0}, 2, e);
  CHECK(cross_entropy(z, t, -100, e).item() == doctest::Approx((r0 + r1) / 2).epsilon(1e-12));
  // gradient: (softmax - q) / N
  Tensor zz = raw::clone(z);
  zz.requires_grad_(true);
  backward(cross_entropy(zz, t, -100, e));
  auto g = zz.grad().to_vector<double>();
  auto p = softmax(z, -1).to_vector<double>();
  for (int i = 0; i < 2; ++i)
    for (int c = 0; c < 4; ++c) {
      double q = (1 - e) * (c == (i == 0 ? 1 : 2)) + e / 4;
      CHECK(g[i * 4 + c] == doctest::Approx((p[i * 4 + c] - q) / 2).epsilon(1e-10));
    }
}

TEST_CASE("cross_entropy ignore_index rows contribute nothing, mean over the rest") {
  tape().clear();  // start from an empty tape whatever ran before
  Generator gen(3);
  Tensor z = randn({4, 5}, DType::f64, &gen);
  Tensor t = from_vector<int64_t>({1, -100, 4, -100}, {4});
  auto none = cross_entropy(z, t, -100, 0.1, Reduction::none).to_vector<double>();
  CHECK(none[1] == 0.0);
  CHECK(none[3] == 0.0);
  double mean = cross_entropy(z, t, -100, 0.1).item();
  CHECK(mean == doctest::Approx((none[0] + none[2]) / 2).epsilon(1e-12));
  // the same as dropping the ignored rows
  Tensor kept = index_select(z, 0, from_vector<int64_t>({0, 2}, {2}));
  CHECK(cross_entropy(kept, from_vector<int64_t>({1, 4}, {2}), -100, 0.1).item() ==
        doctest::Approx(mean).epsilon(1e-12));
  // ignored rows get a zero gradient
  Tensor zz = raw::clone(z);
  zz.requires_grad_(true);
  backward(cross_entropy(zz, t, -100, 0.1));
  auto g = zz.grad().to_vector<double>();
  for (int c = 0; c < 5; ++c) {
    CHECK(g[5 + c] == 0.0);
    CHECK(g[15 + c] == 0.0);
  }
  // every row ignored: the mean is NaN (0 / 0), as in PyTorch
  CHECK(std::isnan(cross_entropy(z, full({4}, -100, DType::i64)).item()));
}

TEST_CASE("cross_entropy accepts [B, T, C] logits with [B, T] targets") {
  Generator gen(5);
  Tensor z = randn({2, 3, 4}, DType::f64, &gen);
  Tensor t = randint(0, 4, {2, 3}, &gen);
  Tensor flat = cross_entropy(reshape(z, {6, 4}), reshape(t, {6}));
  CHECK(cross_entropy(z, t).item() == doctest::Approx(flat.item()).epsilon(1e-12));
  CHECK(cross_entropy(z, t, -100, 0.0, Reduction::none).shape() == Shape{2, 3});
}

TEST_CASE("nll_loss picks -log_probs at the target, skipping ignored rows") {
  Tensor lp = from_vector<double>({-0.1, -2.0, -3.0, -1.5, -0.5, -4.0}, {3, 2});
  Tensor t = from_vector<int64_t>({1, 0, -100}, {3});
  auto none = nll_loss(lp, t, -100, Reduction::none).to_vector<double>();
  CHECK(none[0] == 2.0);
  CHECK(none[1] == 3.0);
  CHECK(none[2] == 0.0);
  CHECK(nll_loss(lp, t).item() == doctest::Approx(2.5));
  CHECK(nll_loss(lp, t, -100, Reduction::sum).item() == doctest::Approx(5.0));
  // nll(log_softmax(z)) == cross_entropy(z)
  Generator gen(9);
  Tensor z = randn({5, 7}, DType::f64, &gen);
  Tensor tt = randint(0, 7, {5}, &gen);
  CHECK(nll_loss(log_softmax(z, -1), tt).item() ==
        doctest::Approx(cross_entropy(z, tt).item()).epsilon(1e-12));
}

TEST_CASE("mse_loss reductions") {
  Tensor a = from_vector<double>({1, 2, 3, 4}, {2, 2});
  Tensor b = from_vector<double>({0, 2, 5, 4}, {2, 2});
  CHECK(mse_loss(a, b).item() == doctest::Approx(5.0 / 4));
  CHECK(mse_loss(a, b, Reduction::sum).item() == doctest::Approx(5.0));
  CHECK(mse_loss(a, b, Reduction::none).to_vector<double>() == std::vector<double>{1, 0, 4, 0});
}

TEST_CASE("layer_norm output has zero mean and unit variance per row") {
  Generator gen(1);
  Tensor x = add(mul(randn({6, 32}, DType::f64, &gen), 3.0), 2.0);
  Tensor y = layer_norm(x, Tensor(), Tensor(), 1e-5);
  auto m = mean(y, {-1}).to_vector<double>();
  auto v = var(y, {-1}, false, 0).to_vector<double>();
  for (int r = 0; r < 6; ++r) {
    CHECK(m[r] == doctest::Approx(0.0).epsilon(1e-9).scale(1));
    CHECK(v[r] == doctest::Approx(1.0).epsilon(1e-5));
  }
  // weight and bias are applied per feature: y = yhat * w + b
  Tensor w = full({32}, 2.0, DType::f64), b = full({32}, -1.0, DType::f64);
  auto y2 = layer_norm(x, w, b, 1e-5).to_vector<double>();
  auto y1 = y.to_vector<double>();
  for (size_t i = 0; i < y1.size(); ++i) CHECK(y2[i] == doctest::Approx(2 * y1[i] - 1));
  // f32 on a non-contiguous view gives the same
  Tensor xt = to_dtype(transpose(reshape(x, {2, 32, 3}), 1, 2), DType::f32);
  auto yt = layer_norm(xt, Tensor(), Tensor(), 1e-5).to_vector<double>();
  auto yc = layer_norm(contiguous(xt), Tensor(), Tensor(), 1e-5).to_vector<double>();
  for (size_t i = 0; i < yt.size(); ++i) CHECK(yt[i] == doctest::Approx(yc[i]).epsilon(1e-6));
}

TEST_CASE("rms_norm output has unit root-mean-square per row") {
  Generator gen(2);
  Tensor x = mul(randn({4, 16}, DType::f64, &gen), 5.0);
  Tensor y = rms_norm(x, Tensor(), 0.0);
  auto ms = mean(square(y), {-1}).to_vector<double>();
  for (double v : ms) CHECK(v == doctest::Approx(1.0).epsilon(1e-12));
  Tensor w = arange(0, 16, 1, DType::f64);
  auto yw = rms_norm(x, w, 0.0).to_vector<double>();
  auto y1 = y.to_vector<double>();
  for (size_t i = 0; i < y1.size(); ++i) CHECK(yw[i] == doctest::Approx(y1[i] * double(i % 16)));
}

TEST_CASE("normalize and cosine_similarity") {
  Tensor x = from_vector<double>({3, 4, 0, 0}, {2, 2});
  auto y = normalize(x, -1).to_vector<double>();
  CHECK(y == std::vector<double>{0.6, 0.8, 0, 0});  // a zero row stays zero (norm clamped to eps)
  Tensor a = from_vector<double>({1, 0, 1, 1}, {2, 2});
  Tensor b = from_vector<double>({0, 1}, {2});  // broadcast against a's rows
  auto c = cosine_similarity(a, b, -1).to_vector<double>();
  CHECK(c[0] == doctest::Approx(0.0));
  CHECK(c[1] == doctest::Approx(1 / std::sqrt(2.0)));
}

TEST_CASE("dropout: identity in eval and for p = 0, inverted scaling in training") {
  tape().clear();  // start from an empty tape whatever ran before
  Generator gen(4);
  Tensor x = ones({100, 100}, DType::f32);
  CHECK(dropout(x, 0.5, false, &gen).same(x));
  CHECK(dropout(x, 0.0, true, &gen).same(x));
  auto y = dropout(x, 0.3, true, &gen).to_vector<float>();
  int64_t zeros_n = 0;
  for (float v : y) {
    if (v == 0) ++zeros_n;
    else CHECK(v == doctest::Approx(1 / 0.7).epsilon(1e-6));
  }
  CHECK(zeros_n > 2700);  // ~3000 expected, sd ~46
  CHECK(zeros_n < 3300);
  // the same seed draws the same mask; the gradient is the mask
  Generator g1(77), g2(77);
  Tensor xr = randn({8, 8}, DType::f64, &gen);
  xr.requires_grad_(true);
  Tensor y1 = dropout(xr, 0.4, true, &g1);
  Tensor y2 = dropout(xr, 0.4, true, &g2);
  CHECK(y1.to_vector<double>() == y2.to_vector<double>());
  backward(sum(y1));
  auto gx = xr.grad().to_vector<double>(), xv = xr.to_vector<double>(), yv = y1.to_vector<double>();
  for (size_t i = 0; i < gx.size(); ++i) CHECK(yv[i] == doctest::Approx(xv[i] * gx[i]));
  CHECK(message_contains([&] { dropout(x, 1.0, true, &gen); }, "dropout"));
  CHECK(message_contains([&] { dropout(x, -0.1, true, &gen); }, "dropout"));
}

TEST_CASE("nn ops name themselves and the shapes in errors") {
  Tensor z = zeros({4, 5}, DType::f64);
  CHECK(message_contains([&] { cross_entropy(z, zeros({3}, DType::i64)); }, "cross_entropy"));
  CHECK(message_contains([&] { cross_entropy(z, zeros({3}, DType::i64)); }, "[4, 5]"));
  CHECK(message_contains([&] { cross_entropy(z, zeros({4}, DType::f64)); }, "i64"));
  CHECK(message_contains([&] { cross_entropy(z, from_vector<int64_t>({0, 1, 5, 2}, {4})); },
                         "out of range"));
  CHECK(message_contains([&] { cross_entropy(z, zeros({4}, DType::i64), -100, 1.5); },
                         "label_smoothing"));
  CHECK(message_contains([&] { nll_loss(z, zeros({4, 1}, DType::i64)); }, "nll_loss"));
  CHECK(message_contains([&] { layer_norm(z, zeros({4}, DType::f64), Tensor()); }, "layer_norm"));
  CHECK(message_contains([&] { layer_norm(z, Tensor(), zeros({5}, DType::f32)); }, "layer_norm"));
  CHECK(message_contains([&] { rms_norm(z, zeros({6}, DType::f64)); }, "rms_norm"));
  CHECK(message_contains([&] { mse_loss(z, zeros({3}, DType::f64)); }, "[4, 5]"));
  CHECK_THROWS_AS(cosine_similarity(z, zeros({4, 5}, DType::f32)), Error);
}

// Big enough (rows * D > 2^15) for the kernels' threaded row loops and per-thread dw/db partials.
TEST_CASE("layer_norm, rms_norm and cross_entropy agree with composed ops on large inputs") {
  tape().clear();  // start from an empty tape whatever ran before
  Generator gen(8);
  const int64_t R = 96, D = 512;
  auto leaf = [](const Tensor& t) {
    Tensor c = raw::clone(t);
    c.requires_grad_(true);
    return c;
  };
  Tensor x0 = randn({R, D}, DType::f64, &gen), w0 = randn({D}, DType::f64, &gen),
         b0 = randn({D}, DType::f64, &gen), dy = randn({R, D}, DType::f64, &gen);
  {  // layer_norm
    Tensor x = leaf(x0), w = leaf(w0), b = leaf(b0);
    backward(layer_norm(x, w, b, 1e-5), dy);
    Tensor xr = leaf(x0), wr = leaf(w0), br = leaf(b0);
    Tensor c = sub(xr, mean(xr, {-1}, true));
    Tensor ref = add(mul(mul(c, rsqrt(add(var(xr, {-1}, true, 0), 1e-5))), wr), br);
    backward(ref, dy);
    CHECK(max_abs_diff(layer_norm(x0, w0, b0, 1e-5), ref) <= 1e-10);
    CHECK(max_abs_diff(x.grad(), xr.grad()) <= 1e-9);
    CHECK(max_abs_diff(w.grad(), wr.grad()) <= 1e-9);
    CHECK(max_abs_diff(b.grad(), br.grad()) <= 1e-9);
  }
  {  // rms_norm
    Tensor x = leaf(x0), w = leaf(w0);
    backward(rms_norm(x, w, 1e-6), dy);
    Tensor xr = leaf(x0), wr = leaf(w0);
    Tensor ref = mul(mul(xr, rsqrt(add(mean(square(xr), {-1}, true), 1e-6))), wr);
    backward(ref, dy);
    CHECK(max_abs_diff(rms_norm(x0, w0, 1e-6), ref) <= 1e-10);
    CHECK(max_abs_diff(x.grad(), xr.grad()) <= 1e-9);
    CHECK(max_abs_diff(w.grad(), wr.grad()) <= 1e-9);
  }
  {  // cross_entropy vs nll_loss(log_softmax) with ignored rows
    std::vector<int64_t> tv = randint(0, D, {R}, &gen).to_vector<int64_t>();
    for (int64_t i = 0; i < R; i += 7) tv[(size_t)i] = -100;
    Tensor t = from_vector<int64_t>(tv, {R});
    Tensor z = leaf(x0), zr = leaf(x0);
    Tensor l = cross_entropy(z, t);
    backward(l);  // backward clears the tape: one graph at a time
    Tensor lr = nll_loss(log_softmax(zr, -1), t);
    backward(lr);
    CHECK(l.item() == doctest::Approx(lr.item()).epsilon(1e-12));
    CHECK(max_abs_diff(z.grad(), zr.grad()) <= 1e-12);
  }
}
