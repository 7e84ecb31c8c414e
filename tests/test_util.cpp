// tests/test_util.cpp — the shared test helpers themselves: the NaN-proof differences of
// tests/test_util.h, which every max-difference check in the suite relies on.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "tests/test_util.h"

using namespace engram;
using namespace engram::testing;

TEST_CASE("test_util: a NaN difference is +inf, never dropped by a running maximum") {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = INFINITY;
  CHECK(abs_diff(1.0, 3.5) == 2.5);
  CHECK(abs_diff(nan, 1.0) == inf);
  CHECK(abs_diff(1.0, nan) == inf);
  CHECK(abs_diff(inf, inf) == inf);  // inf - inf is NaN
  CHECK(abs_diff(inf, 1.0) == inf);

  CHECK(rel_diff(0.0, 0.0) == 0);     // equal: 0 even with a zero denominator
  CHECK(rel_diff(1.0, 0.0) == inf);   // nonzero over 0
  CHECK(rel_diff(3.0, 2.0) == 0.5);
  CHECK(rel_diff(3.0, 2.0, 2.0) == 0.25);
  CHECK(rel_diff(1.0, inf) == inf);   // inf / inf is NaN
  CHECK(rel_diff(nan, 2.0) == inf);

  CHECK(max_abs_diff(std::vector<double>{1, nan, 2}, std::vector<double>{1, 2, 2}) == inf);
  CHECK(max_abs_diff(std::vector<double>{1, 2}, std::vector<double>{1.5, 2}) == 0.5);
  CHECK(max_abs_diff(std::vector<double>{}, std::vector<double>{}) == 0);
  CHECK(max_rel_diff(std::vector<double>{nan, nan}, std::vector<double>{1, 2}) == inf);
  CHECK(max_rel_diff(std::vector<double>{2, 4}, std::vector<double>{2, 5}) == doctest::Approx(0.2));

  Tensor a = from_vector(std::vector<double>{1, 2, 3, 4}, {2, 2}, DType::f64);
  Tensor b = from_vector(std::vector<double>{1, 2, nan, 4}, {2, 2}, DType::f64);
  CHECK(max_abs_diff(a, a) == 0);
  CHECK(max_abs_diff(a, b) == inf);
}
