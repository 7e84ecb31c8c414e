// nn/checkpoint.h — checkpoints as safetensors files (the Hugging Face format PyTorch reads).
//
// Layout of a file:
//
//   [8 bytes]  N, the header length, unsigned little-endian
//   [N bytes]  JSON header, padded with spaces to a multiple of 8:
//                {"__metadata__": {"step": "500", ...},                  (string -> string)
//                 "fc1.weight": {"dtype": "F32", "shape": [16, 8], "data_offsets": [0, 512]},
//                 ...}
//   [rest]     the tensors' bytes, little-endian, row-major; data_offsets are [begin, end)
//              relative to the start of this area
//
// engram writes F32, F64 and I64. A checkpoint holds the module's parameters and buffers under
// their own dotted names (so "fc1.weight" lines up with a PyTorch state_dict), optionally the
// optimizer's state under "optim.<group>.<param>.<name>" and the loss scaler's under "scaler.*",
// and metadata: the caller's strings (step, config, ...) plus "engram.optimizer" (the optimizer's
// type and hyper-parameters as JSON text) and "engram.rng" (Generator::state()).
//
// Writes are atomic: the bytes go to "<path>.tmp.<pid>", are flushed and fsync'ed, the temporary
// is renamed over <path> and the directory is fsync'ed, so a crash leaves the old file or the new
// one, never half of one. Loads validate everything before touching the module (file length,
// header length at most 100 MB and inside the file, JSON syntax, known dtypes,
// numel * itemsize == end - begin, offsets inside the data area and not overlapping) and throw
// an engram::Error naming the file and every bad entry. Strict loads also demand that every
// expected tensor is present with its shape and dtype and that nothing unexpected is in the file,
// listing every offending name in one message; non-strict loads copy what matches and report the
// rest. "optim.*" and "scaler.*" entries are only expected when an optimizer or scaler is given,
// so a training checkpoint loads strictly into a bare module for inference.
//
// Reading an engram checkpoint from Python, without any package beyond numpy:
//
//   import json, struct, numpy as np
//   raw = open("model.safetensors", "rb").read()
//   n = struct.unpack("<Q", raw[:8])[0]
//   header = json.loads(raw[8:8 + n]); meta = header.pop("__metadata__", {})
//   kinds = {"F32": "<f4", "F64": "<f8", "I64": "<i8"}
//   state = {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]],
//                             kinds[v["dtype"]]).reshape(v["shape"]) for k, v in header.items()}
//   # torch: model.load_state_dict({k: torch.from_numpy(a.copy()) for k, a in state.items()
//   #                               if not k.startswith(("optim.", "scaler."))})
//
// or, where the package is installed, safetensors.torch.load_file("model.safetensors").
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/rng.h"
#include "nn/module.h"
#include "nn/optim.h"

namespace engram::nn {

using Metadata = std::map<std::string, std::string>;

// ---- the file format ----
// Writes `tensors` (any device or strides; names unique) and `metadata`, atomically.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const Metadata& metadata = {});
struct SafetensorsFile {
  NamedTensors tensors;  // CPU, contiguous, in the order of their data offsets
  Metadata metadata;
};
// Reads and validates a whole file; every problem is an engram::Error naming the file.
SafetensorsFile load_safetensors(const std::string& path);

// ---- training checkpoints ----
// What a checkpoint carries besides the module; every pointer is optional.
struct TrainingState {
  Optimizer* optimizer = nullptr;       // "optim.*" tensors + "engram.optimizer" metadata
  DynamicLossScaler* scaler = nullptr;  // "scaler.*" tensors
  Generator* rng = nullptr;             // "engram.rng" metadata
};

void save_checkpoint(const std::string& path, const Module& module, const TrainingState& state = {},
                     const Metadata& metadata = {});

struct LoadReport {
  std::vector<std::string> missing_keys;     // expected but not in the file
  std::vector<std::string> unexpected_keys;  // in the file but not expected
  std::vector<std::string> mismatched_keys;  // "name: file F32 [3, 4], expected F32 [4, 3]"
  Metadata metadata;                         // everything under __metadata__
  bool ok() const { return missing_keys.empty() && unexpected_keys.empty() && mismatched_keys.empty(); }
};

// Loads into the module (and the optimizer, scaler and RNG when given). strict: any missing,
// unexpected or mismatched entry is an error listing all of them, and nothing is changed.
// Non-strict: loads every entry that matches and reports the rest.
LoadReport load_checkpoint(const std::string& path, Module& module, const TrainingState& state = {},
                           bool strict = true);

}  // namespace engram::nn
