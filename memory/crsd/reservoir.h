// memory/crsd/reservoir.h — Reservoir: a fixed echo-state network (leaky, tanh).
//
//   s_t = (1 - leak) s_{t-1} + leak * tanh(W_in u_t + W_res s_{t-1})       s [B, R], u [B, C]
// W_res = rho * Q with Q a random orthogonal matrix, so every eigenvalue of W_res has modulus
// exactly rho < 1 (the echo-state property: the state forgets its initial condition). W_in is
// U(-input_scale, input_scale). Both are buffers, not parameters: a reservoir is never trained.
// It does pass gradients back to its input u (the layers below it are trained through it), so
// the CRSD cell gradchecks end to end. The input projection runs as one matmul over all T; the
// recurrence is one fused op, reservoir_scan (autograd/recurrent_ops.cpp).
#pragma once
#include "nn/module.h"

namespace engram::memory {

struct ReservoirOptions {
  int64_t size = 128;
  double spectral_radius = 0.9;
  double leak = 0.5;
  double input_scale = 0.5;
};

class Reservoir : public nn::Module {
 public:
  Reservoir(int64_t input_size, ReservoirOptions options = {}, Generator* gen = nullptr);
  // u [B, T, C] -> states [B, T, R]; `state` [B, R] (undefined = zeros) is updated to s_T.
  Tensor forward(const Tensor& u, Tensor& state) const;
  std::string type_name() const override { return "Reservoir"; }
  std::string extra_repr() const override;

  Tensor& w_in;   // [R, C]
  Tensor& w_res;  // [R, R]
  int64_t input_size;
  ReservoirOptions options;
};

}  // namespace engram::memory
