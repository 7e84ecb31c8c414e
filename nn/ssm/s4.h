// nn/ssm/s4.h — S4, the structured state space with a diagonal-plus-low-rank A (Gu, Goel & Ré,
// "Efficiently Modeling Long Sequences with Structured State Spaces", ICLR 2022, arXiv 2111.00396),
// after srush/annotated-s4 (discretize, K_gen_DPLR, conv_from_gen, discrete_DPLR) and
// state-spaces/s4 SSKernelNPLR (per-channel Lambda, P, B, C and log_dt; Cauchy sums; Woodbury).
//
// Shapes: x [B, T, H] (H channels, L = T tokens), N = state_size (even), one SISO SSM per channel.
// Continuous system, in the eigenbasis of HiPPO-LegS's normal part (nn/ssm/hippo.h):
//   A = Lambda - P P^*   (diagonal plus rank 1),   x' = A x + B u,   y = C x + D u.
// The N/2 modes with positive imaginary part are the parameters; the other N/2 are their exact
// conjugates ([half, conj(half)] along N), so for real u the state is conjugate-symmetric and
// y = C x = 2 Re sum_half C_n x_n is real. Lambda_n = -exp(log_A_real_n) + i A_imag_n.
//
// Bilinear discretisation with dt = exp(log_dt) (annotated-s4 discrete_DPLR):
//   A^ = (I - dt/2 A)^-1 (I + dt/2 A) = A1 A0,   B^ = 2 A1 B,   A0 = 2/dt I + A,
//   A1 = (2/dt - A)^-1 = D - D P (1 + P^* D P)^-1 P^* D,   D = diag(1 / (2/dt - Lambda))
// (Woodbury: no matrix inverse anywhere). The recurrence x_t = A^ x_{t-1} + B^ u_t, y_t = Re C x_t
// + D u_t is step(), with the dense A^ [H, N, N] (complex) built from this DPLR form.
//
// Kernel K_l = C A^^l B^ (l < L) from the truncated generating function at the roots of unity
// zeta_k = exp(-2 pi i k / L'):
//   K^(zeta) = sum_{l<L'} K_l zeta^l = C~ (I - A^ zeta)^-1 B^,  C~ = C (I - A^^L')  (zeta^L' = 1)
//            = c(zeta) [k00 - k01 k10 / (1 + k11)],   c = 2 / (1 + zeta),
//   k_ab = sum_n a_n b_n / (g - Lambda_n),  g = (2/dt)(1 - zeta)/(1 + zeta),
//          a in {C~, P^*},  b in {B, P}: four Cauchy sums (the cauchy_kernel op), then Woodbury
//   K = irfft(K^ at k = 0..L'/2, L')[:L]
// L' is L rounded up to odd, so zeta = -1 (where c and g are infinite) is never a node; its one
// extra coefficient is dropped. The output is y = irfft(rfft(u, 2L) rfft(K, 2L))[:L] + D u, then
// GELU -> Linear(H, 2H) -> GLU, as S4D (nn/ssm/s4d.h).
//
// The true C is the parameter, so C~ is made for each call's length: A^^L' by repeated squaring of
// the dense A^ (floor(log2 L') squarings and one product per set bit of L'), C~ = C - C A^^L'.
// Cost per channel and call, N = all modes: the four Cauchy sums are O(N L), where the naive
// kernel (C A^^l B^ for every l) is O(N^2 L); making C~ costs O(N^3 log L) on top. For the short
// segments of a language model that is the larger part (N = 64, L = 256: 8 squarings of 64 x 64
// complex matrices, ~17 MFLOP, against ~0.3 MFLOP of Cauchy sums); SSKernelNPLR avoids it by
// learning C~ for one fixed maximum length instead of C.
//
// State carried across calls: "x", the complex state after the last token, all N modes
// [B, H, N, 2]. A call that starts from x0, still in convolution mode and exactly:
//   y_l += C A^^(l+1) x0 = the kernel of the same SSM with B^ replaced by A^ x0, i.e. with
//          B' = (1/2) A1^-1 A^ x0 = x0/dt + A x0/2 (SSKernelNPLR's "unbilinear" state): two more
//          Cauchy sums per sequence, O(B H N L), all of a channel's as one complex product with
//          its Cauchy matrix 1 / (g_k - Lambda_n) (built once per call, shared by the batch);
//   x_L  = A^^L x0 + sum_j A^^(L-1-j) B^ u_j: the Krylov columns A^^i B^ (i < L) built by
//          doubling with the same squares, O(N^2 L) per channel (the order of the naive kernel:
//          the price of an exact state with a dense A^, as SSKernelNPLR's forward_state / power()),
//          then one [N, L] x [L] product per sequence, O(B H N L).
//
// Init: Lambda, P, B = the positive-imaginary half of HiPPO-LegS's DPLR form (make_dplr_hippo:
// Lambda = -1/2 + i w, P = V^* sqrt(n + 1/2), B = V^* sqrt(2n + 1)), the same in every channel,
// stored in the parameters' dtype (f32 by default; to(f64) afterwards keeps the f32 rounding);
// C ~ complex randn (re, im each N(0, 1/2)); log_dt ~ U[log 1e-3, log 1e-1]; D ~ randn;
// output_linear as PyTorch's Linear. All of them are learned (SSKernelNPLR learns Lambda, P, B
// too). Parameter names: log_dt [H], log_A_real [H, N/2], A_imag [H, N/2], P, B, C [H, N/2, 2],
// D [H], output_linear.weight [2H, H], output_linear.bias [2H] (as tests/golden/torch_ssm_s4.py).
#pragma once
#include <memory>

#include "nn/layers.h"
#include "nn/ssm/mixer.h"

namespace engram::nn::ssm {

class S4 : public SequenceMixer {
 public:
  S4(int64_t d_model, int64_t state_size, Generator* gen = nullptr);

  Tensor forward(const Tensor& x, State& state) override;  // [B, T, H] -> [B, T, H]
  Tensor step(const Tensor& x_t, State& state) override;   // [B, H] -> [B, H]
  State initial_state(int64_t batch) const override;       // {"x": zeros [B, H, N, 2]}
  int64_t width() const override { return d_model; }
  std::string type_name() const override { return "S4"; }
  std::string extra_repr() const override;

  // The SSM convolution kernel K [H, L] (C A^^l B^ from the generating function, without D).
  Tensor kernel(int64_t L) const;
  // The dense discretised A^ [H, N, N, 2] and B^ [H, N, 2] over all N modes.
  Tensor discrete_A() const;
  Tensor discrete_B() const;

  int64_t d_model, state_size, modes;  // modes = N/2 stored, N in the state
  Tensor& log_dt;      // [H]
  Tensor& log_A_real;  // [H, N/2]
  Tensor& A_imag;      // [H, N/2]
  Tensor& P;           // [H, N/2, 2]
  Tensor& B;           // [H, N/2, 2]
  Tensor& C;           // [H, N/2, 2]
  Tensor& D;           // [H]
  std::shared_ptr<Linear> output_linear;  // H -> 2H

 private:
  struct Modes {  // all N modes, [H, N, 2]: the stored half and its conjugates
    Tensor Lambda, P, B, C;
  };
  struct Discrete {
    Tensor two_over_dt;  // [H]
    Tensor A1;           // (2/dt - A)^-1   [H, N, N, 2]
    Tensor A_bar;        // [H, N, N, 2]
    Tensor B_bar;        // [H, N, 2]
  };
  Modes full_modes() const;
  Discrete discretise(const Modes& m) const;
  // What a call of length L needs: the discrete system, A^^L, C~, the nodes and the per-channel
  // Cauchy sums, and the kernel K [H, L] (defined in s4.cpp).
  struct Call;
  Call prepare(int64_t L) const;
  const Tensor& checked_state(const State& state, int64_t batch) const;
};

}  // namespace engram::nn::ssm
