// nn/ssm/samba.cpp — see samba.h.
#include "nn/ssm/samba.h"

#include <fmt/format.h>

#include "nn/ssm/mamba.h"

namespace engram::nn::ssm {

SlidingWindowAttention::SlidingWindowAttention(int64_t d, int64_t heads, int64_t window,
                                               Generator* gen)
    : d_model(d) {
  ENGRAM_CHECK(d > 0 && heads > 0 && d % heads == 0,
               "SlidingWindowAttention: d_model={} must be a positive multiple of heads={}", d, heads);
  ENGRAM_CHECK(window >= 1, "SlidingWindowAttention: window must be >= 1, got {}", window);
  attn = register_module("attn", std::make_shared<LocalSelfAttention>(d, heads, window, 0, 0.0, gen));
}

State SlidingWindowAttention::initial_state(int64_t batch) const {
  Tensor w = attn->attn->named_parameters().front().second;  // dtype/device of the layer
  return {{"cache", zeros({batch, 0, d_model}, w.dtype(), w.device())}};
}

Tensor SlidingWindowAttention::forward(const Tensor& x, State& state) {
  ENGRAM_CHECK(x.dim() == 3 && x.size(2) == d_model,
               "SlidingWindowAttention: expected x [B, T, {}], got {}", d_model, shape_str(x.shape()));
  Tensor cache = state_get(state, "cache", "SlidingWindowAttention");
  Tensor y = attn->forward(x, cache);
  state_set(state, "cache", cache);
  return note_output(y);
}

Tensor SlidingWindowAttention::step(const Tensor& x_t, State& state) {
  ENGRAM_CHECK(x_t.dim() == 2 && x_t.size(1) == d_model,
               "SlidingWindowAttention: expected x_t [B, {}], got {}", d_model,
               shape_str(x_t.shape()));
  return squeeze(forward(unsqueeze(x_t, 1), state), 1);
}

std::string SlidingWindowAttention::extra_repr() const {
  return fmt::format("d_model={}, window={}", d_model, attn->window);
}

std::vector<std::shared_ptr<ResidualBlock>> make_samba_layers(const SambaOptions& o, Generator* gen) {
  ENGRAM_CHECK(o.layers >= 1, "Samba: layers must be >= 1, got {}", o.layers);
  std::vector<std::shared_ptr<ResidualBlock>> out;
  for (int64_t l = 0; l < o.layers; ++l) {
    std::shared_ptr<SequenceMixer> mixer;
    if (l % 2 == 0) mixer = std::make_shared<Mamba>(o.d_model, o.d_state, o.d_conv, o.expand, 0, gen);
    else mixer = std::make_shared<SlidingWindowAttention>(o.d_model, o.heads, o.window, gen);
    out.push_back(std::make_shared<ResidualBlock>(mixer, o.mlp_hidden, gen));
  }
  return out;
}

}  // namespace engram::nn::ssm
