// tests/fuzz/fuzz_safetensors.cpp — fuzzes the safetensors reader (nn/checkpoint.cpp): the 8-byte
// header length, the JSON header (dtypes, shapes, data_offsets, __metadata__), the data area's
// bounds and overlaps. The input is written to a temporary file as a whole safetensors file and
// read with load_safetensors; a file it accepts is then loaded into a small training state (a
// Linear layer, its Adam state, a loss scaler and a Generator) with load_checkpoint, strict and not,
// which parses the optimizer's hyper-parameter JSON and the RNG state from the metadata as well.
// Seeds (tests/fuzz/corpus/safetensors/) are checkpoints written by save_checkpoint.
#include "nn/checkpoint.h"
#include "nn/layers.h"
#include "tests/fuzz/fuzz_util.h"

using namespace engram;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_temp("model.safetensors", data, size);
  nn::SafetensorsFile file;
  try {
    file = nn::load_safetensors(path);
  } catch (const Error& e) {  // refused, as it should be, naming the file
    fuzz::check_names_source(e, path);
    return 0;
  }
  // Accepted: every tensor must be what the header said, inside the bytes read.
  for (auto& [name, t] : file.tensors)
    if (!t.defined() || t.numel() < 0) std::abort();

  for (bool strict : {true, false}) {
    Generator g(7);
    nn::Linear layer(3, 2, true, &g);
    nn::Adam adam(layer.parameters());
    nn::DynamicLossScaler scaler;
    Generator rng(1);
    try {
      nn::load_checkpoint(path, layer, {&adam, &scaler, &rng}, strict);
    } catch (const Error& e) {
      fuzz::check_names_source(e, path);
    }
  }
  return 0;
}
