// nn/ssm/mamba.h — Mamba, the selective state space layer (Gu & Dao, "Mamba: Linear-Time Sequence
// Modeling with Selective State Spaces", arXiv 2312.00752), following state-spaces/mamba
// mamba_ssm/modules/mamba_simple.py (upstream HEAD) with its defaults.
//
// Shapes: x [B, T, C] with C = d_model; E = d_inner = expand * C; N = d_state; R = dt_rank;
// K = d_conv. Per token:
//   [x, z]     = in_proj(h)                         Linear(C, 2E), no bias; x, z [B, T, E]
//   x          = silu(causal depthwise conv1d(x))   Conv1d(E, E, K, groups=E) with bias, causal
//   [dt, Bm, Cm] = x_proj(x)                        Linear(E, R + 2N), no bias
//   delta      = dt_proj.weight dt                  [B, T, E]; dt_proj.bias is the scan's delta_bias
//   A          = -exp(A_log)                        [E, N], the S4D-Real diagonal
//   y          = selective_scan(x, delta, A, Bm, Cm, D, z, dt_proj.bias, softplus)   (ops.h):
//                  dt_t = softplus(delta_t + bias),  h_t = exp(dt_t A) h_{t-1} + dt_t Bm_t x_t,
//                  y_t = Cm_t . h_t + D x_t,  y_t *= silu(z_t)
//   out        = out_proj(y)                        Linear(E, C), no bias
// Discretisation as the reference: zero-order hold for A (exp(dt A)), Euler for B (dt B).
//
// Init (mamba_simple.py): in_proj, x_proj, out_proj and conv1d PyTorch's defaults
// (U(+-1/sqrt(fan_in)), conv fan_in = K); dt_proj.weight ~ U(+-R^-0.5); dt_proj.bias = the
// inverse softplus of dt = exp(U(log dt_min, log dt_max)) clamped >= 1e-4, so softplus(bias)
// starts in [dt_min, dt_max]; A_log[e, n] = log(n + 1); D = 1. dt_rank 0 means ceil(C / 16).
//
// Parameter names (PyTorch's state dict of mamba_simple.Mamba, bias=False): in_proj.weight
// [2E, C], conv1d.weight [E, 1, K], conv1d.bias [E], x_proj.weight [R + 2N, E], dt_proj.weight
// [E, R], dt_proj.bias [E], A_log [E, N], D [E], out_proj.weight [C, E]
// (tests/golden/torch_ssm_mamba.py uses the same).
//
// State: "conv" [B, K-1, E], the last K-1 conv inputs (zeros before the first token), and "h"
// [B, E, N], the scan's state. forward() runs the fused ops (causal_conv1d, selective_scan);
// step() is mamba_simple's step() written with plain ops (exp(dt A), dt B x, C . h), a second
// computation the tests hold equal to the first.
#pragma once
#include <memory>

#include "nn/layers.h"
#include "nn/ssm/mixer.h"

namespace engram::nn::ssm {

// Mamba's depthwise causal Conv1d(E, E, K, groups=E): weight [E, 1, K] (PyTorch's layout), bias [E].
class DepthwiseConv1d : public Module {
 public:
  DepthwiseConv1d(int64_t channels, int64_t kernel, Generator* gen = nullptr);
  // x [B, T, E] with the K-1 inputs before it, x0 [B, K-1, E] -> [B, T, E]
  Tensor forward(const Tensor& x, const Tensor& x0) const;
  std::string type_name() const override { return "Conv1d"; }
  std::string extra_repr() const override;
  Tensor& weight;
  Tensor& bias;
  int64_t channels, kernel;
};

class Mamba : public SequenceMixer {
 public:
  Mamba(int64_t d_model, int64_t d_state = 16, int64_t d_conv = 4, int64_t expand = 2,
        int64_t dt_rank = 0 /* 0 = ceil(d_model / 16) */, Generator* gen = nullptr,
        double dt_min = 0.001, double dt_max = 0.1);

  Tensor forward(const Tensor& x, State& state) override;  // [B, T, C] -> [B, T, C]
  Tensor step(const Tensor& x_t, State& state) override;   // [B, C] -> [B, C]
  State initial_state(int64_t batch) const override;       // {"conv", "h"}, zeros
  int64_t width() const override { return d_model; }
  std::string type_name() const override { return "Mamba"; }
  std::string extra_repr() const override;

  int64_t d_model, d_state, d_conv, expand, d_inner, dt_rank;
  // selective_scan's checkpoint interval: memory (T / chunk states) against recomputation in the
  // backward; the result does not depend on it.
  int64_t chunk = 64;
  std::shared_ptr<Linear> in_proj;
  std::shared_ptr<DepthwiseConv1d> conv1d;
  std::shared_ptr<Linear> x_proj, dt_proj;
  Tensor& A_log;
  Tensor& D;
  std::shared_ptr<Linear> out_proj;

 private:
  // The state tensors, checked against this layer's shapes for batch B.
  std::pair<Tensor, Tensor> read_state(const State& state, int64_t B) const;
};

}  // namespace engram::nn::ssm
