// nn/ssm/s4d.h — S4D, the diagonal structured state space (Gu, Gupta, Goel & Ré, "On the
// Parameterization and Initialization of Diagonal State Space Models", NeurIPS 2022,
// arXiv 2206.11893), exactly the standalone state-spaces/s4 models/s4/s4d.py, plus the pieces the
// S4 family shares (complex helpers, the FFT convolution, the output transform).
//
// Shapes: x [B, T, H] (H = d_model channels, T = L tokens), N = state_size, N/2 complex modes per
// channel (the other N/2 are their conjugates, hence the 2 Re below). Per channel h and mode n:
//   dt_h = exp(log_dt_h),  A_n = -exp(log_A_real_n) + i A_imag_n,  C_n complex,  B = 1 (folded in)
// ZOH discretisation (s4d.py): A^_n = exp(dt A_n),  B^_n = (exp(dt A_n) - 1) / A_n
//   recurrence:  x_t = A^ x_{t-1} + B^ u_t,    y_t = 2 Re sum_n C_n x_t,n  + D u_t
//   kernel:      K_l = 2 Re sum_n C_n B^_n A^_n^l,  l = 0..L-1   (a Vandermonde product: the
//                powers A^_n^l = exp(l dt A_n) are the fused vandermonde op, O(H N L), and the
//                sum over n one matmul per channel)
//   convolution: y = irfft(rfft(u, 2L) * rfft(K, 2L), 2L)[:L] + D u   (padding to 2L makes the
//                circular convolution the causal one; FFTW underneath)
// Output transform (s4d.py's position-wise mixing): y -> GELU -> Linear(H, 2H) (s4d.py's
// Conv1d(H, 2H, 1), same numbers) -> GLU over channels: z[:H] * sigmoid(z[H:]).
//
// State carried across calls (a language model cuts its stream into segments): "x", the complex
// state after the last token, [B, H, N/2, 2]. A call that starts from x0 adds, still in
// convolution mode and exactly,
//   y_l += 2 Re sum_n C_n A^_n^(l+1) x0_n                    (Vandermonde powers 1..L)
//   x_L  = A^^L x0 + B^ sum_j A^^(L-1-j) u_j                 (Vandermonde powers L-1..0, a matmul)
// at O(B H N L) each. step() runs the recurrence itself; forward == T steps to rounding.
//
// Init (s4d.py and src/models/sequence/kernels/dplr.py):
//   log_dt ~ U[log 1e-3, log 1e-1],  C ~ complex randn (re, im each N(0, 1/2), as torch.randn
//   cfloat),  log_A_real = log 0.5,  D ~ randn,
//   A_imag = pi n (S4D-Lin)  or  (N/pi) (N/(2n+1) - 1) (S4D-Inv),  n = 0..N/2-1;
//   output_linear as PyTorch's Linear / Conv1d default, U(-1/sqrt(H), 1/sqrt(H)).
// Parameter names: log_dt [H], C [H, N/2, 2], log_A_real [H, N/2], A_imag [H, N/2], D [H],
// output_linear.weight [2H, H], output_linear.bias [2H] (tests/golden/torch_ssm_s4.py uses them).
// Dropout (s4d.py's DropoutNd after the GELU) is left to the block around the layer.
#pragma once
#include <memory>

#include "nn/layers.h"
#include "nn/ssm/mixer.h"

namespace engram::nn::ssm {

// Complex numbers as real tensors with a trailing [re, im] dim (torch.view_as_real layout); every
// helper broadcasts like the real ops it is made of and records ordinary tape nodes.
namespace cplx {
Tensor make(const Tensor& re, const Tensor& im);  // [..] x [..] -> [.., 2]
Tensor real(const Tensor& z);                     // [.., 2] -> [..]
Tensor imag(const Tensor& z);
Tensor conj(const Tensor& z);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor exp(const Tensor& z);                      // e^re (cos im, sin im)
// Matrix product of complex matrices a [.., n, k, 2] and b [.., k, m, 2] -> [.., n, m, 2] (the
// fused complex_matmul op: one complex gemm per batch element).
Tensor matmul(const Tensor& a, const Tensor& b);
// Re sum_n a[.., n] V[.., n, l]: a [.., N, 2], V [.., N, L, 2] -> [.., L] (one real product that
// reads V in place; a batched a [B, H, N, 2] against V [H, N, L, 2] gives [B, H, L]).
Tensor real_contract(const Tensor& a, const Tensor& V);
// The complex vectors sum_l V[h, n, l] u[b, h, l]: V [H, N, L, 2], real u [B, H, L] -> [B, H, N, 2]
// (one complex [N, L] x [L, B] product per channel, u widened to complex).
Tensor apply_to_real(const Tensor& V, const Tensor& u);
// M v per channel for a batch: M [H, N, K, 2], v [B, H, K, 2] -> [B, H, N, 2], without
// broadcasting M over the batch.
Tensor batched_matvec(const Tensor& M, const Tensor& v);
// The constant 1 + 0i in `like`'s dtype and device, shape [2].
Tensor one(const Tensor& like);
}  // namespace cplx

// Causal convolution along the last dim through FFTs of length 2L:
//   y[.., l] = sum_{j <= l} k[.., j] u[.., l - j],  u [.., H, L], k [H, L] -> [.., H, L].
Tensor causal_fft_conv(const Tensor& u, const Tensor& k);

// The S4 family's complex state "x" [B, H, modes, 2]: zeros in like's dtype and device, and the
// state checked against that shape and dtype (errors name the layer).
State modal_initial_state(int64_t batch, int64_t H, int64_t modes, const Tensor& like,
                          const char* layer);
const Tensor& checked_modal_state(const State& state, int64_t batch, int64_t H, int64_t modes,
                                  const Tensor& like, const char* layer);
// True for a carried state that is all zeros and needs no gradient (initial_state()'s): the terms
// it would add to a convolution-mode call (its outputs and A^^L x0) are then exactly zero, values
// and gradients, so S4D and S4 skip them, as s4d.py's forward does for state=None.
bool is_zero_state(const Tensor& x0);
// forward's input [B, T, H] and step's token [B, H] with B, T > 0 (errors name the layer).
void check_sequence_input(const Tensor& x, int64_t H, const char* layer);
void check_token_input(const Tensor& x_t, int64_t H, const char* layer);

// The S4 family's output transform: GELU -> Linear(H, 2H) -> GLU, [.., H] -> [.., H].
Tensor gelu_linear_glu(const Tensor& y, Linear& output_linear);

enum class S4DInit { lin, inv };  // S4D-Lin (A_imag = pi n) or S4D-Inv

class S4D : public SequenceMixer {
 public:
  S4D(int64_t d_model, int64_t state_size, S4DInit init = S4DInit::lin, Generator* gen = nullptr);

  Tensor forward(const Tensor& x, State& state) override;  // [B, T, H] -> [B, T, H]
  Tensor step(const Tensor& x_t, State& state) override;   // [B, H] -> [B, H]
  State initial_state(int64_t batch) const override;       // {"x": zeros [B, H, N/2, 2]}
  int64_t width() const override { return d_model; }
  std::string type_name() const override { return "S4D"; }
  std::string extra_repr() const override;

  // The SSM convolution kernel K [H, L] (2 Re sum_n C_n B^_n A^_n^l, without D).
  Tensor kernel(int64_t L) const;

  int64_t d_model, state_size, modes;  // modes = N/2
  S4DInit init;
  Tensor& log_dt;      // [H]
  Tensor& C;           // [H, N/2, 2]
  Tensor& log_A_real;  // [H, N/2]
  Tensor& A_imag;      // [H, N/2]
  Tensor& D;           // [H]
  std::shared_ptr<Linear> output_linear;  // H -> 2H

 private:
  struct Discrete {
    Tensor dtA;    // dt A      [H, N/2, 2]
    Tensor A_bar;  // exp(dt A) [H, N/2, 2]
    Tensor B_bar;  // (exp(dt A) - 1) / A
  };
  Discrete discretise() const;
  const Tensor& checked_state(const State& state, int64_t batch) const;
};

}  // namespace engram::nn::ssm
