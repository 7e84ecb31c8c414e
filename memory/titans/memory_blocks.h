// memory/titans/memory_blocks.h — Titans' memory-as-gate block and the gated hybrid of neural and
// episodic memory, for the memory LMs (apps/memory_lm). x [B, T, E] -> [B, T, E].
//
// MAGBlock (Titans §4.2, eqs. 26–28, Fig. 3b): sliding-window attention with P persistent memory
// tokens as an always-visible prefix, and the neural memory over the same input, combined by a
// non-linear gate. As in the paper's experiments, both branches are normalised with learnable
// vector weights (RMSNorm) before the gate:
//   h = LN1 x;  y = SW-Attn([p ; h]);  m = NeuralMemory(h)
//   x += W_o (RMSNorm(y) * sigmoid(RMSNorm(m)));   x += MLP(LN2 x)
// (The persistent tokens enter the attention only; the memory learns from the tokens themselves.)
//
// GatedHybridBlock (the CMR conversation's closing design): the neural memory z_n and an episodic
// CMR memory z_e (memory/cmr/episodic_cmr.h), merged by a learned per-token gate
//   two sources:  g_t = sigmoid(w_g . h_t + b_g);  z_t = g_t z_n + (1 - g_t) z_e
//                 x += W [attn(h); z];  x += MLP(LN2 x)
//   softmax:      (g_attn, g_n, g_e)_t = softmax(W_g h_t);  x += g_attn a + g_n z_n + g_e z_e
// The gate of the last call is kept ([B, T] for two sources, [B, T, 3] for softmax) so the app
// can log it per token and layer and draw it over a sample text.
#pragma once
#include "memory/cmr/attention_cmr_blocks.h"
#include "memory/titans/neural_memory.h"

namespace engram::titans {

using cmr::BlockState;

// The neural memory's state as named tensors under `prefix` (absent = a fresh stream).
NeuralMemoryState load_neural(const BlockState& st, const std::string& prefix);
void store_neural(const NeuralMemoryState& s, BlockState& st, const std::string& prefix);

class MAGBlock : public cmr::MemoryLMBlock {
 public:
  MAGBlock(const cmr::LocalBlockConfig& local, const NeuralMemoryConfig& mem, Generator* gen);
  Tensor forward(const Tensor& x, BlockState& st, cmr::SharedCMRBank* shared) override;
  std::string type_name() const override { return "MAGBlock"; }
  std::shared_ptr<NeuralMemory> memory;
  std::shared_ptr<nn::RMSNorm> norm_attn, norm_memory;
  std::shared_ptr<nn::Linear> out;
};

enum class HybridGate { sigmoid, softmax };

class GatedHybridBlock : public cmr::MemoryLMBlock {
 public:
  GatedHybridBlock(const cmr::LocalBlockConfig& local, const NeuralMemoryConfig& mem,
                   const cmr::EpisodicCMRConfig& episodic, bool shared_bank, HybridGate gate,
                   Generator* gen);
  Tensor forward(const Tensor& x, BlockState& st, cmr::SharedCMRBank* shared) override;
  std::string type_name() const override { return "GatedHybridBlock"; }
  HybridGate gate_kind;
  std::shared_ptr<NeuralMemory> neural;
  std::shared_ptr<cmr::CMRSide> episodic;
  std::shared_ptr<nn::Linear> gate, mix;  // mix only for the two-source gate
  Tensor last_gate;                       // detached
};

}  // namespace engram::titans
