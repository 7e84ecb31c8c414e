// nn/ssm/linoss.h — LinOSS, the oscillatory state-space layer (Rusch & Rus, "Oscillatory
// State-Space Models", ICLR 2025; tk-rusch/linoss models/LinOSS.py: LinOSSLayer, apply_linoss_im,
// apply_linoss_imex, GLU, and the SSM -> GELU -> GLU part of LinOSSBlock).
//
// Shapes: x = u [B, T, H] (H = d_model), P = state_size oscillators. Per oscillator p, a forced
// harmonic oscillator driven by the complex input Bu (B complex [P, H]):
//   y''(t) = -A y(t) + (B u)(t),   A = relu(A_diag) >= 0,   dt = sigmoid(steps)   (both [P])
// with z = y' the state is [z; y], advanced per step by a 2x2 block M (per p) and a forcing F:
//   IM (implicit Euler, dissipative), S = 1 / (1 + dt^2 A):
//     M = [[1 - dt^2 A S, -dt A S], [dt S, S]],    F = [M11 dt Bu_t ; M21 dt Bu_t]
//   IMEX (symplectic Euler, conserving):
//     M = [[1, -dt A], [dt, 1 - dt^2 A]],          F = [dt Bu_t ; dt^2 Bu_t]
//   [z; y]_t = M [z; y]_{t-1} + F_t
// M is real, so the real and imaginary parts of the complex state are two independent columns
// of the same recurrence: the parallel mode is one linear_scan_2x2 over columns [2 (re, im), P]
// with M [P, 2, 2] shared by every batch row, step and part.
//   |eig M_IM| = 1/sqrt(1 + dt^2 A) <= 1;  det M_IMEX = 1, |eig| = 1 exactly when 0 < dt^2 A < 4.
// Output: o_t = Re(C y_t) + D * u_t (C complex [H, P], D [H]), then GELU -> GLU:
//   out = w1(g) * sigmoid(w2(g)),  g = gelu(o)   (jax.nn.gelu's default tanh approximation;
//   w1, w2 Linear(H, H) with bias). The block's norm, dropout and residual are left to the block
//   around the layer (nn/ssm/block.h).
//
// Init (LinOSSLayer): A_diag ~ U[0, 1), steps ~ U[0, 1) (dt in [0.5, 0.73)), B ~ U(+-1/sqrt(H))
// and C ~ U(+-1/sqrt(P)) for each of re and im, D ~ N(0, 1); w1, w2 as Linear's default
// U(+-1/sqrt(H)) (equinox's Linear default).
// Parameter names: A_diag [P], B [P, H, 2], C [H, P, 2], D [H], steps [P], glu.w1.weight [H, H],
// glu.w1.bias [H], glu.w2.weight, glu.w2.bias (tests/golden/torch_ssm_linoss.py uses them).
//
// State "x" [B, 2, P, 2]: x[b, c, p] = (z, y) of oscillator p after the last token read, c = 0
// the real part of the complex state, c = 1 its imaginary part.
#pragma once
#include <memory>

#include "nn/layers.h"
#include "nn/ssm/mixer.h"

namespace engram::nn::ssm {

// LinOSS's output GLU: w1(x) * sigmoid(w2(x)), [.., H] -> [.., H].
class LinOSSGLU : public UnaryModule {
 public:
  LinOSSGLU(int64_t d_model, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "GLU"; }
  std::shared_ptr<Linear> w1, w2;
};

class LinOSS : public SequenceMixer {
 public:
  enum class Discretization { IM, IMEX };

  LinOSS(int64_t d_model, int64_t state_size, Discretization disc = Discretization::IM,
         Generator* gen = nullptr);

  Tensor forward(const Tensor& x, State& state) override;  // [B, T, H] -> [B, T, H]
  Tensor step(const Tensor& x_t, State& state) override;   // [B, H] -> [B, H]
  State initial_state(int64_t batch) const override;       // {"x": zeros [B, 2, P, 2]}
  int64_t width() const override { return d_model; }
  std::string type_name() const override { return "LinOSS"; }
  std::string extra_repr() const override;

  // The per-oscillator recurrence: M [P, 2, 2] and the forcing coefficients (F_t = coef * Bu_t
  // for the z and the y row), each [P]. Differentiable in the parameters.
  struct Discrete {
    Tensor M, f_z, f_y;
  };
  Discrete discretise() const;

  int64_t d_model, state_size;
  Discretization disc;
  Tensor& A_diag;  // [P]
  Tensor& B;       // [P, H, 2]
  Tensor& C;       // [H, P, 2]
  Tensor& D;       // [H]
  Tensor& steps;   // [P]
  std::shared_ptr<LinOSSGLU> glu;

 private:
  Tensor input_drive(const Tensor& u) const;            // Re, Im of B u: [.., H] -> [.., 2, P]
  Tensor readout(const Tensor& y, const Tensor& u);     // y [.., 2, P], u [.., H] -> [.., H]
  const Tensor& checked_state(const State& state, int64_t batch) const;
};

}  // namespace engram::nn::ssm
