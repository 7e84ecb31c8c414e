// autograd/recurrent_ops.cpp — an LSTM layer's whole time loop as one differentiable op.
//
// Written with per-step autograd ops (nn/recurrent.cpp before this op), a layer of T steps
// recorded ~10 tape nodes per step, each allocating its output and keeping its inputs for the
// backward. Here the loop runs on raw kernels and records one node, as cuDNN's and PyTorch's
// fused LSTMs do:
//   forward, per step t (time-major buffers, so every step's rows are contiguous):
//     G_t  = gx_t + h_{t-1} W_hh^T          (one gemm into G_t, beta = 1)
//     i f g o, c_t, tanh(c_t), h_t = lstm_cell(G_t, c_{t-1})    (core/recurrent_math.h)
//   kept for the backward: the activations G [T, B, 4H], c and tanh(c) [T, B, H], h [T+1, B, H]
//   backward, t = T-1 .. 0, with D_t the gradient reaching h_t and dc the one reaching c_t:
//     D_t += dG_{t+1} W_hh                  (one gemm; D starts as the output's gradient)
//     dG_t, dc = lstm_cell_backward(G_t, c_{t-1}, tanh(c_t), D_t, dc)
//   then all at once: dW_hh = sum_t dG_t^T h_{t-1} (one [4H, T*B] x [T*B, H] gemm),
//   dgx = dG (back in batch-major order), dh0 = dG_0 W_hh, dc0 = dc.
// Only the pointwise cell is a backend kernel; the products go through the backend's matmul, so
// every device that has both runs this op.
#include "autograd/ops.h"
#include "autograd/raw_ops.h"

namespace engram {

namespace {

// Row block t of a time-major buffer [T, ...] as a contiguous [...] view.
Tensor step(const Tensor& buffer, int64_t t) { return raw::squeeze(raw::narrow(buffer, 0, t, 1), 0); }

// [B, T, ...] -> a fresh time-major [T, B, ...] copy (and back): fresh, so the op may write it.
Tensor swap_batch_time(const Tensor& x) { return raw::clone(raw::transpose(x, 0, 1)); }

void check_state(const Tensor& s, const Shape& want, const Tensor& like, const char* what) {
  if (!s.defined()) return;
  ENGRAM_CHECK(s.shape() == want, "lstm_sequence: {} must be {}, got {}", what, shape_str(want),
               shape_str(s.shape()));
  rk::check_same(like, s, "lstm_sequence");
}

}  // namespace

LstmSequence lstm_sequence(const Tensor& gx, const Tensor& w_hh, const Tensor& h0_in,
                           const Tensor& c0_in) {
  ENGRAM_CHECK(gx.dim() == 3 && w_hh.dim() == 2 && w_hh.shape()[0] == 4 * w_hh.shape()[1] &&
                   gx.shape()[2] == w_hh.shape()[0],
               "lstm_sequence: expected gx [B, T, 4H] and w_hh [4H, H], got gx {} w_hh {}",
               shape_str(gx.shape()), shape_str(w_hh.shape()));
  const int64_t B = gx.shape()[0], T = gx.shape()[1], H = w_hh.shape()[1];
  ENGRAM_CHECK(T > 0 && B > 0 && H > 0, "lstm_sequence: empty input gx {} w_hh {}",
               shape_str(gx.shape()), shape_str(w_hh.shape()));
  rk::check_same(gx, w_hh, "lstm_sequence");
  check_state(h0_in, {B, H}, gx, "h0");
  check_state(c0_in, {B, H}, gx, "c0");
  const Device dev = gx.device();
  const DType dt = gx.dtype();
  auto matmul = ENGRAM_KERNEL(dev, matmul);
  auto cell = ENGRAM_KERNEL(dev, lstm_cell);

  Tensor gates = swap_batch_time(gx);                        // [T, B, 4H]: pre-acts, then acts
  Tensor hs = empty({T + 1, B, H}, dt, dev);                 // h_{-1} = h0, then every h_t
  Tensor cs = empty({T, B, H}, dt, dev), tanh_cs = empty({T, B, H}, dt, dev);
  Tensor c0 = c0_in.defined() ? raw::contiguous(c0_in) : zeros({B, H}, dt, dev);
  if (h0_in.defined()) raw::copy_(step(hs, 0), h0_in);
  else ENGRAM_KERNEL(dev, fill)(step(hs, 0), 0.0);
  const Tensor w_hh_t = raw::transpose(w_hh, 0, 1);  // [H, 4H], read as Trans by BLAS
  for (int64_t t = 0; t < T; ++t) {
    Tensor g = step(gates, t);
    matmul(step(hs, t), w_hh_t, g, 1.0, 1.0);
    cell(g, t > 0 ? step(cs, t - 1) : c0, step(cs, t), step(tanh_cs, t), step(hs, t + 1));
  }
  LstmSequence out{swap_batch_time(raw::narrow(hs, 0, 1, T)), raw::clone(step(cs, T - 1))};

  const Tensor w = w_hh;
  record("lstm_sequence", {gx, w_hh, h0_in, c0_in}, {out.output, out.c_last},
         [gates, hs, cs, tanh_cs, c0, w, B, T, H](const std::vector<Tensor>& gout) {
           const Device dev = gates.device();
           auto matmul = ENGRAM_KERNEL(dev, matmul);
           auto cell_backward = ENGRAM_KERNEL(dev, lstm_cell_backward);
           Tensor dh = swap_batch_time(gout[0]);   // [T, B, H], grows by the recurrent term
           Tensor dc = raw::clone(gout[1]);        // [B, H], the gradient reaching c_t
           Tensor dgates = empty(gates.shape(), gates.dtype(), dev);
           for (int64_t t = T - 1; t >= 0; --t) {
             if (t + 1 < T) matmul(step(dgates, t + 1), w, step(dh, t), 1.0, 1.0);
             cell_backward(step(gates, t), t > 0 ? step(cs, t - 1) : c0, step(tanh_cs, t),
                           step(dh, t), dc, step(dgates, t));
           }
           Tensor dh0 = empty({B, H}, gates.dtype(), dev), dw = empty(w.shape(), w.dtype(), dev);
           matmul(step(dgates, 0), w, dh0, 1.0, 0.0);
           // dW_hh = sum_t dG_t^T h_{t-1}: all steps' rows in one product
           Tensor dg_rows = raw::view(dgates, {T * B, 4 * H});
           Tensor h_rows = raw::view(raw::narrow(hs, 0, 0, T), {T * B, H});
           matmul(raw::transpose(dg_rows, 0, 1), h_rows, dw, 1.0, 0.0);
           return std::vector<Tensor>{swap_batch_time(dgates), dw, dh0, dc};
         });
  return out;
}

}  // namespace engram
