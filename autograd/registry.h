// autograd/registry.h — the op registry (PyTorch's OpInfo, ggml's test-backend-ops).
//
// Every differentiable op is listed here with sample inputs: several shapes, broadcasting cases
// and edge cases such as size-1 dims. One doctest suite walks the registry and gradchecks every
// sample in f64 against central differences; another compares f32 runs with PyTorch goldens
// (tests/golden/); a third reruns every sample with non-contiguous inputs (registry_check.h).
// No op escapes: a source scan (Makefile: build/op_names.inc) lists the op names written as
// literals in autograd/, and the test runner logs every op name recorded at run time; a name from
// either that no registry entry exercises fails the suite. The registry, its samples and the
// checks are test code: they build into build/libengram_testing.a, not libengram.a.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace engram {

struct OpSample {
  std::string label;                 // e.g. "broadcast [3,1] x [4]"
  std::vector<Tensor> inputs;        // f64 floating inputs, i64 indices
  std::vector<bool> differentiable;  // per input: checked by gradcheck
  nlohmann::json params = nlohmann::json::object();  // op arguments (dims, eps, ...)
  // Set for samples whose gradient is defined by convention rather than calculus (an embedding's
  // padding row gets none); they are still matched against PyTorch's goldens.
  bool skip_gradcheck = false;
};

struct OpInfo {
  std::string name;  // the PyTorch golden script uses the same name
  std::function<Tensor(const std::vector<Tensor>& inputs, const nlohmann::json& params)> fn;
  std::function<std::vector<OpSample>(Generator& gen)> samples;
  double golden_atol = 1e-5, golden_rtol = 1e-4;  // f32 engram vs f32 PyTorch
  // f64 analytic vs central differences. Every op achieves max_abs_err <= 1e-8 (`make
  // gradcheck`), so these defaults, ~100x above that and ~100x tighter than PyTorch's gradcheck
  // defaults, still catch a backward off by a factor 1.001. An op that needs looser ones sets
  // them next to its entry and says why.
  double grad_atol = 1e-7, grad_rtol = 1e-6;
  double grad_eps = 1e-6;  // larger for ops that round (to_dtype through f32)
};

const std::vector<OpInfo>& op_registry();
// The name of every tape node recorded while running every registry sample with its
// differentiable inputs requiring grad (an entry may record several ops).
std::set<std::string> registry_exercised_op_names();

using OpFn = std::function<Tensor(const std::vector<Tensor>& inputs, const nlohmann::json& params)>;
using SampleFn = std::function<std::vector<OpSample>(Generator& gen)>;
// An entry with default tolerances: entry("sum", fn, samples).
OpInfo entry(std::string name, OpFn fn, SampleFn samples);
const OpInfo* find_op(const std::string& name);

// Helpers for writing samples.
OpSample sample(std::string label, std::vector<Tensor> inputs, nlohmann::json params = {});
Tensor rn(Generator& g, const Shape& shape);                          // f64 normal
Tensor runif(Generator& g, const Shape& shape, double lo, double hi);  // f64 uniform
Tensor ids(Generator& g, const Shape& shape, int64_t high);           // i64 in [0, high)

}  // namespace engram
