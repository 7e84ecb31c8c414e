// tests/module_gradcheck.h — the gradcheck every layer and memory module test uses: the gradient of
// L = sum(run(x) * w), w a fixed random normal, with respect to the input x and every parameter of
// the module, against central differences in f64, at the registry's tight tolerances (atol 1e-7,
// rtol 1e-6: 100x tighter than PyTorch's gradcheck defaults, see autograd/registry.h). `run` may
// call the module several times (two calls carrying a recurrent state), so the gradient through
// the carried state is checked too. The caller asserts on the result (CHECK_MESSAGE(r.ok, ...)).
#pragma once
#include <functional>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "nn/module.h"

namespace engram::testing {

inline GradcheckOptions tight_gradcheck() {
  GradcheckOptions o;
  o.atol = 1e-7, o.rtol = 1e-6;
  return o;
}

inline GradcheckResult module_gradcheck(nn::Module& m, const std::function<Tensor(const Tensor&)>& run,
                                        const Tensor& x, GradcheckOptions opt = tight_gradcheck(),
                                        uint64_t seed = 12) {
  std::vector<Tensor> inputs{x};
  for (auto& [name, p] : m.named_parameters()) inputs.push_back(p);
  Generator g(seed);
  Tensor w;
  auto fn = [&](const std::vector<Tensor>& in) {
    Tensor y = run(in[0]);
    if (!w.defined()) w = randn(y.shape(), DType::f64, &g);
    return sum(mul(y, w));
  };
  return gradcheck(fn, inputs, std::vector<bool>(inputs.size(), true), opt);
}

}  // namespace engram::testing
