// nn/recurrent.h — multi-layer LSTM and GRU, batch-first, with PyTorch's parameters and gates.
//
// Input x [B, T, C]; every layer l maps its input sequence [B, T, in_l] to hidden states
// [B, T, H] (in_0 = C, in_l = H after), and the last layer's states are the output. The state
// carried between calls is h [L, B, H] (and c [L, B, H] for the LSTM), so a model can be run over
// a whole sequence at once or step by step (T = 1 per call, passing the previous final state back
// in); both give the same numbers.
//
// LSTM, gates in PyTorch's order i, f, g, o (rows of W_ih [4H, in], W_hh [4H, H]):
//   [i f g o] = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh
//   i, f, o = sigmoid(.),  g = tanh(.)
//   c_t = f * c_{t-1} + i * g
//   h_t = o * tanh(c_t)
// GRU, gates r, z, n (W_ih [3H, in], W_hh [3H, H]):
//   r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
//   z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
//   n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
//   h_t = (1 - z) * n + z * h_{t-1}
//
// Parameters are named weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k}, in that order,
// and initialised U(-1/sqrt(H), 1/sqrt(H)) like PyTorch, so state dicts load either way.
// Speed: the input projection x W_ih^T + b of a layer is one matmul over all B*T rows; only
// h W_hh^T is left inside the time loop. The LSTM's loop is one fused op, lstm_sequence
// (autograd/recurrent_ops.cpp: one gemm and one pointwise cell kernel per step, its backward by
// hand); the GRU's is still per-step autograd ops. Between layers an optional dropout (training only) is
// applied to the outputs of every layer but the last, as in PyTorch.
// Only batched input is accepted (PyTorch's unbatched [T, C] form is not).
#pragma once
#include "nn/module.h"

namespace engram::nn {

struct LSTMState {
  Tensor h, c;  // [L, B, H] each; undefined = zeros
};

struct LSTMOutput {
  Tensor output;  // [B, T, H]: h_t of the last layer at every step
  Tensor h_n;     // [L, B, H]: final h of every layer
  Tensor c_n;     // [L, B, H]: final c of every layer
  LSTMState state() const { return {h_n, c_n}; }  // to feed into the next call
};

class LSTM : public Module {
 public:
  LSTM(int64_t input_size, int64_t hidden_size, int64_t num_layers = 1, bool bias = true,
       double dropout = 0.0, Generator* gen = nullptr);
  LSTMOutput forward(const Tensor& x, const LSTMState& state = {});
  LSTMOutput operator()(const Tensor& x, const LSTMState& state = {}) { return forward(x, state); }
  std::string type_name() const override { return "LSTM"; }
  std::string extra_repr() const override;

  int64_t input_size, hidden_size, num_layers;
  bool has_bias;
  double dropout;

 private:
  struct LayerParams {
    Tensor w_ih, w_hh, b_ih, b_hh;  // biases undefined when has_bias = false
  };
  std::vector<LayerParams> layers_;
  Generator* gen_;
};

struct GRUOutput {
  Tensor output;  // [B, T, H]
  Tensor h_n;     // [L, B, H]
};

class GRU : public Module {
 public:
  GRU(int64_t input_size, int64_t hidden_size, int64_t num_layers = 1, bool bias = true,
      double dropout = 0.0, Generator* gen = nullptr);
  GRUOutput forward(const Tensor& x, const Tensor& h0 = Tensor());  // h0 [L, B, H] or undefined
  GRUOutput operator()(const Tensor& x, const Tensor& h0 = Tensor()) { return forward(x, h0); }
  std::string type_name() const override { return "GRU"; }
  std::string extra_repr() const override;

  int64_t input_size, hidden_size, num_layers;
  bool has_bias;
  double dropout;

 private:
  struct LayerParams {
    Tensor w_ih, w_hh, b_ih, b_hh;
  };
  std::vector<LayerParams> layers_;
  Generator* gen_;
};

}  // namespace engram::nn
