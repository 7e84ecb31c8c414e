// apps/common/lm_app.h — the command line of a language-model app, shared by every such app.
//
//   APP [--config FILE] [--data FILE] [--steps N] [--out DIR] [--resume CKPT] [--seed S]
//       [--model crsd|lstm|transformer] [--set key=value]... [--trace] [--help-config]
//
// The configuration is built in layers, later ones winning:
//   the table's defaults (apps/common/trainer.cpp, lm.cpp)
//   < the app's default config file (when it exists and no --config is given) or --config FILE
//   < --data / --steps / --out / --seed / --model  (shortcuts for data.path, train.steps, ...)
//   < --set key=value, in order.
// With --resume CKPT the base is the checkpoint's own config instead of a file; only the keys
// trainer.h allows (steps, evaluation, checkpointing, sampling, run dir) may then change.
//
// A run ends with exactly one line
//   final: step=N train_loss=X val_loss=X val_bpc=X val_ppl=X val_acc=X tokens_per_s=X
// followed by a generated sample. Every failure (bad command line, bad config, missing data,
// corrupt checkpoint, ...) prints one line `error: ...` to stderr and returns 2.
#pragma once
#include <string>

namespace engram::apps {

struct LMAppInfo {
  std::string name;            // "crsd_tiny": names the schema and the default run dir
  std::string description;     // one line for --help
  std::string default_config;  // merged when present and no --config is given ("" = none)
};

// Parses argv, trains, prints the final line and the sample; returns the exit code (0, or 2 on
// error). Nothing escapes as an exception.
int run_lm_app(const LMAppInfo& info, int argc, const char* const* argv);

}  // namespace engram::apps
