// nn/ssm/block.h — the residual block every state-space language model is a stack of, and the
// SwiGLU feed-forward that RetNet and Samba put after their mixers.
//
//   ResidualBlock:  x = x + mixer(RMSNorm(x))            (pre-norm, as Mamba's mixer_seq_simple)
//                   x = x + SwiGLU(RMSNorm(x))           (when the block has a feed-forward)
//   SwiGLU:         y = W_down (silu(W_gate x) * (W_up x))   (Shazeer 2020; LLaMA's MLP, which
//                   Samba's lit_gpt LLaMAMLP and torchscale's swish GLU are), all bias-free
//
// x [B, T, C] -> [B, T, C]. A ResidualBlock is itself a SequenceMixer: its state is its mixer's,
// so blocks stack into a model that carries every layer's state across calls. The family-specific
// pieces (S4D's GELU -> GLU output transform, S5's half-GLU, LinOSS's GLU) live inside each
// family's mixer, as in their reference code; this block only adds the norm and the residual.
#pragma once
#include <memory>

#include "nn/layers.h"
#include "nn/ssm/mixer.h"

namespace engram::nn::ssm {

class SwiGLU : public UnaryModule {
 public:
  SwiGLU(int64_t d_model, int64_t hidden, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;  // [..., C] -> [..., C]
  std::string type_name() const override { return "SwiGLU"; }
  std::string extra_repr() const override;
  std::shared_ptr<Linear> w_gate, w_up, w_down;
};

class ResidualBlock : public SequenceMixer {
 public:
  // ffn_hidden = 0: no feed-forward (pure mixer blocks, as Mamba's d_intermediate = 0).
  ResidualBlock(std::shared_ptr<SequenceMixer> mixer, int64_t ffn_hidden = 0,
                Generator* gen = nullptr);
  Tensor forward(const Tensor& x, State& state) override;
  Tensor step(const Tensor& x_t, State& state) override;
  State initial_state(int64_t batch) const override { return mixer->initial_state(batch); }
  int64_t width() const override { return mixer->width(); }
  std::string type_name() const override { return "ResidualBlock"; }

  std::shared_ptr<RMSNorm> norm;
  std::shared_ptr<SequenceMixer> mixer;
  std::shared_ptr<RMSNorm> ffn_norm;  // null without a feed-forward
  std::shared_ptr<SwiGLU> ffn;

 private:
  Tensor feed_forward(const Tensor& x);
};

}  // namespace engram::nn::ssm
