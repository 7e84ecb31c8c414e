// core/dtype.h — element types and devices.
//
// f32 is the default for training, f64 is used by gradchecks and exact references, i64 holds
// indices (targets, gather/scatter positions, embedding ids). The Device enum has a cuda slot
// that the CUDA backend (cuda/) fills in; everything above core/ only ever sees these enums.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace engram {

enum class DType : uint8_t { f32, f64, i64 };
enum class Device : uint8_t { cpu, cuda };

inline size_t dtype_size(DType t) { return t == DType::f32 ? 4 : 8; }
inline bool is_floating(DType t) { return t == DType::f32 || t == DType::f64; }

inline std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::i64: return "i64";
  }
  return "?";
}
inline std::string_view device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<int64_t>() { return DType::i64; }

}  // namespace engram

// Runs BODY with `scalar_t` bound to the C++ type of a floating dtype.
#define ENGRAM_DISPATCH_FLOAT(DT, OPNAME, ...)                                                    \
  [&] {                                                                                           \
    switch (DT) {                                                                                 \
      case ::engram::DType::f32: { using scalar_t = float; return __VA_ARGS__(); }                \
      case ::engram::DType::f64: { using scalar_t = double; return __VA_ARGS__(); }               \
      default: ENGRAM_FAIL("{}: expected a floating dtype (f32 or f64), got {}", OPNAME,          \
                           ::engram::dtype_name(DT));                                             \
    }                                                                                             \
  }()

// Same, including i64 (for copies, fills and comparisons).
#define ENGRAM_DISPATCH_ALL(DT, OPNAME, ...)                                                      \
  [&] {                                                                                           \
    switch (DT) {                                                                                 \
      case ::engram::DType::f32: { using scalar_t = float; return __VA_ARGS__(); }                \
      case ::engram::DType::f64: { using scalar_t = double; return __VA_ARGS__(); }               \
      case ::engram::DType::i64: { using scalar_t = int64_t; return __VA_ARGS__(); }              \
    }                                                                                             \
    ENGRAM_FAIL("{}: unknown dtype", OPNAME);                                                     \
  }()
