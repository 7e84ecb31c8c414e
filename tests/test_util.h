// tests/test_util.h — small helpers shared by the doctest suites.
#pragma once
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"

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
