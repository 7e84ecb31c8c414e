// nn/ssm/s5.h — S5, the simplified MIMO diagonal state space (Smith, Warrington & Linderman,
// "Simplified State Space Layers for Sequence Modeling", ICLR 2023; lindermanlab/S5 s5/ssm.py
// S5SSM, s5/ssm_init.py, the block-diagonal init in s5/train.py, and s5/layers.py
// SequenceLayer's half_glu1 activation).
//
// Shapes: u [B, T, H] (H = d_model); one complex state of P = state_size modes shared by all H
// channels, with conjugate symmetry: only Ph = P/2 modes are stored and the output doubles the
// real part. Per mode p (all [Ph]) and the learned step dt_p = exp(log_step_p):
//   Lambda = Lambda_re + i Lambda_im,  B~ complex [Ph, H],  C~ complex [H, Ph],  D [H]
//   ZOH (default):  Lambda^ = exp(Lambda dt),  B^ = (Lambda^ - 1) / Lambda * B~
//   bilinear:       Lambda^ = (1 - dt/2 Lambda)^-1 (1 + dt/2 Lambda),  B^ = (1 - dt/2 Lambda)^-1 dt B~
//   x_t = Lambda^ * x_{t-1} + B^ u_t,   y_t = 2 Re(C~ x_t) + D * u_t
// The diagonal complex recurrence is linear_scan_2x2 with the complex multiplication written as
// the real block M_p = [[re, -im], [im, re]] of Lambda^_p (shared over B and T).
// Activation (SequenceLayer, activation "half_glu1"): g = gelu(y) (flax's default tanh
// approximation), out = g * sigmoid(out2(g)), out2 Linear(H, H) with bias. Norm, dropout and the
// residual are left to the block around the layer (nn/ssm/block.h).
//
// Init (ssm_init.py, train.py with conj_sym): blocks J divide P into J blocks of size P/J (even).
// Each block holds the DPLR diagonalisation of HiPPO-LegS of size P/J (nn/ssm/hippo.h: HiPPO-N's
// eigenvalues -1/2 + i w and eigenvectors V), of which the first P/(2J) (one of each conjugate
// pair) are kept; V_blk = blockdiag(V[:, :P/2J]) [P, Ph], V_inv = blockdiag(V[:, :P/2J]^*) [Ph, P].
//   Lambda_re, Lambda_im = the kept eigenvalues, tiled over the J blocks
//   B~ = V_inv B0,  B0 [P, H] ~ lecun_normal (truncated normal, std 1/sqrt(P): flax's fan_in is
//        the second-to-last dim, here P)
//   C~ = C0 V_blk,  C0 [H, P] complex, re and im ~ truncated normal, std 1/sqrt(P)
//        (trunc_standard_normal = lecun_normal per row of shape (1, P, 2))
//   D ~ N(0, 1),  log_step ~ U[log 1e-3, log 1e-1] per mode
//   out2: flax Dense, weight lecun_normal (std 1/sqrt(H)), bias 0
// (truncated normal as jax: a standard normal truncated to [-2, 2], divided by its std 0.8796.)
// Parameter names: Lambda_re [Ph], Lambda_im [Ph], B [Ph, H, 2], C [H, Ph, 2], D [H],
// log_step [Ph], out2.weight [H, H], out2.bias [H] (tests/golden/torch_ssm_s5.py uses them).
//
// State "x" [B, Ph, 2]: the complex state (re, im) after the last token read.
#pragma once
#include <memory>

#include "nn/layers.h"
#include "nn/ssm/mixer.h"

namespace engram::nn::ssm {

class S5 : public SequenceMixer {
 public:
  S5(int64_t d_model, int64_t state_size, int64_t blocks = 1, bool bilinear = false,
     Generator* gen = nullptr);

  Tensor forward(const Tensor& x, State& state) override;  // [B, T, H] -> [B, T, H]
  Tensor step(const Tensor& x_t, State& state) override;   // [B, H] -> [B, H]
  State initial_state(int64_t batch) const override;       // {"x": zeros [B, P/2, 2]}
  int64_t width() const override { return d_model; }
  std::string type_name() const override { return "S5"; }
  std::string extra_repr() const override;

  // The discretised system, differentiable in the parameters.
  struct Discrete {
    Tensor lambda_re, lambda_im;  // Lambda^ [Ph]
    Tensor B_re, B_im;            // B^ [Ph, H]
  };
  Discrete discretise() const;

  int64_t d_model, state_size, modes, blocks;  // modes = Ph = P/2
  bool bilinear;
  Tensor& Lambda_re;  // [Ph]
  Tensor& Lambda_im;  // [Ph]
  Tensor& B;          // [Ph, H, 2]
  Tensor& C;          // [H, Ph, 2]
  Tensor& D;          // [H]
  Tensor& log_step;   // [Ph]
  std::shared_ptr<Linear> out2;

 private:
  // 2 Re(C x) + D u -> gelu -> half GLU; x [.., Ph, 2] contiguous (re, im pairs), u [.., H].
  Tensor readout(const Tensor& x, const Tensor& u);
  // B^ u as one real product: [.., H] -> [.., Ph, 2] (re, im pairs, the scan's layout).
  static Tensor drive(const Discrete& d, const Tensor& u);
  const Tensor& checked_state(const State& state, int64_t batch) const;
};

}  // namespace engram::nn::ssm
