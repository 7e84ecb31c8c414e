// tests/test_init.cpp — nn/init.h: bounds and spreads of each initialiser, orthogonality of
// orthogonal_, PyTorch's default bounds for Linear and Conv2d, and reproducibility from a seed.
#include <doctest/doctest.h>

#include <cmath>

#include "nn/init.h"
#include "nn/layers.h"
#include "tests/test_util.h"

using namespace engram;
using namespace engram::nn;
using namespace engram::testing;

namespace {

struct Stats {
  double mean = 0, std = 0;
};
Stats stats(const Tensor& t) {
  std::vector<double> v = t.to_vector<double>();
  Stats s;
  for (double x : v) s.mean += x;
  s.mean /= v.size();
  for (double x : v) s.std += (x - s.mean) * (x - s.mean);
  s.std = std::sqrt(s.std / v.size());
  return s;
}

// t looks like U(-bound, bound): every value within [-bound, bound] (checked per value, so a NaN
// fails), and both the smallest and the largest within `slack` of their end. For n values the
// chance that the largest stays more than slack below bound is (1 - slack / 2 bound)^n, about
// exp(-10) with slack = 20 bound / n; a range too narrow on either side (U(0, b), U(-b/2, b/2))
// fails. The 1e-7 relative allowance covers rounding the bound to f32.
void check_uniform(const Tensor& t, double bound) {
  std::vector<double> v = t.to_vector<double>();
  const double hi = bound * (1 + 1e-7), slack = 20 * bound / double(v.size());
  size_t outside = 0;
  double lo_seen = INFINITY, hi_seen = -INFINITY;
  for (double x : v) {
    if (!(x >= -hi && x <= hi)) ++outside;
    if (x < lo_seen) lo_seen = x;
    if (x > hi_seen) hi_seen = x;
  }
  INFO("bound " << bound << ", min " << lo_seen << ", max " << hi_seen << ", n " << v.size());
  CHECK(outside == 0);
  CHECK(lo_seen <= -bound + slack);
  CHECK(hi_seen >= bound - slack);
}

}  // namespace

TEST_CASE("init: uniform bounds and normal spreads follow the fan formulas") {
  Generator g(1);
  Tensor w = empty({256, 128});  // fan_in 128, fan_out 256
  init::xavier_uniform_(w, 1.0, &g);
  double a = std::sqrt(6.0 / (128 + 256));
  check_uniform(w, a);
  CHECK(stats(w).std == doctest::Approx(a / std::sqrt(3.0)).epsilon(0.02));

  init::xavier_normal_(w, 2.0, &g);
  CHECK(stats(w).std == doctest::Approx(2.0 * std::sqrt(2.0 / (128 + 256))).epsilon(0.02));

  init::kaiming_normal_(w, 0.0, true, &g);  // relu gain sqrt(2), fan_in
  CHECK(stats(w).std == doctest::Approx(std::sqrt(2.0 / 128)).epsilon(0.02));

  init::kaiming_uniform_(w, 0.0, false, &g);  // fan_out mode
  check_uniform(w, std::sqrt(2.0) * std::sqrt(3.0 / 256));

  Tensor conv = empty({8, 3, 5, 5});  // receptive field 25: fan_in 75, fan_out 200
  init::Fans f = init::fans(conv);
  CHECK(f.fan_in == 75);
  CHECK(f.fan_out == 200);
  CHECK_THROWS_WITH_AS(init::fans(empty({4})), doctest::Contains("2 dims"), Error);
}

TEST_CASE("init: orthogonal_ gives orthonormal rows (wide) or columns (tall), times the gain") {
  for (Shape shape : {Shape{5, 9}, Shape{9, 5}, Shape{6, 6}, Shape{4, 2, 3}}) {
    Generator g(7);
    Tensor w = empty(shape, DType::f64);
    init::orthogonal_(w, 1.5, &g);
    int64_t rows = shape[0], cols = w.numel() / rows;
    std::vector<double> v = w.to_vector<double>();
    bool wide = rows <= cols;
    int64_t n = wide ? rows : cols;
    double worst = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double dot = 0;
        for (int64_t k = 0; k < (wide ? cols : rows); ++k)
          dot += wide ? v[i * cols + k] * v[j * cols + k] : v[k * cols + i] * v[k * cols + j];
        worst = std::max(worst, abs_diff(dot, i == j ? 1.5 * 1.5 : 0.0));
      }
    INFO("shape " << shape_str(shape));
    CHECK(worst < 1e-12);
  }
}

TEST_CASE("init: layer defaults are PyTorch's and a seed reproduces them") {
  Generator g1(3), g2(3);
  Linear a(50, 20, true, &g1), b(50, 20, true, &g2);
  CHECK(a.weight.to_vector<float>() == b.weight.to_vector<float>());
  CHECK(a.bias.to_vector<float>() == b.bias.to_vector<float>());
  double bound = 1.0 / std::sqrt(50.0);
  check_uniform(a.weight, bound);
  CHECK(stats(a.weight).std == doctest::Approx(bound / std::sqrt(3.0)).epsilon(0.1));

  Conv2d c(3, 4, 3, 1, 1, 1, true, &g1);
  check_uniform(c.weight, 1.0 / std::sqrt(27.0));
  Embedding e(10, 4, /*padding_idx=*/2, &g1);
  std::vector<float> row(e.weight.to_vector<float>());
  for (int j = 0; j < 4; ++j) CHECK(row[2 * 4 + j] == 0.0f);
  LayerNorm ln(6);
  CHECK(ln.weight.to_vector<float>() == std::vector<float>(6, 1.0f));
  CHECK(ln.bias.to_vector<float>() == std::vector<float>(6, 0.0f));
}
