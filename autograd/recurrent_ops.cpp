// autograd/recurrent_ops.cpp — recurrences over a whole sequence as one differentiable op each:
// an LSTM layer (lstm_sequence) and CRSD's leaky tanh reservoir (reservoir_scan, below).
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

// ---------------------------------------------------------------- reservoir_scan
// s_t = (1 - leak) s_{t-1} + leak a_t,  a_t = tanh(drive_t + s_{t-1} W^T)   (memory/crsd/reservoir.h)
// Forward per step: one gemm into the step's pre-activation row block, tanh in place, and the
// leaky update, on raw kernels in time-major buffers (no allocation, no tape node per step; the
// same operations in the same order as the per-step ops it replaces, so the same numbers).
// Backward, t = T-1 .. 0, with g_t the gradient reaching s_t (the output's plus what s_{t+1} sent):
//   dpre_t = leak g_t (1 - a_t^2)
//   g_{t-1} += (1 - leak) g_t + dpre_t W          (g_{-1} is ds0)
// then dW = sum_t dpre_t^T s_{t-1} (one product over all steps) and ddrive = dpre.
// Only existing kernels are used (matmul, unary, unary_backward, binary), so every backend runs it.
Tensor reservoir_scan(const Tensor& drive, const Tensor& w, const Tensor& s0_in, double leak) {
  ENGRAM_CHECK(drive.dim() == 3 && w.dim() == 2 && w.shape()[0] == drive.shape()[2] &&
                   w.shape()[1] == drive.shape()[2],
               "reservoir_scan: expected drive [B, T, R] and w [R, R], got drive {} w {}",
               shape_str(drive.shape()), shape_str(w.shape()));
  const int64_t B = drive.shape()[0], T = drive.shape()[1], R = drive.shape()[2];
  ENGRAM_CHECK(T > 0 && B > 0 && R > 0, "reservoir_scan: empty input drive {}", shape_str(drive.shape()));
  ENGRAM_CHECK(leak > 0 && leak <= 1, "reservoir_scan: leak must be in (0, 1], got {}", leak);
  rk::check_same(drive, w, "reservoir_scan");
  if (s0_in.defined()) {
    ENGRAM_CHECK(s0_in.shape() == Shape({B, R}), "reservoir_scan: s0 must be [{}, {}], got {}", B, R,
                 shape_str(s0_in.shape()));
    rk::check_same(drive, s0_in, "reservoir_scan");
  }
  const Device dev = drive.device();
  auto matmul = ENGRAM_KERNEL(dev, matmul);
  auto unary = ENGRAM_KERNEL(dev, unary);
  auto binary = ENGRAM_KERNEL(dev, binary);

  Tensor acts = swap_batch_time(drive);                       // [T, B, R]: pre-activations, then a_t
  Tensor states = empty({T + 1, B, R}, drive.dtype(), dev);   // s_{-1} = s0, then every s_t
  Tensor scratch = empty({B, R}, drive.dtype(), dev);
  if (s0_in.defined()) raw::copy_(step(states, 0), s0_in);
  else ENGRAM_KERNEL(dev, fill)(step(states, 0), 0.0);
  const Tensor w_t = raw::transpose(w, 0, 1);
  for (int64_t t = 0; t < T; ++t) {
    Tensor a = step(acts, t), s_prev = step(states, t), s = step(states, t + 1);
    matmul(s_prev, w_t, a, 1.0, 1.0);
    unary(UnaryOp::tanh, a, 0, 0, a);
    unary(UnaryOp::mul_scalar, s_prev, 1.0 - leak, 0, s);
    unary(UnaryOp::mul_scalar, a, leak, 0, scratch);
    binary(BinaryOp::add, s, scratch, s);
  }
  Tensor out = swap_batch_time(raw::narrow(states, 0, 1, T));

  const bool want_dw = w.requires_grad();
  record1("reservoir_scan", {drive, w, s0_in}, out,
          [acts, states, w, leak, want_dw, B, T, R](const Tensor& dy) {
            const Device dev = acts.device();
            auto matmul = ENGRAM_KERNEL(dev, matmul);
            auto unary = ENGRAM_KERNEL(dev, unary);
            auto unary_backward = ENGRAM_KERNEL(dev, unary_backward);
            auto binary = ENGRAM_KERNEL(dev, binary);
            Tensor g = swap_batch_time(dy);  // [T, B, R]: grows by what each step sends back
            Tensor dpre = empty(acts.shape(), acts.dtype(), dev);
            Tensor ds0 = zeros({B, R}, acts.dtype(), dev), scratch = empty({B, R}, acts.dtype(), dev);
            for (int64_t t = T - 1; t >= 0; --t) {
              Tensor gt = step(g, t), a = step(acts, t), dp = step(dpre, t);
              unary(UnaryOp::mul_scalar, gt, leak, 0, scratch);
              unary_backward(UnaryOp::tanh, a, a, scratch, 0, 0, dp);  // leak g (1 - a^2)
              Tensor into = t > 0 ? step(g, t - 1) : ds0;
              unary(UnaryOp::mul_scalar, gt, 1.0 - leak, 0, scratch);
              binary(BinaryOp::add, into, scratch, into);
              matmul(dp, w, into, 1.0, 1.0);
            }
            Tensor dw;
            if (want_dw) {  // dW = sum_t dpre_t^T s_{t-1}
              dw = empty(w.shape(), w.dtype(), dev);
              matmul(raw::transpose(raw::view(dpre, {T * B, R}), 0, 1),
                     raw::view(raw::narrow(states, 0, 0, T), {T * B, R}), dw, 1.0, 0.0);
            }
            return std::vector<Tensor>{swap_batch_time(dpre), dw, ds0};
          });
  return out;
}

}  // namespace engram
