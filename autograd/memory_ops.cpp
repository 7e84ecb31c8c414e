// autograd/memory_ops.cpp — fused differentiable ops of the memory modules.
//
// hebbian_scan runs the whole decayed outer-product recurrence of a Hebbian memory in one kernel
// (core/cpu/cpu_memory.cpp has the equations of forward and backward). A per-step loop of small
// ops would record 4 nodes and allocate a [B, dk, dv] state per step; this records one node and
// keeps only a state per chunk of steps for the backward.
//
// episodic_scan runs a CRSD episodic buffer's reads and writes over a whole sequence in one node
// (core/cpu/cpu_episodic.cpp has both passes) instead of ~40 small ops and ~60 tensors per step;
// its backward rebuilds each step's slots by undoing the writes, so it stores no state either.
//
// cmr_drift_scan runs episodic CMR's context drift (memory/cmr/context.h) over a whole sequence
// in one node instead of ~10 small ops per token (core/cpu/cpu_cmr.cpp has both passes).
#include "autograd/ops.h"
#include "autograd/raw_ops.h"

namespace engram {

HebbianScan hebbian_scan(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                         const Tensor& gamma, const Tensor& eta, const Tensor& h0_in,
                         bool detach_memory, int64_t chunk) {
  ENGRAM_CHECK(q_in.dim() == 3 && k_in.shape() == q_in.shape() && v_in.dim() == 3 &&
                   v_in.shape()[0] == q_in.shape()[0] && v_in.shape()[1] == q_in.shape()[1],
               "hebbian_scan: expected q, k [B, T, dk] and v [B, T, dv], got q {} k {} v {}",
               shape_str(q_in.shape()), shape_str(k_in.shape()), shape_str(v_in.shape()));
  ENGRAM_CHECK(gamma.numel() == 1 && eta.numel() == 1,
               "hebbian_scan: gamma and eta must be scalars, got {} and {}", shape_str(gamma.shape()),
               shape_str(eta.shape()));
  ENGRAM_CHECK(chunk > 0, "hebbian_scan: chunk must be positive, got {}", chunk);
  rk::check_same(q_in, k_in, "hebbian_scan");
  rk::check_same(q_in, v_in, "hebbian_scan");
  const int64_t B = q_in.shape()[0], T = q_in.shape()[1], dk = q_in.shape()[2], dv = v_in.shape()[2];
  Tensor q = raw::contiguous(q_in), k = raw::contiguous(k_in), v = raw::contiguous(v_in);
  Tensor h0 = h0_in.defined() ? raw::contiguous(h0_in) : zeros({B, dk, dv}, q.dtype(), q.device());
  ENGRAM_CHECK(h0.shape() == (Shape{B, dk, dv}), "hebbian_scan: h0 must be [{}, {}, {}], got {}", B,
               dk, dv, shape_str(h0.shape()));
  const double g = gamma.item(), e = eta.item();
  HebbianScan out{empty({B, T, dv}, q.dtype(), q.device()), empty({B, dk, dv}, q.dtype(), q.device())};
  Tensor ckpt = empty({B, (T + chunk - 1) / chunk, dk, dv}, q.dtype(), q.device());
  ENGRAM_KERNEL(q.device(), hebbian_scan)(q, k, v, g, e, h0, chunk, out.recall, out.state, ckpt);
  // r_t = H_t^T q_t with H_t = gamma H_{t-1} + eta k_t v_t^T; backward in cpu_memory.cpp
  // gamma and eta may be [] or [1] (or any one-element shape): their gradients take that shape
  Shape gamma_shape = gamma.shape(), eta_shape = eta.shape();
  DType dt = gamma.dtype();
  record("hebbian_scan", {q_in, k_in, v_in, gamma, eta, h0_in}, {out.recall, out.state},
         [q, k, v, g, e, ckpt, chunk, detach_memory, dt, gamma_shape, eta_shape](const std::vector<Tensor>& gout) {
           Tensor dr = raw::contiguous(gout[0]), dh_last = raw::contiguous(gout[1]);
           Tensor dq = empty_like(q), dk = empty_like(k), dv = empty_like(v), dh0 = empty_like(dh_last);
           Tensor scalars = zeros({2}, DType::f64);
           ENGRAM_KERNEL(q.device(), hebbian_scan_backward)(q, k, v, g, e, ckpt, chunk, dr, dh_last,
                                                            detach_memory, dq, dk, dv, dh0, scalars);
           std::vector<double> s = scalars.to_vector<double>();
           return std::vector<Tensor>{dq, dk, dv, full(gamma_shape, s[0], dt, q.device()),
                                      full(eta_shape, s[1], dt, q.device()), dh0};
         });
  return out;
}

EpisodicScan episodic_scan(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                           const EpisodicSlots& start, const EpisodicScanArgs& args) {
  ENGRAM_CHECK(q_in.dim() == 3 && k_in.shape() == q_in.shape() && v_in.dim() == 3 &&
                   v_in.shape()[0] == q_in.shape()[0] && v_in.shape()[1] == q_in.shape()[1],
               "episodic_scan: expected q, k [B, T, dk] and v [B, T, dv], got q {} k {} v {}",
               shape_str(q_in.shape()), shape_str(k_in.shape()), shape_str(v_in.shape()));
  ENGRAM_CHECK(start.keys.dim() == 3 && start.keys.shape()[0] == q_in.shape()[0] &&
                   start.keys.shape()[2] == q_in.shape()[2],
               "episodic_scan: the slot keys must be [{}, S, {}], got {}", q_in.shape()[0],
               q_in.shape()[2], shape_str(start.keys.shape()));
  const int64_t S = start.keys.shape()[1];
  ENGRAM_CHECK(args.temperature > 0 && args.eps >= 0 && args.top_k >= 0 && args.top_k <= S &&
                   args.recency_window >= 0,
               "episodic_scan: need temperature > 0, eps >= 0, 0 <= top_k <= slots ({}) and "
               "recency_window >= 0, got {}, {}, {}, {}",
               S, args.temperature, args.eps, args.top_k, args.recency_window);
  for (const Tensor* t : {&k_in, &v_in, &start.keys, &start.values, &start.importance, &start.age,
                          &start.filled})
    rk::check_same(q_in, *t, "episodic_scan");
  const int64_t B = q_in.shape()[0], T = q_in.shape()[1], dk = q_in.shape()[2], dv = v_in.shape()[2];
  Tensor q = raw::contiguous(q_in), k = raw::contiguous(k_in), v = raw::contiguous(v_in);
  EpisodicSlots in{raw::contiguous(start.keys), raw::contiguous(start.values),
                   raw::contiguous(start.importance), raw::contiguous(start.age),
                   raw::contiguous(start.filled)};
  const DType dt = q.dtype();
  const Device dev = q.device();
  EpisodicScan out{empty({B, T, dv}, dt, dev),
                   {empty({B, S, dk}, dt, dev), empty({B, S, dv}, dt, dev), empty({B, S}, dt, dev),
                    empty({B, S}, dt, dev), empty({B, S}, dt, dev)}};
  Tensor weights = empty({B, T, S}, dt, dev), writes = empty({B, T, 2}, DType::i64, dev);
  ENGRAM_KERNEL(dev, episodic_scan)(q, k, v, in, args, out.recall, out.slots, weights, writes);
  // the backward reads the start and end keys and values (importance, age and filled only
  // steer the forward's discrete choices, which `writes` and `weights` record)
  Tensor keys0 = in.keys, values0 = in.values, keys_end = out.slots.keys,
         values_end = out.slots.values;
  record("episodic_scan", {q_in, k_in, v_in, start.keys, start.values},
         {out.recall, out.slots.keys, out.slots.values},
         [q, k, v, keys0, values0, keys_end, values_end, weights, writes,
          args](const std::vector<Tensor>& g) {
           Tensor dr = raw::contiguous(g[0]), dkeys = raw::contiguous(g[1]),
                  dvalues = raw::contiguous(g[2]);
           Tensor dq = empty_like(q), dk = empty_like(k), dv = empty_like(v),
                  dkeys0 = empty_like(keys0), dvalues0 = empty_like(values0);
           ENGRAM_KERNEL(q.device(), episodic_scan_backward)(
               q, k, v, keys0, values0, keys_end, values_end, weights, writes, args, dr, dkeys,
               dvalues, dq, dk, dv, dkeys0, dvalues0);
           return std::vector<Tensor>{dq, dk, dv, dkeys0, dvalues0};
         });
  return out;
}

Tensor cmr_drift_scan(const Tensor& cin_in, const Tensor& beta_in, const Tensor& c0_in) {
  ENGRAM_CHECK(cin_in.dim() == 3 && beta_in.dim() == 2 && c0_in.dim() == 2 &&
                   beta_in.shape()[0] == cin_in.shape()[0] &&
                   beta_in.shape()[1] == cin_in.shape()[1] &&
                   c0_in.shape()[0] == cin_in.shape()[0] && c0_in.shape()[1] == cin_in.shape()[2],
               "cmr_drift_scan: expected cin [B, T, D], beta [B, T], c0 [B, D], got cin {} beta {} "
               "c0 {}",
               shape_str(cin_in.shape()), shape_str(beta_in.shape()), shape_str(c0_in.shape()));
  rk::check_same(cin_in, beta_in, "cmr_drift_scan");
  rk::check_same(cin_in, c0_in, "cmr_drift_scan");
  Tensor cin = raw::contiguous(cin_in), beta = raw::contiguous(beta_in), c0 = raw::contiguous(c0_in);
  Tensor c = empty(cin.shape(), cin.dtype(), cin.device());
  ENGRAM_KERNEL(cin.device(), cmr_drift_scan)(cin, beta, c0, c);
  // c_t = rho_t c_{t-1} + beta_t cin_t; dcin, dbeta, dc0 by the reverse walk in cpu_cmr.cpp
  record1("cmr_drift_scan", {cin_in, beta_in, c0_in}, c, [cin, beta, c0, c](const Tensor& dy) {
    Tensor dc = raw::contiguous(dy), dcin = empty_like(cin), dbeta = empty_like(beta),
           dc0 = empty_like(c0);
    ENGRAM_KERNEL(cin.device(), cmr_drift_scan_backward)(cin, beta, c0, c, dc, dcin, dbeta, dc0);
    return std::vector<Tensor>{dcin, dbeta, dc0};
  });
  return c;
}

}  // namespace engram
