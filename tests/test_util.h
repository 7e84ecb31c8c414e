// tests/test_util.h — small helpers shared by the doctest suites.
#pragma once
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace engram::testing {

template <typename T> std::string show(const std::vector<T>& v) {
  return fmt::format("[{}]", fmt::join(v, ", "));
}

// The message of the engram::Error thrown by fn ("" when nothing was thrown).
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

inline bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// A fresh directory per test case under the system temp dir, removed at the end.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    static int counter = 0;
    path = std::filesystem::temp_directory_path() /
           fmt::format("engram_test_{}_{}", ::getpid(), counter++);
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(file(name), std::ios::binary) << text;
    return file(name);
  }
};

// ---- NaN-proof differences.
// A running maximum written as `m = std::max(m, std::abs(a - b))` skips NaN (std::max(m, NaN) is
// m), so a result that is all NaN compares as "error 0" and passes. These helpers count a NaN
// difference (either side NaN, or inf - inf) as +inf, so it fails any `< tol` check. Sizes or
// shapes that differ are a failed check of their own (and +inf), since +inf alone would pass a
// `> tol` check. A running maximum of abs_diff / rel_diff values is safe: they are never NaN.

// |a - b|, or +inf when that is NaN.
inline double abs_diff(double a, double b) {
  const double d = std::abs(a - b);
  return std::isnan(d) ? INFINITY : d;
}

// |got - want| / (floor + |want|): 0 when they are equal (also 0 vs 0 with floor 0), +inf when the
// difference is NaN or the denominator is 0.
inline double rel_diff(double got, double want, double floor = 0) {
  const double d = abs_diff(got, want);
  if (d == 0) return 0;
  const double r = d / (floor + std::abs(want));
  return std::isnan(r) ? INFINITY : r;
}

// Largest abs_diff over two equal-size vectors.
inline double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) {
    FAIL_CHECK("max_abs_diff: sizes differ, " << a.size() << " vs " << b.size());
    return INFINITY;
  }
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, abs_diff(a[i], b[i]));
  return m;
}

// Largest rel_diff(got[i], want[i], floor) over two equal-size vectors.
inline double max_rel_diff(const std::vector<double>& got, const std::vector<double>& want,
                           double floor = 0) {
  if (got.size() != want.size()) {
    FAIL_CHECK("max_rel_diff: sizes differ, " << got.size() << " vs " << want.size());
    return INFINITY;
  }
  double m = 0;
  for (size_t i = 0; i < got.size(); ++i) m = std::max(m, rel_diff(got[i], want[i], floor));
  return m;
}

// Largest abs_diff over two same-shape tensors (read with to_vector<double>, any dtype/strides).
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) {
    FAIL_CHECK("max_abs_diff: shapes differ, " << shape_str(a.shape()) << " vs "
                                               << shape_str(b.shape()));
    return INFINITY;
  }
  return max_abs_diff(a.to_vector<double>(), b.to_vector<double>());
}

}  // namespace engram::testing

// CHECK that a vector equals an expected list, printing both on failure:
//   CHECK_VEC(t.to_vector<float>(), {1, 2, 3});
#define CHECK_VEC(got, ...)                                                                  \
  do {                                                                                       \
    const auto got_ = (got);                                                                 \
    const std::remove_const_t<decltype(got_)> want_ = __VA_ARGS__;                           \
    CHECK_MESSAGE(got_ == want_, #got " = " << ::engram::testing::show(got_) << ", expected " \
                                            << ::engram::testing::show(want_));               \
  } while (0)
