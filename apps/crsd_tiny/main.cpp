// apps/crsd_tiny/main.cpp — a tiny CRSD language model on English text, with LSTM and
// Transformer baselines of about the same size.
//
// CRSD (memory/crsd/crsd.h) combines a fixed echo-state reservoir, a Hebbian fast-weight memory, an
// episodic slot buffer, a gated diagonal recurrence and a spectral mix. This app trains the
// byte-level CRSDLanguageModel on the English text of Debian's fortunes package, carrying the
// recurrent state from one batch to the next (B parallel text streams), validates it, and samples
// from it; `--model lstm` and `--model transformer` (or configs/lstm.yaml, configs/transformer.yaml)
// train the baselines with the same data, budget and loop.
//
//   build/apps/crsd_tiny [--config FILE] [--data FILE] [--steps N] [--out DIR] [--resume CKPT]
//                        [--seed S] [--model crsd|lstm|transformer] [--set key=value]...
//                        [--trace] [--help-config]
//
// The default config is configs/tiny.yaml (its values are also the built-in defaults, so the
// binary behaves the same from any directory). Everything else — config checking, tokenizers,
// data, the loop, checkpoints, metrics, plots, sampling — is the sandbox harness in apps/common;
// see README.md for what to expect.
#include "apps/common/lm_app.h"

int main(int argc, char** argv) {
  return engram::apps::run_lm_app(
      {"crsd_tiny", "Train a tiny CRSD language model (or an LSTM/Transformer baseline) on text",
       "apps/crsd_tiny/configs/tiny.yaml"},
      argc, argv);
}
