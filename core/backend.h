// core/backend.h — the one kernel dispatch point.
//
// A Backend is a table of raw kernels (plain function pointers on tensors, no gradients) for one
// device. autograd/ never calls a CPU or CUDA function directly: it asks `backend(dev)` for the
// kernel it needs (through ENGRAM_KERNEL, which gives a clear error when a device lacks one).
// core/cpu/cpu_backend.cpp fills the CPU table; cuda/ fills the CUDA table at start-up, so a new
// device plugs in here without touching autograd/. Fused ops added by memory modules add their
// kernels to a section of this table the same way.
//
// Conventions: outputs are passed preallocated (usually contiguous) so hot paths can reuse
// buffers; inputs may be arbitrary strided views unless a comment says otherwise.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace engram {

using Tref = const Tensor&;

// y = f(x; p0, p1). Derivatives live beside the forwards in core/cpu/cpu_elementwise.cpp.
enum class UnaryOp : uint8_t {
  neg, exp, log, sqrt, rsqrt, abs, sin, cos, tanh, sigmoid, relu, leaky_relu /*p0=slope*/,
  gelu, gelu_tanh, silu, softplus /*p0=beta, p1=threshold*/, square, reciprocal, sign,
  add_scalar /*x+p0*/, mul_scalar /*x*p0*/, pow_scalar /*x^p0*/, rpow_scalar /*p0^x*/,
  clamp /*min(max(x,p0),p1)*/, step_mask /*1 where p0 < x < p1 (strictly), else 0*/,
};
// out = a (op) b on equal shapes (callers expand for broadcasting). Comparisons give 0/1.
enum class BinaryOp : uint8_t { add, sub, mul, div, pow, maximum, minimum, gt, lt, ge, le, eq };
enum class ReduceOp : uint8_t { sum, max, min };

// Hyper-parameters of one fused optimizer step (nn/optim.cpp computes the scalars in double, as
// PyTorch's Python code does, and passes them here).
struct AdamStepArgs {
  double beta1, beta2, eps, weight_decay, decay;      // decay = 1 - lr * weight_decay (AdamW)
  double neg_step_size, bias_correction2_sqrt;        // -lr / (1 - beta1^t), sqrt(1 - beta2^t)
  bool decoupled;                                     // AdamW: decay p; Adam: L2 into the gradient
};
struct SgdStepArgs {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, first;  // first: the step that initialises the momentum buffer (buf = d)
};

// Options of the episodic buffer's fused scan (memory/crsd/episodic.h's EpisodicOptions).
struct EpisodicScanArgs {
  double temperature, decay, eps;
  int64_t top_k, recency_window;  // 0 = every filled slot / no window
  bool detach_memory;
};
// An episodic buffer's slots: keys [B, S, dk], values [B, S, dv], importance, age, filled [B, S].
struct EpisodicSlots {
  Tensor keys, values, importance, age, filled;
};

struct Backend {
  const char* name = "?";
  // ---- memory and copies ----
  void* (*alloc)(size_t nbytes) = nullptr;
  void (*free)(void* p) = nullptr;
  void (*copy)(Tref dst, Tref src) = nullptr;  // same shape; any strides; converts dtype
  void (*fill)(Tref dst, double value) = nullptr;
  void (*upload)(Tref dst, Tref host_src) = nullptr;    // host (contiguous) -> this device
  void (*download)(Tref host_dst, Tref src) = nullptr;  // this device -> host (contiguous)

  // ---- elementwise ----
  void (*unary)(UnaryOp op, Tref x, double p0, double p1, Tref out) = nullptr;
  // dx = dy * f'(x) (y = f(x) is given too, for ops whose derivative is cheaper from y)
  void (*unary_backward)(UnaryOp op, Tref x, Tref y, Tref dy, double p0, double p1,
                         Tref dx) = nullptr;
  void (*binary)(BinaryOp op, Tref a, Tref b, Tref out) = nullptr;
  void (*where)(Tref cond, Tref a, Tref b, Tref out) = nullptr;  // cond != 0 ? a : b

  // ---- reductions (out has the input's rank with reduced dims of size 1) ----
  void (*reduce)(ReduceOp op, Tref x, Tref out) = nullptr;
  // values/indices along one dim (out shapes have that dim of size 1); first index on ties
  void (*arg_reduce)(ReduceOp op, Tref x, int64_t dim, Tref values, Tref indices) = nullptr;
  void (*cumsum)(Tref x, int64_t dim, bool reverse, Tref out) = nullptr;
  void (*softmax)(Tref x, int64_t dim, bool log, Tref out) = nullptr;
  void (*softmax_backward)(Tref y, Tref dy, int64_t dim, bool log, Tref dx) = nullptr;
  // Attention's masked softmax along the last dim of x [..., Tq, Tk] (any strides; out
  // contiguous): out = softmax(scale * x + mask), the mask computed from indices, never stored
  // (nn/attention.h's rule, shift = Tk - Tq): with causal, query i sees key j iff j < prefix or
  // (j <= i + shift and (window == 0 or j > i + shift - window)); without causal every key is
  // seen (window, prefix ignored). Hidden keys get exactly 0; a row with none visible gives NaN
  // (PyTorch). Its backward is softmax_backward scaled: dx = scale * y * (dy - sum(y * dy)).
  void (*masked_softmax)(Tref x, double scale, bool causal, int64_t window, int64_t prefix,
                         Tref out) = nullptr;
  void (*masked_softmax_backward)(Tref y, Tref dy, double scale, bool causal, int64_t window,
                                  int64_t prefix, Tref dx) = nullptr;
  void (*topk)(Tref x, int64_t k, int64_t dim, bool largest, Tref values, Tref indices) = nullptr;

  // ---- linear algebra ----
  // out[b] = alpha * op(a[b]) @ op(b[b]) + beta * out[b]; a [.., M, K], b [.., K, N] with the
  // same batch shape (stride 0 allowed for broadcast batches); out contiguous [.., M, N].
  void (*matmul)(Tref a, Tref b, Tref out, double alpha, double beta) = nullptr;
  // Complex product, complex as trailing [re, im] (interleaved, BLAS's complex layout):
  //   out[b] = op(a[b]) op(b[b]),  op = conjugate transpose of the matrix dims where adjoint_a /
  //   adjoint_b, else identity. a, b, out [.., rows, cols, 2] of equal rank; the last three dims
  //   of a and b dense, their batch dims any strides (stride 0 = broadcast); out contiguous.
  void (*complex_matmul)(Tref a, Tref b, bool adjoint_a, bool adjoint_b, Tref out) = nullptr;

  // ---- indexing (idx is i64) ----
  void (*index_select)(Tref x, int64_t dim, Tref idx, Tref out) = nullptr;
  void (*index_add)(Tref out, int64_t dim, Tref idx, Tref src) = nullptr;  // out[.., idx[i], ..] += src
  void (*gather)(Tref x, int64_t dim, Tref idx, Tref out) = nullptr;
  void (*scatter_add)(Tref out, int64_t dim, Tref idx, Tref src) = nullptr;

  // ---- neural-network kernels ----
  // layer_norm over the last dim: y = (x - mean) * rstd * w + b; saves mean, rstd [rows]
  // (w, b may be undefined = none; in the backward, dx/dw/db may be undefined = not wanted)
  void (*layer_norm)(Tref x, Tref w, Tref b, double eps, Tref y, Tref mean, Tref rstd) = nullptr;
  void (*layer_norm_backward)(Tref x, Tref w, Tref mean, Tref rstd, Tref dy, Tref dx, Tref dw,
                              Tref db) = nullptr;
  // im2col for conv2d: x [B, C, H, W] (any strides) -> cols [B, C*kh*kw, Ho*Wo] (rows contiguous,
  // any batch stride); col2im writes dx (contiguous, overwritten) = the sum of cols put back
  void (*im2col)(Tref x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                 int64_t dh, int64_t dw, Tref cols) = nullptr;
  void (*col2im)(Tref cols, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                 int64_t dh, int64_t dw, Tref dx) = nullptr;
  // pools (NCHW, PyTorch defaults): argmax (i64) = flat index h*W + w in the plane; backwards
  // write dx (contiguous, overwritten)
  void (*max_pool2d)(Tref x, int64_t k, int64_t s, int64_t p, Tref y, Tref argmax) = nullptr;
  void (*max_pool2d_backward)(Tref dy, Tref argmax, Tref dx) = nullptr;
  void (*avg_pool2d)(Tref x, int64_t k, int64_t s, int64_t p, Tref y) = nullptr;
  void (*avg_pool2d_backward)(Tref dy, int64_t k, int64_t s, int64_t p, Tref dx) = nullptr;
  // fused softmax cross-entropy over rows of logits [N, C]: per-row loss and the row's
  // (softmax - smoothed one-hot) gradient; rows whose target == ignore_index give 0
  void (*cross_entropy)(Tref logits, Tref target, int64_t ignore_index, double smoothing,
                        Tref loss, Tref dlogits) = nullptr;  // dlogits may be undefined: skipped
  // rms_norm over the last dim: y = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps) [rows];
  // w may be undefined (none); in the backward, dx/dw may be undefined (not wanted)
  void (*rms_norm)(Tref x, Tref w, double eps, Tref y, Tref rstd) = nullptr;
  void (*rms_norm_backward)(Tref x, Tref w, Tref rstd, Tref dy, Tref dx, Tref dw) = nullptr;
  // nll over rows of log_probs [N, C]: loss[i] = -log_probs[i, target[i]] (0 where ignored);
  // backward: dlog_probs[i, target[i]] = -dloss[i], every other element 0
  void (*nll_loss)(Tref log_probs, Tref target, int64_t ignore_index, Tref loss) = nullptr;
  void (*nll_loss_backward)(Tref target, int64_t ignore_index, Tref dloss, Tref dlog_probs) = nullptr;

  // ---- recurrent cells (nn/recurrent.h; autograd/recurrent_ops.cpp runs the time loop) ----
  // The pointwise part of one LSTM step on contiguous [B, 4H] gates in PyTorch's order i f g o.
  // gates holds the pre-activations on entry and i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of
  // them on return (kept for the backward); c = f c_prev + i g, tanh_c = tanh(c), h = o tanh_c
  // ([B, H] each, contiguous; h may be a row block of a bigger buffer).
  void (*lstm_cell)(Tref gates, Tref c_prev, Tref c, Tref tanh_c, Tref h) = nullptr;
  // Its backward from those activations: dh [B, H] reaches h; dc [B, H] holds the gradient
  // reaching c from later steps on entry and the gradient of c_prev on return; writes the
  // pre-activation gradients dgates [B, 4H] (core/recurrent_math.h has the formulas).
  void (*lstm_cell_backward)(Tref gates, Tref c_prev, Tref tanh_c, Tref dh, Tref dc,
                             Tref dgates) = nullptr;

  // ---- FFT along the last dim (unnormalised, complex as trailing [re, im] pairs) ----
  // irfft is the plain c2r sum over the Hermitian-extended spectrum (no 1/n: autograd/fft.cpp
  // scales); it ignores the imag parts of DC and (even n) Nyquist and leaves x unchanged.
  void (*rfft)(Tref x /*[.., n]*/, Tref out /*[.., n/2+1, 2]*/) = nullptr;
  void (*irfft)(Tref x /*[.., n/2+1, 2]*/, int64_t n, Tref out /*[.., n]*/) = nullptr;
  // Elementwise complex product, complex as trailing [re, im]: out = (conj_a ? conj(a) : a) * b;
  // a, b any strides (stride-0 broadcasts) of out's shape [.., 2], out contiguous.
  void (*complex_mul)(Tref a, Tref b, bool conj_a, Tref out) = nullptr;

  // ---- scans along dim 1 of [B, T, ...]: h_t = a_t * h_{t-1} + b_t, h_{-1} = h0 ----
  void (*linear_scan)(Tref a, Tref b, Tref h0, Tref h) = nullptr;
  // reverse: g_t = dh_t + a_{t+1} * g_{t+1}  (the adjoint of the scan)
  void (*linear_scan_reverse)(Tref a, Tref dh, Tref g) = nullptr;

  // ---- optimizer steps, in place on contiguous tensors of one floating dtype (nn/optim.cpp) ----
  // cpu_optim.cpp: each statement beside the PyTorch line it follows. vmax (amsgrad) and buf
  // (SGD momentum) may be undefined.
  void (*adam_step)(Tref p, Tref g, Tref m, Tref v, Tref vmax, const AdamStepArgs& a) = nullptr;
  void (*sgd_step)(Tref p, Tref g, Tref buf, const SgdStepArgs& a) = nullptr;

  // ---- memory-module kernels (fused ops added by memory/) ----
  // Hebbian scan over [B, T]: H_t = gamma H_{t-1} + eta k_t v_t^T, r_t = H_t^T q_t.
  // q, k [B, T, dk], v [B, T, dv], h0 [B, dk, dv]; writes r [B, T, dv], h_last [B, dk, dv] and
  // checkpoints [B, ceil(T/chunk), dk, dv] = the state entering each chunk (for the backward).
  void (*hebbian_scan)(Tref q, Tref k, Tref v, double gamma, double eta, Tref h0, int64_t chunk,
                       Tref r, Tref h_last, Tref checkpoints) = nullptr;
  // Reverse pass: recomputes each chunk's states from its checkpoint, then walks back in time.
  // grads[0] += dgamma, grads[1] += deta (a 2-element f64 CPU tensor). detach_memory cuts the
  // gradient flowing from H_t into H_{t-1} (the memory is treated as a constant input).
  void (*hebbian_scan_backward)(Tref q, Tref k, Tref v, double gamma, double eta, Tref checkpoints,
                                int64_t chunk, Tref dr, Tref dh_last, bool detach_memory, Tref dq,
                                Tref dk, Tref dv, Tref dh0, Tref grads) = nullptr;

  // Episodic buffer over [B, T] (cpu_episodic.cpp has the read and write rules): q, k [B, T, dk],
  // v [B, T, dv], the slots entering (`start`); writes recall [B, T, dv], the slots after the
  // last step (`end`), and for the backward weights [B, T, S] (each read's softmax weights) and
  // writes [B, T, 2] i64 (the slot written at each step, and the step that wrote that slot
  // before, or -1 when it still held its start content).
  void (*episodic_scan)(Tref q, Tref k, Tref v, const EpisodicSlots& start,
                        const EpisodicScanArgs& a, Tref recall, const EpisodicSlots& end,
                        Tref weights, Tref writes) = nullptr;
  // Reverse pass: undoes the writes from the end keys/values back to the start, so no state is
  // stored. dq, dk, dv, dkeys0, dvalues0 are written (not accumulated).
  void (*episodic_scan_backward)(Tref q, Tref k, Tref v, Tref keys0, Tref values0, Tref keys_end,
                                 Tref values_end, Tref weights, Tref writes,
                                 const EpisodicScanArgs& a, Tref drecall, Tref dkeys_end,
                                 Tref dvalues_end, Tref dq, Tref dk, Tref dv, Tref dkeys0,
                                 Tref dvalues0) = nullptr;

  // ---- episodic CMR (memory/cmr/episodic_cmr.h): context drift over time (cpu_cmr.cpp) ----
  // Context drift along dim 1 of [B, T, D] (memory/cmr/context.h's rule, one row per head):
  //   d_t = c_{t-1} . cin_t,  rho_t = sqrt(1 + beta_t^2 (d_t^2 - 1)) - beta_t d_t,
  //   c_t = rho_t c_{t-1} + beta_t cin_t,  c_{-1} = c0 [B, D]; beta [B, T]; writes c [B, T, D].
  void (*cmr_drift_scan)(Tref cin, Tref beta, Tref c0, Tref c) = nullptr;
  // Reverse pass from dc [B, T, D] (the gradient reaching every c_t): dcin, dbeta, dc0.
  void (*cmr_drift_scan_backward)(Tref cin, Tref beta, Tref c0, Tref c, Tref dc, Tref dcin,
                                  Tref dbeta, Tref dc0) = nullptr;

  // ---- Titans neural memory (memory/titans/): chunked test-time learning (cpu_titans.cpp) ----
  // Linear matrix memory M [dv, dk] trained at test time, per chunk of `chunk` tokens, with M0_c
  // the memory entering chunk c:  y_t = M_{t-1} q_t ; e_t = 2 (M0_c k_t - v_t) ;
  // S_t = eta_t S_{t-1} - theta_t e_t k_t^T ; M_t = (1 - alpha_t) M_{t-1} + S_t.
  // q, k [B, T, dk], v [B, T, dv], theta/eta/alpha [B, T], m0 [B, dv, dk], s0 [B, dv, dk] or
  // undefined (zeros); all contiguous. Writes y [B, T, dv], m_last, s_last [B, dv, dk] and the
  // checkpoints ckpt_m, ckpt_s [B, ceil(T/chunk), dv, dk] = (M, S) entering each chunk.
  void (*titans_linear_memory)(Tref q, Tref k, Tref v, Tref theta, Tref eta, Tref alpha, Tref m0,
                               Tref s0, int64_t chunk, Tref y, Tref m_last, Tref s_last,
                               Tref ckpt_m, Tref ckpt_s) = nullptr;
  // Reverse pass: recomputes each chunk from its checkpoints and walks it back in time; dm_last
  // and ds_last (the gradients of m_last/s_last) may be undefined (zero). Writes (overwrites)
  // every gradient: dq, dk [B, T, dk], dv [B, T, dv], dtheta/deta/dalpha [B, T], dm0, ds0.
  void (*titans_linear_memory_backward)(Tref q, Tref k, Tref v, Tref theta, Tref eta, Tref alpha,
                                        Tref ckpt_m, Tref ckpt_s, int64_t chunk, Tref dy,
                                        Tref dm_last, Tref ds_last, Tref dq, Tref dk, Tref dv,
                                        Tref dtheta, Tref deta, Tref dalpha, Tref dm0,
                                        Tref ds0) = nullptr;
  // Deep (depth-2) memory: W1 [h, dk], W2 [dv, h], M(x) = W2 silu(W1 x), per chunk with W1_0c,
  // W2_0c the weights entering chunk c:  y_t = W2_{t-1} silu(W1_{t-1} q_t) ; a_t = W1_0c k_t ;
  // z_t = silu(a_t) ; e_t = 2 (W2_0c z_t - v_t) ; G2_t = e_t z_t^T ;
  // G1_t = ((W2_0c^T e_t) * silu'(a_t)) k_t^T ; S_t = eta_t S_{t-1} - theta_t G_t ;
  // W_t = (1 - alpha_t) W_{t-1} + S_t (for both layers). w1 [B, h, dk], w2 [B, dv, h]; s1, s2
  // the same shapes or undefined (zeros); all contiguous. Writes y [B, T, dv], the last
  // w1/w2/s1/s2 and the checkpoints [B, ceil(T/chunk), ...] of the four entering each chunk.
  void (*titans_mlp_memory)(Tref q, Tref k, Tref v, Tref theta, Tref eta, Tref alpha, Tref w1,
                            Tref w2, Tref s1, Tref s2, int64_t chunk, Tref y, Tref w1_last,
                            Tref w2_last, Tref s1_last, Tref s2_last, Tref ckpt_w1, Tref ckpt_w2,
                            Tref ckpt_s1, Tref ckpt_s2) = nullptr;
  // Reverse pass from the checkpoints; the d*_last may be undefined (zero). Writes (overwrites)
  // dq, dk, dv, dtheta, deta, dalpha, dw1, dw2, ds1, ds2.
  void (*titans_mlp_memory_backward)(Tref q, Tref k, Tref v, Tref theta, Tref eta, Tref alpha,
                                     Tref ckpt_w1, Tref ckpt_w2, Tref ckpt_s1, Tref ckpt_s2,
                                     int64_t chunk, Tref dy, Tref dw1_last, Tref dw2_last,
                                     Tref ds1_last, Tref ds2_last, Tref dq, Tref dk, Tref dv,
                                     Tref dtheta, Tref deta, Tref dalpha, Tref dw1, Tref dw2,
                                     Tref ds1, Tref ds2) = nullptr;

  // ---- state-space primitives (nn/ssm/): cpu_ssm_mamba.cpp, cpu_ssm_scan.cpp ----
  // Causal depthwise conv over time (Mamba's conv1d): xp = [x0; x] [B, K-1+T, D] holds the K-1
  // inputs before t = 0 then the segment; w [D, K]; bias [D] or undefined. All contiguous.
  //   y[b, t, d] = bias[d] + sum_k w[d, k] xp[b, t + k, d]          -> y [B, T, D]
  void (*causal_conv1d)(Tref xp, Tref w, Tref bias, Tref y) = nullptr;
  // Overwrites dxp [B, K-1+T, D], dw [D, K] and (when defined) dbias [D].
  void (*causal_conv1d_backward)(Tref xp, Tref w, Tref dy, Tref dxp, Tref dw, Tref dbias) = nullptr;
  // Mamba's selective scan (selective_scan_ref semantics) after the softplus, in chunks:
  //   h_t = exp(dt_t A) * h_{t-1} + dt_t B_t u_t,  y_t = C_t . h_t + Dskip u_t,
  //   out_t = y_t * silu(z_t)  (z undefined: out = y; Dskip undefined: no skip)
  // u, dt, z [B, T, D]; A [D, N]; Bm, Cm [B, T, N]; Dskip [D]; h0 [B, D, N] or undefined
  // (zeros); all contiguous. Writes out [B, T, D], h_last [B, D, N] and the checkpoints
  // [B, ceil(T/chunk), D, N] = the state entering each chunk.
  void (*selective_scan)(Tref u, Tref dt, Tref A, Tref Bm, Tref Cm, Tref Dskip, Tref z, Tref h0,
                         int64_t chunk, Tref out, Tref h_last, Tref checkpoints) = nullptr;
  // Reverse pass, recomputing each chunk's states from its checkpoint; dh_last may be undefined
  // (zero). Overwrites du, ddt, dA, dBm, dCm, dDskip, dz, dh0 (the optional ones when defined).
  void (*selective_scan_backward)(Tref u, Tref dt, Tref A, Tref Bm, Tref Cm, Tref Dskip, Tref z,
                                  Tref checkpoints, int64_t chunk, Tref dout, Tref dh_last,
                                  Tref du, Tref ddt, Tref dA, Tref dBm, Tref dCm, Tref dDskip,
                                  Tref dz, Tref dh0) = nullptr;
  // 2x2-block linear recurrence along dim 1 (LinOSS's oscillators, S5's complex modes):
  //   h_t = M_t h_{t-1} + f_t,  M [B, T, F, 2, 2] (stride-0 broadcasts allowed), f, h [B, T, F, 2],
  //   h0 [B, F, 2] or undefined (zeros).
  void (*linear_scan_2x2)(Tref M, Tref f, Tref h0, Tref h) = nullptr;
  // Adjoint: g_t = dh_t + M_{t+1}^T g_{t+1}, g_T = 0 -> g [B, T, F, 2].
  void (*linear_scan_2x2_reverse)(Tref M, Tref dh, Tref g) = nullptr;
  // S4's Cauchy kernel, complex as trailing [re, im]: v, w [R, N, 2], z [R, L, 2] contiguous,
  //   k[r, l] = sum_n v[r, n] / (z[r, l] - w[r, n])                 -> k [R, L, 2]
  void (*cauchy_kernel)(Tref v, Tref z, Tref w, Tref k) = nullptr;
  // From dk [R, L, 2] (real-pair gradients): overwrites dv, dw [R, N, 2] and dz [R, L, 2].
  void (*cauchy_kernel_backward)(Tref v, Tref z, Tref w, Tref dk, Tref dv, Tref dz,
                                 Tref dw) = nullptr;
  // S4D's Vandermonde powers, complex as trailing [re, im]: a [R, 2] contiguous,
  //   V[r, j] = exp(a[r] (start + j step)),  j = 0 .. P-1             -> V [R, P, 2]
  void (*vandermonde)(Tref a, double start, double step, Tref V) = nullptr;
  // From V and its real-pair gradient dV [R, P, 2]: overwrites da [R, 2] with
  //   da[r] = sum_j (start + j step) conj(V[r, j]) dV[r, j].
  void (*vandermonde_backward)(Tref V, Tref dV, double start, double step, Tref da) = nullptr;
};

const Backend& backend(Device d);
void register_backend(Device d, const Backend& b);  // cuda/ calls this at start-up
bool device_available(Device d);

// Threads: ENGRAM_NUM_THREADS, else the core count; applied to OpenMP and OpenBLAS alike.
int num_threads();
void set_num_threads(int n);

}  // namespace engram

// Look a kernel up on a device, or fail naming the kernel and the device.
#define ENGRAM_KERNEL(DEV, NAME)                                                                 \
  ([&]() {                                                                                        \
    auto fn_ = ::engram::backend(DEV).NAME;                                                       \
    ENGRAM_CHECK(fn_ != nullptr, "kernel '{}' is not implemented on device {}", #NAME,            \
                 ::engram::device_name(DEV));                                                     \
    return fn_;                                                                                   \
  }())
