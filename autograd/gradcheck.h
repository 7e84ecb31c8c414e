// autograd/gradcheck.h — gradients checked against central differences, in float64.
//
// For f: inputs -> y, the analytic gradient from the tape is compared with
//     dL/dx_i ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps),   eps = 1e-6,
// and passes when |analytic - numeric| <= atol + rtol * |numeric| everywhere (PyTorch's
// gradcheck tolerances by default: atol 1e-5, rtol 1e-3). Small problems compare the full
// Jacobian (one backward per output element, one column of differences per input element);
// larger ones compare the vector-Jacobian product L = sum(w * y) for a random w.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace engram {

struct GradcheckOptions {
  double eps = 1e-6, atol = 1e-5, rtol = 1e-3;
  int64_t full_jacobian_max = 4096;  // numel(y) * numel(inputs) below which the full J is used
  uint64_t seed = 1234;
};

struct GradcheckResult {
  bool ok = true;
  double max_abs_err = 0, max_rel_err = 0;
  bool full_jacobian = false;
  std::string message;  // first failure: input, element, analytic vs numeric
};

using TensorFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Checks d fn / d inputs[i] for every i with differentiable[i]. Inputs must be f64.
GradcheckResult gradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs,
                          const std::vector<bool>& differentiable, const GradcheckOptions& opt = {});

}  // namespace engram
