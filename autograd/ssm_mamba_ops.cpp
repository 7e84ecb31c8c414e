// autograd/ssm_mamba_ops.cpp — Mamba's fused ops (Gu & Dao 2023, arXiv 2312.00752;
// state-spaces/mamba: causal_conv1d_fn and selective_scan_fn / selective_scan_ref).
//
// causal_conv1d: the depthwise conv over time that precedes Mamba's scan,
//   y[b, t, d] = bias[d] + sum_{k<K} w[d, k] xp[b, t + k, d],   xp = [x0; x] along time,
// where x0 [B, K-1, D] holds the K-1 inputs before the segment (the carried conv state; zeros
// when undefined), so a stream cut into segments convolves exactly like the uncut one.
//
// selective_scan: with dt = softplus(delta + delta_bias) (PyTorch's threshold 20; no softplus
// when delta_softplus is false),
//   h_t = exp(dt_t A) * h_{t-1} + dt_t Bm_t u_t,  y_t = Cm_t . h_t + Dskip u_t,
//   out_t = y_t * silu(z_t),  h_{-1} = h0,
// one tape node for the whole sequence: the per-step loop of plain ops (the test's
// selective_scan_ref) would record ~8 nodes and keep a [B, D, N] state per step. The kernel
// (core/cpu/cpu_ssm_mamba.cpp, which has the backward's equations) keeps a state per chunk of
// `chunk` steps and recomputes the rest in the backward.
#include "autograd/ops.h"
#include "autograd/raw_ops.h"

namespace engram {

Tensor causal_conv1d(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in,
                     const Tensor& x0_in) {
  const char* op = "causal_conv1d";
  ENGRAM_CHECK(x_in.defined() && w_in.defined(), "causal_conv1d: x and weight must be defined");
  ENGRAM_CHECK(x_in.dim() == 3 && x_in.shape()[1] > 0 && w_in.dim() == 2 &&
                   w_in.shape()[0] == x_in.shape()[2] && w_in.shape()[1] > 0,
               "causal_conv1d: expected x [B, T, D] (T > 0) and weight [D, K], got x {} weight {}",
               shape_str(x_in.shape()), shape_str(w_in.shape()));
  const int64_t B = x_in.shape()[0], T = x_in.shape()[1], D = x_in.shape()[2];
  const int64_t K = w_in.shape()[1];
  ENGRAM_CHECK(!bias_in.defined() || bias_in.shape() == Shape{D},
               "causal_conv1d: bias must be [D] = [{}], got {}", D, shape_str(bias_in.shape()));
  ENGRAM_CHECK(!x0_in.defined() || x0_in.shape() == (Shape{B, K - 1, D}),
               "causal_conv1d: x0 (the conv state) must be [B, K-1, D] = [{}, {}, {}] for x {} "
               "and weight {}, got {}",
               B, K - 1, D, shape_str(x_in.shape()), shape_str(w_in.shape()),
               shape_str(x0_in.shape()));
  for (const Tensor* t : {&w_in, &bias_in, &x0_in})
    if (t->defined()) rk::check_same(x_in, *t, op);
  const Device dev = x_in.device();
  Tensor xp = empty({B, K - 1 + T, D}, x_in.dtype(), dev);
  if (K > 1) {
    Tensor head = raw::narrow(xp, 1, 0, K - 1);
    if (x0_in.defined()) raw::copy_(head, x0_in);
    else backend(dev).fill(head, 0.0);
  }
  raw::copy_(raw::narrow(xp, 1, K - 1, T), x_in);
  Tensor w = raw::contiguous(w_in), bias = bias_in.defined() ? raw::contiguous(bias_in) : Tensor();
  Tensor y = empty({B, T, D}, x_in.dtype(), dev);
  ENGRAM_KERNEL(dev, causal_conv1d)(xp, w, bias, y);
  // y_t = bias + sum_k w_k xp_{t+k}; dxp_s = sum_k w_k dy_{s-k}, dw_k = sum dy_t xp_{t+k}, dbias = sum dy
  const bool has_bias = bias.defined();
  record1("causal_conv1d", {x_in, w_in, bias_in, x0_in}, y, [xp, w, has_bias, K, T](const Tensor& dy) {
    Tensor g = raw::contiguous(dy), dxp = empty_like(xp), dw = empty_like(w);
    Tensor dbias = has_bias ? empty({w.shape()[0]}, w.dtype(), w.device()) : Tensor();
    ENGRAM_KERNEL(xp.device(), causal_conv1d_backward)(xp, w, g, dxp, dw, dbias);
    return std::vector<Tensor>{raw::narrow(dxp, 1, K - 1, T), dw, dbias,
                               raw::narrow(dxp, 1, 0, K - 1)};
  });
  return y;
}

SelectiveScan selective_scan(const Tensor& u_in, const Tensor& delta_in, const Tensor& A_in,
                             const Tensor& B_in, const Tensor& C_in, const Tensor& D_in,
                             const Tensor& z_in, const Tensor& delta_bias_in, const Tensor& h0_in,
                             bool delta_softplus, int64_t chunk) {
  const char* op = "selective_scan";
  ENGRAM_CHECK(u_in.defined() && delta_in.defined() && A_in.defined() && B_in.defined() &&
                   C_in.defined(),
               "selective_scan: u, delta, A, B and C must be defined (only D, z, delta_bias and "
               "h0 may be omitted)");
  ENGRAM_CHECK(u_in.dim() == 3 && u_in.shape()[1] > 0 && delta_in.shape() == u_in.shape(),
               "selective_scan: expected u and delta [B, T, D] (T > 0) of one shape, got u {} "
               "delta {}",
               shape_str(u_in.shape()), shape_str(delta_in.shape()));
  const int64_t B = u_in.shape()[0], T = u_in.shape()[1], D = u_in.shape()[2];
  ENGRAM_CHECK(A_in.dim() == 2 && A_in.shape()[0] == D && A_in.shape()[1] > 0,
               "selective_scan: A must be [D, N] with D = {} (u {}), got {}", D,
               shape_str(u_in.shape()), shape_str(A_in.shape()));
  const int64_t N = A_in.shape()[1];
  const Shape bc{B, T, N}, state{B, D, N};
  ENGRAM_CHECK(B_in.shape() == bc && C_in.shape() == bc,
               "selective_scan: B and C must be [B, T, N] = {} (u {}, A {}), got B {} C {}",
               shape_str(bc), shape_str(u_in.shape()), shape_str(A_in.shape()),
               shape_str(B_in.shape()), shape_str(C_in.shape()));
  ENGRAM_CHECK(!D_in.defined() || D_in.shape() == Shape{D},
               "selective_scan: D must be [{}], got {}", D, shape_str(D_in.shape()));
  ENGRAM_CHECK(!delta_bias_in.defined() || delta_bias_in.shape() == Shape{D},
               "selective_scan: delta_bias must be [{}], got {}", D,
               shape_str(delta_bias_in.shape()));
  ENGRAM_CHECK(!z_in.defined() || z_in.shape() == u_in.shape(),
               "selective_scan: z must be [B, T, D] = {}, got {}", shape_str(u_in.shape()),
               shape_str(z_in.shape()));
  ENGRAM_CHECK(!h0_in.defined() || h0_in.shape() == state,
               "selective_scan: h0 must be [B, D, N] = {}, got {}", shape_str(state),
               shape_str(h0_in.shape()));
  ENGRAM_CHECK(chunk > 0, "selective_scan: chunk must be positive, got {}", chunk);
  for (const Tensor* t : {&delta_in, &A_in, &B_in, &C_in, &D_in, &z_in, &delta_bias_in, &h0_in})
    if (t->defined()) rk::check_same(u_in, *t, op);

  auto contig = [](const Tensor& t) { return t.defined() ? raw::contiguous(t) : Tensor(); };
  Tensor u = contig(u_in), A = contig(A_in), Bm = contig(B_in), Cm = contig(C_in);
  Tensor Dskip = contig(D_in), z = contig(z_in), h0 = contig(h0_in);
  // pre = delta + delta_bias, dt = softplus(pre): both kept for the backward
  Tensor pre = delta_bias_in.defined() ? rk::add(delta_in, delta_bias_in) : contig(delta_in);
  Tensor dt = delta_softplus ? rk::unary(UnaryOp::softplus, pre, 1.0, 20.0) : pre;
  const Device dev = u.device();
  SelectiveScan out{empty(u.shape(), u.dtype(), dev), empty(state, u.dtype(), dev)};
  Tensor ckpt = empty({B, (T + chunk - 1) / chunk, D, N}, u.dtype(), dev);
  ENGRAM_KERNEL(dev, selective_scan)(u, dt, A, Bm, Cm, Dskip, z, h0, chunk, out.y, out.state, ckpt);
  // h_t = exp(dt A) h_{t-1} + dt B u, out = (C.h + D u) silu(z); the reverse walk is in
  // cpu_ssm_mamba.cpp; ddelta = ddt softplus'(pre), ddelta_bias = ddelta summed by the tape
  record("selective_scan", {u_in, delta_in, A_in, B_in, C_in, D_in, z_in, delta_bias_in, h0_in},
         {out.y, out.state},
         [u, dt, pre, A, Bm, Cm, Dskip, z, ckpt, chunk, delta_softplus](const std::vector<Tensor>& gout) {
           Tensor dout = raw::contiguous(gout[0]), dh_last = raw::contiguous(gout[1]);
           Tensor du = empty_like(u), ddt = empty_like(u), dA = empty_like(A);
           Tensor dB = empty_like(Bm), dC = empty_like(Cm), dh0 = empty_like(dh_last);
           Tensor dD = Dskip.defined() ? empty_like(Dskip) : Tensor();
           Tensor dz = z.defined() ? empty_like(z) : Tensor();
           ENGRAM_KERNEL(u.device(), selective_scan_backward)(u, dt, A, Bm, Cm, Dskip, z, ckpt, chunk,
                                                             dout, dh_last, du, ddt, dA, dB, dC,
                                                             dD, dz, dh0);
           Tensor ddelta = ddt;
           if (delta_softplus) {
             ddelta = empty_like(ddt);
             backend(u.device()).unary_backward(UnaryOp::softplus, pre, dt, ddt, 1.0, 20.0, ddelta);
           }
           return std::vector<Tensor>{du, ddelta, dA, dB, dC, dD, dz, ddelta, dh0};
         });
  return out;
}

}  // namespace engram
