// tools/export_samples.cpp — writes every op registry sample as JSON for the PyTorch golden
// script (`make golden`: build/tools/export_samples > build/op_samples.json, then
// tests/golden/make_golden.py turns it into tests/golden/ops.json).
//
// For each op: the samples of op.samples(Generator(42)) (the same ones the f64 gradcheck test
// uses), with floating inputs rounded to f32. The op is run once in f32 to learn the output
// shape, and an upstream weight w of that shape is drawn (f32 normals from a generator seeded
// by the op's name, so adding an op changes no other op's weights). The golden loss is sum(y * w).
//
//   {"ops": [{"name": ..., "samples": [{"label": ..., "params": {...},
//       "inputs": [{"shape": [...], "dtype": "f32"|"i64", "differentiable": bool, "data": [...]}],
//       "upstream": {"shape": [...], "data": [...]},
//       "engram_output": {"shape": [...], "dtype": ..., "data": [...]}}]}]}
//
// f32 values are written as the doubles they widen to, so they read back exactly.
// engram_output is engram's own f32 result: the golden script uses it only where PyTorch
// cannot reproduce engram's random numbers (dropout's mask), and it helps when debugging.
// Exits non-zero (after writing everything else) when some op fails to run in f32.
#include <cstdio>
#include <iostream>

#include "autograd/golden.h"
#include "autograd/ops.h"
#include "autograd/registry.h"

using namespace engram;
using json = nlohmann::json;

// FNV-1a of the op's name: the upstream weights of one op do not depend on the others.
static uint64_t name_seed(const std::string& name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h;
}

int main() {
  json ops = json::array();
  int failures = 0;
  for (const OpInfo& op : op_registry()) {
    Generator g(42);
    Generator wgen(name_seed(op.name));
    json jop;
    jop["name"] = op.name;
    jop["samples"] = json::array();
    std::vector<OpSample> samples;
    try {
      samples = op.samples(g);
    } catch (const std::exception& e) {
      std::cerr << "export_samples: op " << op.name << ": samples failed: " << e.what() << "\n";
      ++failures;
      continue;
    }
    for (const OpSample& s : samples) {
      try {
        json js;
        js["label"] = s.label;
        js["params"] = s.params.is_null() ? json::object() : s.params;
        std::vector<Tensor> in;
        json jin = json::array();
        for (size_t i = 0; i < s.inputs.size(); ++i) {
          Tensor t = is_floating(s.inputs[i].dtype()) ? raw::to_dtype(s.inputs[i], DType::f32)
                                                      : raw::clone(s.inputs[i]);
          json ji = golden::tensor_to_json(t);
          ji["differentiable"] = bool(s.differentiable[i]);
          jin.push_back(ji);
          in.push_back(t);
        }
        js["inputs"] = jin;
        Tensor y;
        {
          NoGradGuard ng;
          y = op.fn(in, s.params);
        }
        Tensor w = randn(y.shape(), DType::f32, &wgen);
        json ju = golden::tensor_to_json(w);
        ju.erase("dtype");
        js["upstream"] = ju;
        js["engram_output"] = golden::tensor_to_json(y);
        jop["samples"].push_back(js);
      } catch (const std::exception& e) {
        std::cerr << "export_samples: op " << op.name << " sample '" << s.label
                  << "' fails in f32: " << e.what() << "\n";
        ++failures;
      }
      tape().clear();
    }
    ops.push_back(jop);
  }
  json out;
  out["ops"] = ops;
  std::cout << out.dump() << "\n";
  if (failures) std::cerr << "export_samples: " << failures << " failure(s)\n";
  return failures ? 1 : 0;
}
