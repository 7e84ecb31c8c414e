// core/kernel_args.h — argument checks that a kernel's CPU and CUDA versions share word for word
// (the shapes and dtypes a backend entry expects; where the data lives is each backend's own
// check). A caller that breaks the contract gets an error naming the kernel, not wrong numbers.
#pragma once
#include "core/error.h"
#include "core/tensor.h"

namespace engram {

// complex_mul: a, b of out's shape [.., 2], one dtype.
inline void check_complex_mul_args(const Tensor& a, const Tensor& b, const Tensor& out) {
  ENGRAM_CHECK(out.dim() >= 1 && out.shape().back() == 2 && a.shape() == out.shape() &&
                   b.shape() == out.shape(),
               "complex_mul: expected a, b of the output's shape [.., 2], got a {}, b {}, out {}",
               shape_str(a.shape()), shape_str(b.shape()), shape_str(out.shape()));
  ENGRAM_CHECK(a.dtype() == out.dtype() && b.dtype() == out.dtype(),
               "complex_mul: dtypes differ: a {}, b {}, out {}", dtype_name(a.dtype()),
               dtype_name(b.dtype()), dtype_name(out.dtype()));
}

}  // namespace engram
