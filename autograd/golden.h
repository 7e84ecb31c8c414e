// autograd/golden.h — engram's ops matched against PyTorch goldens (tests/golden/ops.json).
//
// The pipeline (`make golden`):
//   1. tools/export_samples writes every registry sample as f32 inputs plus an upstream weight w
//      (the output's shape, rounded to f32) to build/op_samples.json;
//   2. tests/golden/make_golden.py runs the PyTorch equivalent of each op in f32, computes
//      loss = sum(y * w), backpropagates, and writes tests/golden/ops.json holding, per sample,
//      the inputs, w, PyTorch's output y and the gradient of every differentiable input.
// Here each stored sample is replayed through the registry op's fn in f32 and the output and
// every gradient are compared with |engram - torch| <= atol + rtol * |torch| (the op's
// golden_atol / golden_rtol). tests/test_golden.cpp and tools/gradcheck use this code.
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autograd/registry.h"

namespace engram::golden {

// {"shape": [...], "dtype": "f32"|"f64"|"i64", "data": [...]}: the values in row-major order
// (f32 values widened to double, so they read back exactly).
nlohmann::json tensor_to_json(const Tensor& t);
// Reads {"shape", "data"} (and "dtype" when present; `fallback` otherwise) into a CPU tensor.
Tensor tensor_from_json(const nlohmann::json& j, DType fallback = DType::f32);

struct Sample {
  std::string label;
  nlohmann::json params = nlohmann::json::object();
  std::vector<Tensor> inputs;  // f32 (floating) or i64, exactly as PyTorch saw them
  std::vector<bool> differentiable;
  Tensor upstream;            // w in loss = sum(y * w)
  Tensor output;              // PyTorch's y
  std::vector<Tensor> grads;  // PyTorch's dloss/dinput; undefined where not differentiable
};

struct OpGolden {
  std::string name;
  std::vector<Sample> samples;
};

struct File {
  std::string path;
  std::string torch_version;
  std::vector<OpGolden> ops;
  const OpGolden* find(const std::string& name) const;
};

// The golden file `name` ("ops.json", "layers.json", ...): $ENGRAM_GOLDEN_DIR/name when that
// variable is set (and only there), otherwise tests/golden/name in the working directory or one of
// its parents, then in the running binary's directory or one of its parents (so tests run from the
// repo root or from inside the build dir). Throws engram::Error naming the file and where it
// looked when it is not found.
std::filesystem::path find_file(const std::string& name);
// find_file(name) parsed as JSON; a malformed file is an engram::Error naming its path.
nlohmann::json load_json(const std::string& name);
// find_file("ops.json"); never throws: when the file is missing it returns the path load() should
// report as missing ($ENGRAM_GOLDEN_DIR/ops.json or tests/golden/ops.json).
std::string default_path();
// Parses a golden file. Throws engram::Error naming the path (and `make golden`) when it is
// missing or malformed.
File load(const std::string& path);

struct Result {
  bool ok = true;
  int64_t samples = 0;  // samples compared
  double max_abs_err = 0, max_rel_err = 0;
  // Score of the worst element: |a - b| / (atol + rtol |b|); above 1 fails.
  double worst_score = 0;
  std::string worst;    // where that element is, and engram vs torch
  std::string message;  // why the first failing sample failed (empty when ok)
};

// Replays one stored sample through op.fn in f32 and compares output and gradients.
Result compare_sample(const OpInfo& op, const Sample& s);
// All samples of an op; the result reports the worst element over all of them.
Result compare_op(const OpInfo& op, const OpGolden& g);

// Empty when the stored samples still match op.samples(Generator(42)) by count, label and input
// shapes; otherwise a sentence saying how they differ (the golden is stale: run `make golden`).
std::string stale_reason(const OpInfo& op, const OpGolden& g);

}  // namespace engram::golden
