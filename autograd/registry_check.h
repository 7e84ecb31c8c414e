// autograd/registry_check.h — the two checks every registry sample goes through (shared by
// tests/test_registry.cpp and tools/gradcheck.cpp, so the suite and `make gradcheck` agree).
//
// 1. check_gradient: the f64 central-difference gradcheck (autograd/gradcheck.h) with the op's
//    tolerances. The registry defaults (OpInfo::grad_atol 1e-7, grad_rtol 1e-6) are ~100x above
//    what every op achieves (max_abs_err <= 1e-8), so a backward off by a factor 1.001 fails.
//
// 2. check_strided: PyTorch's non-contiguous sample test. Each input in turn is replaced by a
//    non-contiguous view holding the same values, and the op's output and the gradients of all
//    inputs (for one fixed upstream gradient w, L = sum(w * y)) must equal the contiguous run's:
//      transposed  the last two dims of a contiguous buffer swapped back by a transpose view
//      stepped     every other element of a buffer twice as long in the last dim; the skipped
//                  elements hold NaN (floating) or an out-of-range index (integer), so a kernel
//                  that reads past the view's strides produces NaN or an error, not a near miss
//      expanded    a stride-0 view over dim 0: row 0 broadcast to every row. The contiguous run
//                  for this variant uses the same row-repeated values.
//    The two runs may differ only by the rounding of a different summation order (1e-10).
//
// 3. check_device: the sample on another device (the GPU) against the CPU, both in `dtype` (f32
//    runs use the f64 sample's values rounded once, on the CPU, so both devices see the same
//    bits): the output and every gradient must satisfy ||dev - cpu|| <= rtol ||cpu||; the message
//    names the tensor and its worst element. Used by tests/cuda/test_cuda.cpp.
#pragma once
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/registry.h"

namespace engram {

GradcheckResult check_gradient(const OpInfo& op, const OpSample& s);

struct StridedResult {
  bool ok = true;
  int variants = 0;        // non-contiguous runs compared
  double max_abs_err = 0;  // worst |strided - contiguous| over outputs and gradients
  std::string message;     // first failure: input, variant, which tensor, element
};
StridedResult check_strided(const OpInfo& op, const OpSample& s);

struct DeviceResult {
  bool ok = true;
  double worst_rel = 0;  // the largest relative-norm error over the output and gradients
  std::string message;   // first failure
};
DeviceResult check_device(const OpInfo& op, const OpSample& s, Device dev, DType dtype,
                          double rtol);

}  // namespace engram
