// tests/test_util.h — small helpers shared by the doctest suites.
#pragma once
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
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
