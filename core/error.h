// core/error.h — the one error type of engram.
//
// Every check in the engine throws engram::Error with a message that names the op and the
// offending shapes/dtypes/devices, e.g. "matmul: inner dimensions differ: [2, 3] @ [4, 5]".
// Apps catch it at main() and exit non-zero with that one line.
#pragma once
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <stdexcept>
#include <string>

namespace engram {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace engram

#define ENGRAM_FAIL(...) throw ::engram::Error(fmt::format(__VA_ARGS__))
#define ENGRAM_CHECK(cond, ...)          \
  do {                                   \
    if (!(cond)) ENGRAM_FAIL(__VA_ARGS__); \
  } while (0)
