// memory/memnet/synthesizer.h — MemNet's MemorySynthesizer ("dreaming"): self-attention over the
// memory's slots, applied as a residual refinement, so that slots can absorb what related slots
// hold (consolidation without new input). The tokens of the attention are the N slots:
//   S <- S + g * MHA(LN(S), LN(S), LN(S))        S [B, N, d], no mask (every slot sees every slot)
//   g = tanh(gamma), gamma learned; it starts at atanh(gate_init), so a fresh model dreams gently
// MemNet runs it every `dream_every` segments inside the graph (trained end to end), and an app
// may run it offline between phases (dream() without gradient). Each run reports how much it
// changed the slots: |S_new - S|_F / |S|_F, averaged over the batch.
#pragma once
#include "nn/attention.h"

namespace engram::memnet {

class MemorySynthesizer : public nn::Module {
 public:
  MemorySynthesizer(int64_t width, int64_t heads, double gate_init, Generator* gen);
  // slots [B, N, d] -> refined slots; *relative_change (when given) gets the mean change.
  Tensor forward(const Tensor& slots, double* relative_change = nullptr);
  double gate() const;  // g
  std::string type_name() const override { return "MemorySynthesizer"; }

  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::MultiHeadAttention> attn;
  Tensor& gamma;  // [1]
};

}  // namespace engram::memnet
