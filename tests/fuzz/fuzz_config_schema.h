// tests/fuzz/fuzz_config_schema.h — the config schema the config fuzz target runs against (one
// field of each type), shared with the regression replays of tests/test_fuzz_regressions.cpp so
// a saved input is read exactly as the fuzzer read it.
#pragma once
#include <memory>

#include "apps/common/config.h"

namespace engram::apps {

inline std::shared_ptr<const Schema> fuzz_config_schema() {
  static auto s = std::make_shared<const Schema>(
      "fuzz", std::vector<FieldSpec>{
                  int_field("model.d_model", 64, 1, 4096, "width"),
                  choice_field("model.arch", "crsd", {"crsd", "lstm", "transformer"}, "model"),
                  real_field("train.lr", 3e-3, 0, 10, "learning rate"),
                  int_field("train.steps", 100, 0, int64_t(1) << 40, "steps"),
                  bool_field("train.loss_scaling", true, "dynamic loss scaling"),
                  real_field("train.grad_clip", 1.0, -1e300, 1e300, "clip"),
                  string_field("data.path", "/usr/share/games/fortunes", "corpus"),
                  string_field("run.name", "", "run name"),
              });
  return s;
}

}  // namespace engram::apps
