// autograd/titans_ops.cpp — the fused Titans neural-memory op (Behrouz, Zhong & Mirrokni 2024,
// "Titans: Learning to Memorize at Test Time", arXiv:2501.00663), depth 1 = linear matrix memory.
//
// titans_linear_memory runs the memory's test-time learning over a whole sequence in one kernel.
// Per batch row, tokens in chunks of `chunk`, M0_c the memory entering chunk c:
//   y_t = M_{t-1} q_t                          retrieval, before token t is written
//   e_t = 2 (M0_c k_t - v_t)                   gradient of ||M k_t - v_t||^2 is e_t k_t^T, at M0_c
//   S_t = eta_t S_{t-1} - theta_t e_t k_t^T    momentum (the paper's "surprise")
//   M_t = (1 - alpha_t) M_{t-1} + S_t          forgetting
// q, k [B, T, dk], v [B, T, dv], theta/eta/alpha [B, T], m0/s0 [B, dv, dk]. Taking a chunk's
// gradients at its starting weights is the paper's parallel training trick; chunk = 1 is the
// sequential rule. A loop of small ops would record ~10 nodes and a [B, dv, dk] state per token;
// this records one node whose backward (core/cpu/cpu_titans.cpp has its equations) recomputes
// each chunk from the (M, S) checkpoints the forward saved at chunk starts.
//
// titans_mlp_memory is the paper's deep memory (§3.1, L_M = 2): per batch row two matrices
// W1 [h, dk], W2 [dv, h], M(x) = W2 silu(W1 x), silu(a) = a s(a), s = sigmoid,
// silu'(a) = s (1 + a (1 - s)), silu''(a) = s (1 - s) (2 + a (1 - 2 s)). With W1_0c, W2_0c the
// weights at the start of chunk c, for t in chunk c:
//   y_t  = W2_{t-1} silu(W1_{t-1} q_t)             retrieval before the update
//   a_t  = W1_0c k_t ;  z_t = silu(a_t) ;  p_t = W2_0c z_t ;  e_t = 2 (p_t - v_t)
//                                                  inner loss ||M(k_t) - v_t||^2 at chunk start
//   G2_t = e_t z_t^T                               [dv, h]
//   G1_t = ((W2_0c^T e_t) * silu'(a_t)) k_t^T       [h, dk]
//   S1_t = eta_t S1_{t-1} - theta_t G1_t ;  W1_t = (1 - alpha_t) W1_{t-1} + S1_t
//   S2_t = eta_t S2_{t-1} - theta_t G2_t ;  W2_t = (1 - alpha_t) W2_{t-1} + S2_t
// One node again; the forward saves (W1, W2, S1, S2) at every chunk start and the backward
// (cpu_titans.cpp) recomputes each chunk from them.
#include "autograd/ops.h"
#include "autograd/raw_ops.h"

namespace engram {

TitansMemoryScan titans_linear_memory(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                                      const Tensor& theta_in, const Tensor& eta_in,
                                      const Tensor& alpha_in, const Tensor& m0_in,
                                      const Tensor& s0_in, int64_t chunk) {
  const char* op = "titans_linear_memory";
  ENGRAM_CHECK(q_in.defined() && k_in.defined() && v_in.defined() && theta_in.defined() &&
                   eta_in.defined() && alpha_in.defined() && m0_in.defined(),
               "titans_linear_memory: q, k, v, theta, eta, alpha and m0 must be defined (only s0 "
               "may be omitted)");
  ENGRAM_CHECK(q_in.dim() == 3 && k_in.shape() == q_in.shape() && v_in.dim() == 3 &&
                   v_in.shape()[0] == q_in.shape()[0] && v_in.shape()[1] == q_in.shape()[1],
               "titans_linear_memory: expected q, k [B, T, dk] and v [B, T, dv], got q {} k {} v {}",
               shape_str(q_in.shape()), shape_str(k_in.shape()), shape_str(v_in.shape()));
  const int64_t B = q_in.shape()[0], T = q_in.shape()[1], dk = q_in.shape()[2], dv = v_in.shape()[2];
  const Shape gate{B, T}, mem{B, dv, dk};
  ENGRAM_CHECK(theta_in.shape() == gate && eta_in.shape() == gate && alpha_in.shape() == gate,
               "titans_linear_memory: theta, eta and alpha must be [B, T] = {}, got theta {} eta {} "
               "alpha {}",
               shape_str(gate), shape_str(theta_in.shape()), shape_str(eta_in.shape()),
               shape_str(alpha_in.shape()));
  ENGRAM_CHECK(m0_in.shape() == mem, "titans_linear_memory: m0 must be [B, dv, dk] = {}, got {}",
               shape_str(mem), shape_str(m0_in.shape()));
  ENGRAM_CHECK(!s0_in.defined() || s0_in.shape() == mem,
               "titans_linear_memory: s0 must be [B, dv, dk] = {} (or undefined = zeros), got {}",
               shape_str(mem), shape_str(s0_in.shape()));
  ENGRAM_CHECK(chunk > 0, "titans_linear_memory: chunk must be positive, got {}", chunk);
  for (const Tensor* t : {&k_in, &v_in, &theta_in, &eta_in, &alpha_in, &m0_in, &s0_in})
    if (t->defined()) rk::check_same(q_in, *t, op);
  // The kernel reads plain row-major buffers; m0 often arrives as an expand()ed stride-0 view of
  // one shared initial memory, which contiguous() materialises per batch row.
  Tensor q = raw::contiguous(q_in), k = raw::contiguous(k_in), v = raw::contiguous(v_in);
  Tensor theta = raw::contiguous(theta_in), eta = raw::contiguous(eta_in),
         alpha = raw::contiguous(alpha_in);
  Tensor m0 = raw::contiguous(m0_in), s0 = s0_in.defined() ? raw::contiguous(s0_in) : Tensor();
  const int64_t n_chunks = (T + chunk - 1) / chunk;
  TitansMemoryScan out{empty({B, T, dv}, q.dtype(), q.device()), empty(mem, q.dtype(), q.device()),
                       empty(mem, q.dtype(), q.device())};
  Tensor ckpt_m = empty({B, n_chunks, dv, dk}, q.dtype(), q.device());
  Tensor ckpt_s = empty({B, n_chunks, dv, dk}, q.dtype(), q.device());
  ENGRAM_KERNEL(q.device(), titans_linear_memory)(q, k, v, theta, eta, alpha, m0, s0, chunk,
                                                  out.retrieved, out.memory, out.momentum, ckpt_m,
                                                  ckpt_s);
  // y_t = M_{t-1} q_t, e_t = 2 (M0_c k_t - v_t), S_t = eta S - theta e k^T, M_t = (1-alpha) M + S;
  // backward in cpu_titans.cpp (all eight inputs; ds0 is dropped by the tape when s0 is undefined)
  record(op, {q_in, k_in, v_in, theta_in, eta_in, alpha_in, m0_in, s0_in},
         {out.retrieved, out.memory, out.momentum},
         [q, k, v, theta, eta, alpha, ckpt_m, ckpt_s, chunk](const std::vector<Tensor>& gout) {
           Tensor dy = raw::contiguous(gout[0]), dm_last = raw::contiguous(gout[1]),
                  ds_last = raw::contiguous(gout[2]);
           Tensor dq = empty_like(q), dk = empty_like(k), dv = empty_like(v);
           Tensor dtheta = empty_like(theta), deta = empty_like(eta), dalpha = empty_like(alpha);
           Tensor dm0 = empty_like(dm_last), ds0 = empty_like(ds_last);
           ENGRAM_KERNEL(q.device(), titans_linear_memory_backward)(
               q, k, v, theta, eta, alpha, ckpt_m, ckpt_s, chunk, dy, dm_last, ds_last, dq, dk, dv,
               dtheta, deta, dalpha, dm0, ds0);
           return std::vector<Tensor>{dq, dk, dv, dtheta, deta, dalpha, dm0, ds0};
         });
  return out;
}

TitansMLPScan titans_mlp_memory(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                                const Tensor& theta_in, const Tensor& eta_in,
                                const Tensor& alpha_in, const Tensor& w1_in, const Tensor& w2_in,
                                const Tensor& s1_in, const Tensor& s2_in, int64_t chunk) {
  const char* op = "titans_mlp_memory";
  ENGRAM_CHECK(q_in.defined() && k_in.defined() && v_in.defined() && theta_in.defined() &&
                   eta_in.defined() && alpha_in.defined() && w1_in.defined() && w2_in.defined(),
               "titans_mlp_memory: q, k, v, theta, eta, alpha, w1 and w2 must be defined (only s1 "
               "and s2 may be omitted)");
  ENGRAM_CHECK(q_in.dim() == 3 && k_in.shape() == q_in.shape() && v_in.dim() == 3 &&
                   v_in.shape()[0] == q_in.shape()[0] && v_in.shape()[1] == q_in.shape()[1],
               "titans_mlp_memory: expected q, k [B, T, dk] and v [B, T, dv], got q {} k {} v {}",
               shape_str(q_in.shape()), shape_str(k_in.shape()), shape_str(v_in.shape()));
  const int64_t B = q_in.shape()[0], T = q_in.shape()[1], dk = q_in.shape()[2];
  const int64_t dv = v_in.shape()[2];
  const Shape gate{B, T};
  ENGRAM_CHECK(theta_in.shape() == gate && eta_in.shape() == gate && alpha_in.shape() == gate,
               "titans_mlp_memory: theta, eta and alpha must be [B, T] = {}, got theta {} eta {} "
               "alpha {}",
               shape_str(gate), shape_str(theta_in.shape()), shape_str(eta_in.shape()),
               shape_str(alpha_in.shape()));
  ENGRAM_CHECK(w1_in.dim() == 3 && w1_in.shape()[0] == B && w1_in.shape()[2] == dk &&
                   w1_in.shape()[1] > 0,
               "titans_mlp_memory: w1 must be [B, h, dk] = [{}, h, {}], got {}", B, dk,
               shape_str(w1_in.shape()));
  const int64_t h = w1_in.shape()[1];
  const Shape sh1{B, h, dk}, sh2{B, dv, h};
  ENGRAM_CHECK(w2_in.shape() == sh2, "titans_mlp_memory: w2 must be [B, dv, h] = {}, got {}",
               shape_str(sh2), shape_str(w2_in.shape()));
  ENGRAM_CHECK(!s1_in.defined() || s1_in.shape() == sh1,
               "titans_mlp_memory: s1 must be [B, h, dk] = {} (or undefined = zeros), got {}",
               shape_str(sh1), shape_str(s1_in.shape()));
  ENGRAM_CHECK(!s2_in.defined() || s2_in.shape() == sh2,
               "titans_mlp_memory: s2 must be [B, dv, h] = {} (or undefined = zeros), got {}",
               shape_str(sh2), shape_str(s2_in.shape()));
  ENGRAM_CHECK(chunk > 0, "titans_mlp_memory: chunk must be positive, got {}", chunk);
  for (const Tensor* t : {&k_in, &v_in, &theta_in, &eta_in, &alpha_in, &w1_in, &w2_in, &s1_in,
                          &s2_in})
    if (t->defined()) rk::check_same(q_in, *t, op);
  Tensor q = raw::contiguous(q_in), k = raw::contiguous(k_in), v = raw::contiguous(v_in);
  Tensor theta = raw::contiguous(theta_in), eta = raw::contiguous(eta_in),
         alpha = raw::contiguous(alpha_in);
  Tensor w1 = raw::contiguous(w1_in), w2 = raw::contiguous(w2_in);
  Tensor s1 = s1_in.defined() ? raw::contiguous(s1_in) : Tensor();
  Tensor s2 = s2_in.defined() ? raw::contiguous(s2_in) : Tensor();
  const int64_t n_chunks = (T + chunk - 1) / chunk;
  const DType dt = q.dtype();
  const Device dev = q.device();
  TitansMLPScan out{empty({B, T, dv}, dt, dev), empty(sh1, dt, dev), empty(sh2, dt, dev),
                    empty(sh1, dt, dev), empty(sh2, dt, dev)};
  Tensor ckpt_w1 = empty({B, n_chunks, h, dk}, dt, dev);
  Tensor ckpt_s1 = empty({B, n_chunks, h, dk}, dt, dev);
  Tensor ckpt_w2 = empty({B, n_chunks, dv, h}, dt, dev);
  Tensor ckpt_s2 = empty({B, n_chunks, dv, h}, dt, dev);
  ENGRAM_KERNEL(dev, titans_mlp_memory)(q, k, v, theta, eta, alpha, w1, w2, s1, s2, chunk,
                                        out.retrieved, out.w1, out.w2, out.s1, out.s2, ckpt_w1,
                                        ckpt_w2, ckpt_s1, ckpt_s2);
  // y_t = W2 silu(W1 q_t); G_t at the chunk-start weights; S = eta S - theta G, W = (1-alpha) W + S;
  // backward in cpu_titans.cpp (all ten inputs; ds1/ds2 dropped by the tape when undefined)
  record(op, {q_in, k_in, v_in, theta_in, eta_in, alpha_in, w1_in, w2_in, s1_in, s2_in},
         {out.retrieved, out.w1, out.w2, out.s1, out.s2},
         [q, k, v, theta, eta, alpha, ckpt_w1, ckpt_w2, ckpt_s1, ckpt_s2,
          chunk](const std::vector<Tensor>& gout) {
           Tensor dy = raw::contiguous(gout[0]), dw1_last = raw::contiguous(gout[1]),
                  dw2_last = raw::contiguous(gout[2]), ds1_last = raw::contiguous(gout[3]),
                  ds2_last = raw::contiguous(gout[4]);
           Tensor dq = empty_like(q), dk = empty_like(k), dv = empty_like(v);
           Tensor dtheta = empty_like(theta), deta = empty_like(eta), dalpha = empty_like(alpha);
           Tensor dw1 = empty_like(dw1_last), dw2 = empty_like(dw2_last);
           Tensor ds1 = empty_like(ds1_last), ds2 = empty_like(ds2_last);
           ENGRAM_KERNEL(q.device(), titans_mlp_memory_backward)(
               q, k, v, theta, eta, alpha, ckpt_w1, ckpt_w2, ckpt_s1, ckpt_s2, chunk, dy, dw1_last,
               dw2_last, ds1_last, ds2_last, dq, dk, dv, dtheta, deta, dalpha, dw1, dw2, ds1, ds2);
           return std::vector<Tensor>{dq, dk, dv, dtheta, deta, dalpha, dw1, dw2, ds1, ds2};
         });
  return out;
}

}  // namespace engram
