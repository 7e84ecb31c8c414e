// nn/ssm/samba.h — Samba (Ren et al. 2024, arXiv 2406.07522; microsoft/Samba lit_gpt/model.py):
// "Mamba + MLP + Sliding Window Attention + MLP stacking at the layer level".
//
// Layer l of a Samba stack is a pre-norm residual block (block.h) whose mixer is
//   l even:  Mamba (mamba.h, the mamba_simple defaults)
//   l odd:   SlidingWindowAttention: causal attention over the last W tokens
// each followed by a SwiGLU MLP (lit_gpt's LLaMAMLP). In lit_gpt the window is passed to
// flash-attn as (W - 1, 0): a query sees itself and the W - 1 tokens before it, which is
// nn::LocalSelfAttention's window W here.
//
// One difference from the reference, said plainly: Samba's attention uses rotary positions;
// LocalSelfAttention uses ALiBi (a per-head linear distance penalty). Both are relative, so a
// stream of any length needs no position table, and the Mamba layers before the first attention
// layer already give it order information.
//
// SlidingWindowAttention's state is "cache" [B, n, C], the last n <= W - 1 inputs of earlier calls
// (the KV window); its step() is the same attention on one token, which is the recurrent mode of
// attention.
#pragma once
#include <memory>
#include <vector>

#include "nn/attention.h"
#include "nn/ssm/block.h"

namespace engram::nn::ssm {

class SlidingWindowAttention : public SequenceMixer {
 public:
  SlidingWindowAttention(int64_t d_model, int64_t heads, int64_t window, Generator* gen = nullptr);
  Tensor forward(const Tensor& x, State& state) override;
  Tensor step(const Tensor& x_t, State& state) override;
  State initial_state(int64_t batch) const override;
  int64_t width() const override { return d_model; }
  std::string type_name() const override { return "SlidingWindowAttention"; }
  std::string extra_repr() const override;

  int64_t d_model;
  std::shared_ptr<LocalSelfAttention> attn;
};

struct SambaOptions {
  int64_t d_model = 128, layers = 2, heads = 4, window = 64, mlp_hidden = 256;
  int64_t d_state = 16, d_conv = 4, expand = 2;  // the Mamba layers (mamba_simple defaults)
};

// The layers of a Samba stack: Mamba + SwiGLU at even l, SlidingWindowAttention + SwiGLU at odd l.
std::vector<std::shared_ptr<ResidualBlock>> make_samba_layers(const SambaOptions& opt,
                                                              Generator* gen = nullptr);

}  // namespace engram::nn::ssm
