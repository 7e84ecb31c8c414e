// nn/ssm/block.cpp — see block.h.
#include "nn/ssm/block.h"

#include <fmt/format.h>

namespace engram::nn::ssm {

SwiGLU::SwiGLU(int64_t d_model, int64_t hidden, Generator* gen) {
  w_gate = register_module("w_gate", std::make_shared<Linear>(d_model, hidden, false, gen));
  w_up = register_module("w_up", std::make_shared<Linear>(d_model, hidden, false, gen));
  w_down = register_module("w_down", std::make_shared<Linear>(hidden, d_model, false, gen));
}

// y = W_down (silu(W_gate x) * W_up x)
Tensor SwiGLU::forward(const Tensor& x) {
  return note_output(w_down->forward(mul(silu(w_gate->forward(x)), w_up->forward(x))));
}

std::string SwiGLU::extra_repr() const {
  return fmt::format("d_model={}, hidden={}", w_gate->in_features, w_gate->out_features);
}

ResidualBlock::ResidualBlock(std::shared_ptr<SequenceMixer> m, int64_t ffn_hidden, Generator* gen) {
  ENGRAM_CHECK(m != nullptr, "ResidualBlock: the mixer must not be null");
  ENGRAM_CHECK(ffn_hidden >= 0, "ResidualBlock: ffn_hidden must be >= 0, got {}", ffn_hidden);
  const int64_t C = m->width();
  norm = register_module("norm", std::make_shared<RMSNorm>(C, 1e-5));
  mixer = register_module("mixer", std::move(m));
  if (ffn_hidden > 0) {
    ffn_norm = register_module("ffn_norm", std::make_shared<RMSNorm>(C, 1e-5));
    ffn = register_module("ffn", std::make_shared<SwiGLU>(C, ffn_hidden, gen));
  }
}

Tensor ResidualBlock::feed_forward(const Tensor& x) {
  return ffn ? add(x, ffn->forward(ffn_norm->forward(x))) : x;
}

Tensor ResidualBlock::forward(const Tensor& x, State& state) {
  return feed_forward(add(x, mixer->forward(norm->forward(x), state)));
}

Tensor ResidualBlock::step(const Tensor& x_t, State& state) {
  return feed_forward(add(x_t, mixer->step(norm->forward(x_t), state)));
}

}  // namespace engram::nn::ssm
