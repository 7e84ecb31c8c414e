// nn/recurrent.cpp — see recurrent.h. The LSTM and GRU share everything but the cell update:
// parameter registration, shape checks, the all-steps input projection and the initial state.
#include "nn/recurrent.h"

#include <cmath>

#include "nn/init.h"

namespace engram::nn {

namespace {

// Registers weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k} ([G*H, in], [G*H, H],
// [G*H], [G*H]) for G gates, drawing U(-1/sqrt(H), 1/sqrt(H)) in PyTorch's registration order.
template <class Params, class Register>
std::vector<Params> make_layers(Register reg, int64_t gates, int64_t input_size, int64_t hidden,
                                int64_t num_layers, bool bias, Generator* gen) {
  double bound = 1.0 / std::sqrt(double(hidden));
  std::vector<Params> layers;
  for (int64_t l = 0; l < num_layers; ++l) {
    int64_t in = l == 0 ? input_size : hidden;
    Params p;
    p.w_ih = reg(fmt::format("weight_ih_l{}", l), empty({gates * hidden, in}));
    p.w_hh = reg(fmt::format("weight_hh_l{}", l), empty({gates * hidden, hidden}));
    init::uniform_(p.w_ih, -bound, bound, gen);
    init::uniform_(p.w_hh, -bound, bound, gen);
    if (bias) {
      p.b_ih = reg(fmt::format("bias_ih_l{}", l), empty({gates * hidden}));
      p.b_hh = reg(fmt::format("bias_hh_l{}", l), empty({gates * hidden}));
      init::uniform_(p.b_ih, -bound, bound, gen);
      init::uniform_(p.b_hh, -bound, bound, gen);
    }
    layers.push_back(p);
  }
  return layers;
}

void check_input(const char* module, const Tensor& x, int64_t input_size) {
  ENGRAM_CHECK(x.dim() == 3 && x.shape()[2] == input_size,
               "{}: expected input [B, T, {}] (batch first), got {}", module, input_size,
               shape_str(x.shape()));
  ENGRAM_CHECK(x.shape()[1] > 0, "{}: input {} has no time steps", module, shape_str(x.shape()));
}

// The state of layer l from s [L, B, H], or zeros when s is undefined.
Tensor initial_state(const char* module, const char* what, const Tensor& s, int64_t l,
                     int64_t layers, int64_t B, int64_t H, const Tensor& like) {
  if (!s.defined()) return zeros({B, H}, like.dtype(), like.device());
  ENGRAM_CHECK(s.dim() == 3 && s.shape() == Shape({layers, B, H}),
               "{}: expected {} [num_layers={}, B={}, H={}], got {}", module, what, layers, B, H,
               shape_str(s.shape()));
  return select(s, 0, l);
}

// x [B, T, in] -> x W^T + b as [B, T, G*H], one matmul over all B*T rows.
Tensor project_all_steps(const Tensor& x, const Tensor& w, const Tensor& b) {
  int64_t B = x.shape()[0], T = x.shape()[1];
  Tensor rows = matmul(reshape(x, {B * T, x.shape()[2]}), transpose(w, 0, 1));
  if (b.defined()) rows = add(rows, b);
  return reshape(rows, {B, T, w.shape()[0]});
}

// Gate k of G along the last dim of g [B, G*H].
Tensor gate(const Tensor& g, int64_t k, int64_t H) { return slice(g, 1, k * H, (k + 1) * H); }

}  // namespace

// ---------------------------------------------------------------- LSTM
LSTM::LSTM(int64_t in, int64_t hidden, int64_t layers, bool bias, double p, Generator* gen)
    : input_size(in), hidden_size(hidden), num_layers(layers), has_bias(bias), dropout(p),
      gen_(gen) {
  ENGRAM_CHECK(in > 0 && hidden > 0 && layers > 0,
               "LSTM: sizes must be positive, got input_size={} hidden_size={} num_layers={}", in,
               hidden, layers);
  ENGRAM_CHECK(p >= 0 && p < 1, "LSTM: dropout must be in [0, 1), got {}", p);
  auto reg = [this](const std::string& name, Tensor t) { return register_parameter(name, t); };
  layers_ = make_layers<LayerParams>(reg, 4, in, hidden, layers, bias, gen);
}

LSTMOutput LSTM::forward(const Tensor& x, const LSTMState& state) {
  check_input("LSTM", x, input_size);
  int64_t B = x.shape()[0], T = x.shape()[1], H = hidden_size;
  Tensor seq = x;
  std::vector<Tensor> h_last, c_last;
  for (int64_t l = 0; l < num_layers; ++l) {
    const LayerParams& p = layers_[l];
    Tensor h = initial_state("LSTM", "h0", state.h, l, num_layers, B, H, x);
    Tensor c = initial_state("LSTM", "c0", state.c, l, num_layers, B, H, x);
    // Both biases are constant over time, so they are added once to the projected inputs.
    Tensor bias = p.b_ih.defined() ? add(p.b_ih, p.b_hh) : Tensor();
    Tensor gx = project_all_steps(seq, p.w_ih, bias);  // [B, T, 4H]
    // The time loop is one fused op (autograd/recurrent_ops.cpp): the cell's pointwise step as
    // one kernel, h W_hh^T as one gemm per step, and one tape node for the whole layer.
    LstmSequence layer = lstm_sequence(gx, p.w_hh, h, c);
    seq = layer.output;  // [B, T, H]
    h = select(seq, 1, T - 1);
    c = layer.c_last;
    if (dropout > 0 && l + 1 < num_layers) seq = engram::dropout(seq, dropout, is_training(), gen_);
    h_last.push_back(h);
    c_last.push_back(c);
  }
  note_output(seq);
  return {seq, stack(h_last, 0), stack(c_last, 0)};
}

std::string LSTM::extra_repr() const {
  return fmt::format("{}, {}, num_layers={}, bias={}, dropout={}", input_size, hidden_size,
                     num_layers, has_bias, dropout);
}

// ---------------------------------------------------------------- GRU
GRU::GRU(int64_t in, int64_t hidden, int64_t layers, bool bias, double p, Generator* gen)
    : input_size(in), hidden_size(hidden), num_layers(layers), has_bias(bias), dropout(p),
      gen_(gen) {
  ENGRAM_CHECK(in > 0 && hidden > 0 && layers > 0,
               "GRU: sizes must be positive, got input_size={} hidden_size={} num_layers={}", in,
               hidden, layers);
  ENGRAM_CHECK(p >= 0 && p < 1, "GRU: dropout must be in [0, 1), got {}", p);
  auto reg = [this](const std::string& name, Tensor t) { return register_parameter(name, t); };
  layers_ = make_layers<LayerParams>(reg, 3, in, hidden, layers, bias, gen);
}

GRUOutput GRU::forward(const Tensor& x, const Tensor& h0) {
  check_input("GRU", x, input_size);
  int64_t B = x.shape()[0], T = x.shape()[1], H = hidden_size;
  Tensor seq = x;
  std::vector<Tensor> h_last;
  for (int64_t l = 0; l < num_layers; ++l) {
    const LayerParams& p = layers_[l];
    Tensor h = initial_state("GRU", "h0", h0, l, num_layers, B, H, x);
    // b_hn sits inside r * (.), so only b_ih can be folded into the all-steps projection.
    Tensor gx = project_all_steps(seq, p.w_ih, p.b_ih);  // [B, T, 3H]
    Tensor w_hh_t = transpose(p.w_hh, 0, 1);              // [H, 3H]
    std::vector<Tensor> hs, gx_steps = unbind(gx, 1);
    for (int64_t t = 0; t < T; ++t) {
      Tensor gi = gx_steps[t];  // [B, 3H]
      Tensor gh = matmul(h, w_hh_t);
      if (p.b_hh.defined()) gh = add(gh, p.b_hh);
      Tensor r = sigmoid(add(gate(gi, 0, H), gate(gh, 0, H)));
      Tensor z = sigmoid(add(gate(gi, 1, H), gate(gh, 1, H)));
      Tensor n = tanh(add(gate(gi, 2, H), mul(r, gate(gh, 2, H))));
      h = add(n, mul(z, sub(h, n)));  // (1 - z) * n + z * h, one op fewer
      hs.push_back(h);
    }
    seq = stack(hs, 1);
    if (dropout > 0 && l + 1 < num_layers) seq = engram::dropout(seq, dropout, is_training(), gen_);
    h_last.push_back(h);
  }
  note_output(seq);
  return {seq, stack(h_last, 0)};
}

std::string GRU::extra_repr() const {
  return fmt::format("{}, {}, num_layers={}, bias={}, dropout={}", input_size, hidden_size,
                     num_layers, has_bias, dropout);
}

}  // namespace engram::nn
