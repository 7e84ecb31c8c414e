// cuda/cuda_scan.cu — sequential scans on the GPU: the first-order linear recurrence
// (core/cpu/cpu_scan.cpp) and the Hebbian memory scan (core/cpu/cpu_memory.cpp).
//
//   linear_scan:          h_t = a_t * h_{t-1} + b_t,        t = 0 .. T-1,  h_{-1} = h0 (or none)
//   linear_scan_reverse:  g_t = dh_t + a_{t+1} * g_{t+1},  t = T-1 .. 0,  g_{T-1} = dh_{T-1}
// along dim 1 of [B, T, F...]. Every (batch, feature) channel is an independent recurrence, so one
// thread owns one channel and loops over t (consecutive threads take consecutive features, so
// each time step is a coalesced row access). Operands are addressed as x[b*sB + t*sT + f*sF], as
// on the CPU: this covers contiguous tensors and stride-0 broadcasts (a [B, T, 1], [1, T, D], [D]
// expanded); an operand whose feature dims do not flatten to one stride is copied contiguous first
// (an output like that is written through a temporary). Without h0, h_0 = b_0 exactly (no a_0 * 0).
//
//   hebbian_scan:  H_t = gamma H_{t-1} + eta k_t v_t^T,  r_t = H_t^T q_t   (per batch element)
//   q, k [B, T, dk], v [B, T, dv], H [B, dk, dv], all contiguous; checkpoints [B, ceil(T/chunk),
//   dk, dv] = the state entering each chunk.
// The state update is elementwise in (b, i, j): one thread per state element walks a window
// of steps and stores every state of the window in scratch; a second kernel then forms r_t[j] =
// sum_i q_t[i] H_t[i][j] with one thread per (b, t, j) (i ascending, as the CPU sums). This uses
// all B*dk*dv threads instead of B*dv and needs no cross-thread reduction.
// Backward (equations in cpu_memory.cpp), one chunk at a time from the last:
//   1. recompute H_{start-1} .. H_{start+len-1} from the chunk's checkpoint (elementwise);
//   2. walk the chunk backwards per state element: D_t = dH + q_t dr_t^T (stored),
//      dgamma partial += D_t H_{t-1}, dH <- gamma D_t (0 when detach_memory);
//   3. per (b, t, i): dq_t[i] = H_t[i,:] . dr_t, dk_t[i] = eta D_t[i,:] . v_t, deta partial
//      k_t[i] (D_t[i,:] . v_t); per (b, t, j): dv_t[j] = sum_i eta k_t[i] D_t[i][j].
// dgamma and deta are per-element partials in double, summed at the end by one block in a fixed
// order (deterministic), downloaded and ADDED to grads[0], grads[1] (a 2-element f64 CPU tensor).
#include <algorithm>

#include "core/scan_view.h"
#include "cuda/common.cuh"

namespace engram::cuda {

// ================================================================ linear_scan

template <typename T>
__global__ void linear_scan_kernel(const T* a, View3 sa, const T* b, View3 sb, const T* h0,
                                   View3 s0, T* h, View3 sh, int64_t B, int64_t L, int64_t F) {
  ENGRAM_GRID_STRIDE(ch, B * F) {
    const int64_t bi = ch / F, f = ch % F;
    const T* ap = a + bi * sa.b + f * sa.f;
    const T* bp = b + bi * sb.b + f * sb.f;
    T* hp = h + bi * sh.b + f * sh.f;
    T prev = h0 ? ap[0] * h0[bi * s0.b + f * s0.f] + bp[0] : bp[0];  // CPU: no a_0 * 0
    hp[0] = prev;
    for (int64_t t = 1; t < L; ++t) {
      prev = ap[t * sa.t] * prev + bp[t * sb.t];
      hp[t * sh.t] = prev;
    }
  }
}

template <typename T>
__global__ void linear_scan_reverse_kernel(const T* a, View3 sa, const T* dh, View3 sd, T* g,
                                           View3 sg, int64_t B, int64_t L, int64_t F) {
  ENGRAM_GRID_STRIDE(ch, B * F) {
    const int64_t bi = ch / F, f = ch % F;
    const T* ap = a + bi * sa.b + f * sa.f;
    const T* dp = dh + bi * sd.b + f * sd.f;
    T* gp = g + bi * sg.b + f * sg.f;
    T next = dp[(L - 1) * sd.t];
    gp[(L - 1) * sg.t] = next;
    for (int64_t t = L - 2; t >= 0; --t) {
      next = ap[(t + 1) * sa.t] * next + dp[t * sd.t];
      gp[t * sg.t] = next;
    }
  }
}

static void check_scan_shapes(const char* op, Tref a, Tref b, Tref h) {
  require_cuda(a, op, "a");
  require_cuda(b, op, "b (dh)");
  require_cuda(h, op, "the output");
  ENGRAM_CHECK(a.dim() >= 2 && a.shape() == b.shape() && a.shape() == h.shape(),
               "{}: expected equal shapes [B, T, ...], got {}, {} and {}", op, shape_str(a.shape()),
               shape_str(b.shape()), shape_str(h.shape()));
  ENGRAM_CHECK(a.dtype() == b.dtype() && a.dtype() == h.dtype(), "{}: dtypes differ: {}, {}, {}",
               op, dtype_name(a.dtype()), dtype_name(b.dtype()), dtype_name(h.dtype()));
}

template <typename T>
static void linear_scan_impl(Tref a, View3 sa, Tref b, View3 sb, const Tensor& h0, View3 s0,
                             Tref h, View3 sh, int64_t B, int64_t L, int64_t F) {
  linear_scan_kernel<T><<<blocks_for(B * F), kThreads, 0, stream()>>>(
      a.data<T>(), sa, b.data<T>(), sb, h0.defined() ? h0.data<T>() : nullptr, s0, h.data<T>(), sh,
      B, L, F);
  check_launch("linear_scan");
}

static void linear_scan(Tref a, Tref b, Tref h0, Tref h) {
  check_scan_shapes("linear_scan", a, b, h);
  const Shape& s = a.shape();
  Shape hs = s;
  hs.erase(hs.begin() + 1);
  if (h0.defined()) {
    require_cuda(h0, "linear_scan", "h0");
    ENGRAM_CHECK(h0.shape() == hs && h0.dtype() == a.dtype(),
                 "linear_scan: h0 {} {} should be {} {} for a of shape {}", dtype_name(h0.dtype()),
                 shape_str(h0.shape()), dtype_name(a.dtype()), shape_str(hs), shape_str(s));
  }
  if (a.numel() == 0) return;
  const int64_t B = s[0], L = s[1], F = a.numel() / (B * L);
  View3 sa, sb, s0, sh;
  Tensor av = view3(a, true, sa), bv = view3(b, true, sb), hv = out_view3(h, sh);
  Tensor h0v = h0.defined() ? view3(h0, false, s0) : Tensor();
  ENGRAM_DISPATCH_FLOAT(a.dtype(), "linear_scan", [&] {
    linear_scan_impl<scalar_t>(av, sa, bv, sb, h0v, s0, hv, sh, B, L, F);
  });
  if (!hv.same(h)) raw::copy_(h, hv);
}

template <typename T>
static void linear_scan_reverse_impl(Tref a, View3 sa, Tref dh, View3 sd, Tref g, View3 sg,
                                     int64_t B, int64_t L, int64_t F) {
  linear_scan_reverse_kernel<T><<<blocks_for(B * F), kThreads, 0, stream()>>>(
      a.data<T>(), sa, dh.data<T>(), sd, g.data<T>(), sg, B, L, F);
  check_launch("linear_scan_reverse");
}

static void linear_scan_reverse(Tref a, Tref dh, Tref g) {
  check_scan_shapes("linear_scan_reverse", a, dh, g);
  const Shape& s = a.shape();
  if (a.numel() == 0) return;
  const int64_t B = s[0], L = s[1], F = a.numel() / (B * L);
  View3 sa, sd, sg;
  Tensor av = view3(a, true, sa), dv = view3(dh, true, sd), gv = out_view3(g, sg);
  ENGRAM_DISPATCH_FLOAT(a.dtype(), "linear_scan_reverse", [&] {
    linear_scan_reverse_impl<scalar_t>(av, sa, dv, sd, gv, sg, B, L, F);
  });
  if (!gv.same(g)) raw::copy_(g, gv);
}

// ================================================================ hebbian_scan

// One thread per state element (b, i, j): start from init[b] and take `len` steps from t0,
//   h = gamma h + (eta k_t[i]) v_t[j]        (the CPU's rounding order)
// storing the state after step s at states[b, s + with_initial] (and init itself at index 0 when
// with_initial), the checkpoint at every t % chunk == 0 (ckpt may be null) and the last state in
// final_out (may be null; may alias init, each element is read before it is written).
template <typename T>
__global__ void hebbian_advance_kernel(const T* k, const T* v, T gamma, T eta, int64_t B,
                                       int64_t Tn, int64_t dk, int64_t dv, int64_t t0, int64_t len,
                                       const T* init, int64_t init_bstride, T* states,
                                       int64_t states_bstride, bool with_initial, T* final_out,
                                       T* ckpt, int64_t chunk, int64_t n_chunks) {
  const int64_t S = dk * dv;
  ENGRAM_GRID_STRIDE(e, B * S) {
    const int64_t b = e / S, ij = e % S, i = ij / dv, j = ij % dv;
    T h = init[b * init_bstride + ij];
    T* st = states + b * states_bstride + ij;
    if (with_initial) {
      st[0] = h;
      st += S;
    }
    for (int64_t s = 0; s < len; ++s) {
      const int64_t t = t0 + s;
      if (ckpt && t % chunk == 0) ckpt[(b * n_chunks + t / chunk) * S + ij] = h;
      const T ek = eta * k[(b * Tn + t) * dk + i];
      h = gamma * h + ek * v[(b * Tn + t) * dv + j];
      st[s * S] = h;
    }
    if (final_out) final_out[b * S + ij] = h;
  }
}

// r_t[j] = sum_i q_t[i] H_t[i][j] for t in [t0, t0 + len); states[b, s] = H_{t0+s}.
template <typename T>
__global__ void hebbian_recall_kernel(const T* q, const T* states, int64_t states_bstride,
                                      int64_t B, int64_t Tn, int64_t dk, int64_t dv, int64_t t0,
                                      int64_t len, T* r) {
  const int64_t S = dk * dv;
  ENGRAM_GRID_STRIDE(x, B * len * dv) {
    const int64_t b = x / (len * dv), s = (x / dv) % len, j = x % dv, t = t0 + s;
    const T* qt = q + (b * Tn + t) * dk;
    const T* H = states + b * states_bstride + s * S + j;
    T acc = 0;
    for (int64_t i = 0; i < dk; ++i) acc += qt[i] * H[i * dv];
    r[(b * Tn + t) * dv + j] = acc;
  }
}

// Step 2 of the backward over one chunk [start, start + len): one thread per state element walks
// the chunk backwards. dH [B, S] is the running gradient (the dh0 buffer); D [B, cl, S] receives
// D_t; states [B, cl + 1, S] holds H_{start-1+s} at s; gpart [B, S] accumulates <D_t, H_{t-1}>.
template <typename T>
__global__ void hebbian_state_grad_kernel(const T* q, const T* dr, T gamma, bool detach, int64_t B,
                                          int64_t Tn, int64_t dk, int64_t dv, int64_t start,
                                          int64_t len, int64_t cl, const T* states, T* D, T* dH,
                                          double* gpart) {
  const int64_t S = dk * dv;
  ENGRAM_GRID_STRIDE(e, B * S) {
    const int64_t b = e / S, ij = e % S, i = ij / dv, j = ij % dv;
    T d = dH[e];
    double g = 0;
    for (int64_t s = len - 1; s >= 0; --s) {
      const int64_t t = start + s;
      d += q[(b * Tn + t) * dk + i] * dr[(b * Tn + t) * dv + j];  // from r_t = H_t^T q_t
      D[(b * cl + s) * S + ij] = d;
      g += double(d) * double(states[(b * (cl + 1) + s) * S + ij]);  // <dH_t, H_{t-1}>
      d = detach ? T(0) : gamma * d;                                   // into H_{t-1}
    }
    dH[e] = d;
    gpart[e] += g;
  }
}

// Step 3: one thread per (b, t, m) with m < dk a row i (dq, dk, deta partial) and m >= dk a
// column j = m - dk (dv). Every output element is written once, so there are no atomics.
template <typename T>
__global__ void hebbian_input_grad_kernel(const T* k, const T* v, const T* dr, T eta, int64_t B,
                                          int64_t Tn, int64_t dk, int64_t dv, int64_t start,
                                          int64_t len, int64_t cl, const T* states, const T* D,
                                          T* dq, T* dkk, T* dvv, double* epart) {
  const int64_t S = dk * dv, M = dk + dv;
  ENGRAM_GRID_STRIDE(x, B * len * M) {
    const int64_t b = x / (len * M), s = (x / M) % len, m = x % M, t = start + s;
    const T* Ht = states + (b * (cl + 1) + s + 1) * S;  // H_t
    const T* Dt = D + (b * cl + s) * S;
    if (m < dk) {
      const int64_t i = m;
      const T* drt = dr + (b * Tn + t) * dv;
      const T* vt = v + (b * Tn + t) * dv;
      T dq_i = 0, dHv = 0;
      for (int64_t j = 0; j < dv; ++j) {
        dq_i += Ht[i * dv + j] * drt[j];
        dHv += Dt[i * dv + j] * vt[j];
      }
      const T ki = k[(b * Tn + t) * dk + i];
      dq[(b * Tn + t) * dk + i] = dq_i;
      dkk[(b * Tn + t) * dk + i] = eta * dHv;
      epart[(b * Tn + t) * dk + i] = double(ki) * double(dHv);  // k_t^T dH v_t, one row
    } else {
      const int64_t j = m - dk;
      const T* kt = k + (b * Tn + t) * dk;
      T acc = 0;
      for (int64_t i = 0; i < dk; ++i) acc += (eta * kt[i]) * Dt[i * dv + j];
      dvv[(b * Tn + t) * dv + j] = acc;
    }
  }
}

// out[0] = sum x, out[1] = sum y, by one block in a fixed order (deterministic).
__global__ void sum_two_kernel(const double* x, int64_t nx, const double* y, int64_t ny,
                               double* out) {
  __shared__ double red[32];
  double sx = 0, sy = 0;
  for (int64_t i = threadIdx.x; i < nx; i += blockDim.x) sx += x[i];
  for (int64_t i = threadIdx.x; i < ny; i += blockDim.x) sy += y[i];
  sx = block_sum(sx, red);
  sy = block_sum(sy, red);
  if (threadIdx.x == 0) {
    out[0] = sx;
    out[1] = sy;
  }
}

static void check_shape(Tref t, const Shape& want, DType dt, const char* op, const char* what) {
  require_contiguous(t, op, what);
  ENGRAM_CHECK(t.shape() == want && t.dtype() == dt, "{}: {} should be {} {}, got {} {}", op, what,
               dtype_name(dt), shape_str(want), dtype_name(t.dtype()), shape_str(t.shape()));
}

// A window of forward steps whose states fit in a bounded scratch buffer (any size works: the
// checkpoints are written at t % chunk == 0 whatever the window).
static int64_t forward_window(int64_t B, int64_t S, int64_t Tn, size_t elem) {
  const int64_t per_step = std::max<int64_t>(1, B * S * (int64_t)elem);
  const int64_t cap = std::max<int64_t>(1, (int64_t(1) << 28) / per_step);
  return std::max<int64_t>(1, std::min<int64_t>({Tn, int64_t(256), cap}));
}

template <typename T>
static void hebbian_forward_impl(Tref q, Tref k, Tref v, T gamma, T eta, Tref h0, int64_t chunk,
                                 Tref r, Tref h_last, Tref ckpt) {
  const int64_t B = q.shape()[0], Tn = q.shape()[1], dk = q.shape()[2], dv = v.shape()[2];
  const int64_t S = dk * dv, n_chunks = (Tn + chunk - 1) / chunk;
  if (Tn == 0 || B * S == 0) {  // no step (or an empty state): h_last = h0, r is all zeros
    if (B * S > 0)
      ENGRAM_CUDA_CHECK(cudaMemcpyAsync(h_last.data<T>(), h0.data<T>(), B * S * sizeof(T),
                                        cudaMemcpyDeviceToDevice, stream()),
                        "hebbian_scan");
    if (r.numel() > 0)
      ENGRAM_CUDA_CHECK(cudaMemsetAsync(r.data<T>(), 0, r.numel() * sizeof(T), stream()),
                        "hebbian_scan");
    return;
  }
  const int64_t W = forward_window(B, S, Tn, sizeof(T));
  Scratch states(size_t(B * W * S) * sizeof(T));
  for (int64_t t0 = 0; t0 < Tn; t0 += W) {
    const int64_t len = std::min(W, Tn - t0);
    const T* init = t0 == 0 ? h0.data<T>() : h_last.data<T>();  // the running state is h_last
    hebbian_advance_kernel<T><<<blocks_for(B * S), kThreads, 0, stream()>>>(
        k.data<T>(), v.data<T>(), gamma, eta, B, Tn, dk, dv, t0, len, init, S, states.as<T>(),
        W * S, false, h_last.data<T>(), ckpt.data<T>(), chunk, n_chunks);
    check_launch("hebbian_scan");
    hebbian_recall_kernel<T><<<blocks_for(B * len * dv), kThreads, 0, stream()>>>(
        q.data<T>(), states.as<T>(), W * S, B, Tn, dk, dv, t0, len, r.data<T>());
    check_launch("hebbian_scan");
  }
}

static void hebbian_scan(Tref q, Tref k, Tref v, double gamma, double eta, Tref h0, int64_t chunk,
                         Tref r, Tref h_last, Tref ckpt) {
  const char* op = "hebbian_scan";
  require_contiguous(q, op, "q");
  ENGRAM_CHECK(q.dim() == 3 && v.dim() == 3,
               "{}: expected q [B, T, dk] and v [B, T, dv], got {} and {}", op,
               shape_str(q.shape()), shape_str(v.shape()));
  ENGRAM_CHECK(chunk > 0, "{}: chunk must be positive, got {}", op, chunk);
  const int64_t B = q.shape()[0], Tn = q.shape()[1], dk = q.shape()[2], dv = v.shape()[2];
  const DType dt = q.dtype();
  check_shape(k, q.shape(), dt, op, "k");
  check_shape(v, {B, Tn, dv}, dt, op, "v");
  check_shape(h0, {B, dk, dv}, dt, op, "h0");
  check_shape(r, {B, Tn, dv}, dt, op, "r");
  check_shape(h_last, {B, dk, dv}, dt, op, "h_last");
  check_shape(ckpt, {B, (Tn + chunk - 1) / chunk, dk, dv}, dt, op, "checkpoints");
  ENGRAM_DISPATCH_FLOAT(dt, op, [&] {
    hebbian_forward_impl<scalar_t>(q, k, v, scalar_t(gamma), scalar_t(eta), h0, chunk, r, h_last,
                                   ckpt);
  });
}

template <typename T>
static void hebbian_backward_impl(Tref q, Tref k, Tref v, T gamma, T eta, Tref ckpt, int64_t chunk,
                                  Tref dr, Tref dh_last, bool detach, Tref dq, Tref dk, Tref dv,
                                  Tref dh0, double* grads) {
  const int64_t B = q.shape()[0], Tn = q.shape()[1], dkn = q.shape()[2], dvn = v.shape()[2];
  const int64_t S = dkn * dvn, n_chunks = (Tn + chunk - 1) / chunk, cl = std::min(chunk, Tn);
  const char* op = "hebbian_scan_backward";
  // the running gradient dH starts as dh_last (or 0) and lives in dh0
  if (B * S > 0) {
    if (dh_last.defined())
      ENGRAM_CUDA_CHECK(cudaMemcpyAsync(dh0.data<T>(), dh_last.data<T>(), B * S * sizeof(T),
                                        cudaMemcpyDeviceToDevice, stream()),
                        op);
    else ENGRAM_CUDA_CHECK(cudaMemsetAsync(dh0.data<T>(), 0, B * S * sizeof(T), stream()), op);
  }
  if (Tn == 0 || B == 0) return;  // no step: dgamma = deta = 0, nothing else to write
  Scratch states(size_t(B * (cl + 1) * S) * sizeof(T)), D(size_t(B * cl * S) * sizeof(T));
  Scratch gpart(size_t(B * S) * sizeof(double)), epart(size_t(B * Tn * dkn) * sizeof(double));
  Scratch sums(2 * sizeof(double));
  if (B * S > 0)
    ENGRAM_CUDA_CHECK(cudaMemsetAsync(gpart.as<double>(), 0, B * S * sizeof(double), stream()), op);
  for (int64_t c = n_chunks - 1; c >= 0; --c) {
    const int64_t start = c * chunk, len = std::min(chunk, Tn - start);
    if (B * S > 0) {
      hebbian_advance_kernel<T><<<blocks_for(B * S), kThreads, 0, stream()>>>(
          k.data<T>(), v.data<T>(), gamma, eta, B, Tn, dkn, dvn, start, len,
          ckpt.data<T>() + c * S, n_chunks * S, states.as<T>(), (cl + 1) * S, true, nullptr,
          nullptr, chunk, n_chunks);
      check_launch(op);
      hebbian_state_grad_kernel<T><<<blocks_for(B * S), kThreads, 0, stream()>>>(
          q.data<T>(), dr.data<T>(), gamma, detach, B, Tn, dkn, dvn, start, len, cl,
          states.as<T>(), D.as<T>(), dh0.data<T>(), gpart.as<double>());
      check_launch(op);
    }
    // with an empty state (dk or dv 0) this still writes the zero dq/dk or dv
    const int64_t n = B * len * (dkn + dvn);
    if (n > 0) {
      hebbian_input_grad_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(
          k.data<T>(), v.data<T>(), dr.data<T>(), eta, B, Tn, dkn, dvn, start, len, cl,
          states.as<T>(), D.as<T>(), dq.data<T>(), dk.data<T>(), dv.data<T>(), epart.as<double>());
      check_launch(op);
    }
  }
  sum_two_kernel<<<1, 1024, 0, stream()>>>(gpart.as<double>(), B * S, epart.as<double>(),
                                           B * Tn * dkn, sums.as<double>());
  check_launch(op);
  double host[2] = {0, 0};
  ENGRAM_CUDA_CHECK(cudaMemcpyAsync(host, sums.as<double>(), sizeof(host), cudaMemcpyDeviceToHost,
                                    stream()),
                    op);
  synchronize(op);
  grads[0] += host[0];
  grads[1] += host[1];
}

static void hebbian_scan_backward(Tref q, Tref k, Tref v, double gamma, double eta, Tref ckpt,
                                  int64_t chunk, Tref dr, Tref dh_last, bool detach, Tref dq,
                                  Tref dk, Tref dv, Tref dh0, Tref grads) {
  const char* op = "hebbian_scan_backward";
  require_contiguous(q, op, "q");
  ENGRAM_CHECK(q.dim() == 3 && v.dim() == 3,
               "{}: expected q [B, T, dk] and v [B, T, dv], got {} and {}", op,
               shape_str(q.shape()), shape_str(v.shape()));
  ENGRAM_CHECK(chunk > 0, "{}: chunk must be positive, got {}", op, chunk);
  const int64_t B = q.shape()[0], Tn = q.shape()[1], dkn = q.shape()[2], dvn = v.shape()[2];
  const DType dt = q.dtype();
  check_shape(k, q.shape(), dt, op, "k");
  check_shape(v, {B, Tn, dvn}, dt, op, "v");
  check_shape(ckpt, {B, (Tn + chunk - 1) / chunk, dkn, dvn}, dt, op, "checkpoints");
  check_shape(dr, {B, Tn, dvn}, dt, op, "dr");
  if (dh_last.defined()) check_shape(dh_last, {B, dkn, dvn}, dt, op, "dh_last");
  check_shape(dq, q.shape(), dt, op, "dq");
  check_shape(dk, q.shape(), dt, op, "dk");
  check_shape(dv, {B, Tn, dvn}, dt, op, "dv");
  check_shape(dh0, {B, dkn, dvn}, dt, op, "dh0");
  ENGRAM_CHECK(grads.defined() && grads.device() == Device::cpu && grads.dtype() == DType::f64 &&
                   grads.is_contiguous() && grads.numel() >= 2,
               "{}: grads must be a contiguous 2-element f64 CPU tensor", op);
  double* g = grads.data<double>();
  ENGRAM_DISPATCH_FLOAT(dt, op, [&] {
    hebbian_backward_impl<scalar_t>(q, k, v, scalar_t(gamma), scalar_t(eta), ckpt, chunk, dr,
                                    dh_last, detach, dq, dk, dv, dh0, g);
  });
}

void register_scan(Backend& b) {
  b.linear_scan = linear_scan;
  b.linear_scan_reverse = linear_scan_reverse;
  b.hebbian_scan = hebbian_scan;
  b.hebbian_scan_backward = hebbian_scan_backward;
}

}  // namespace engram::cuda
