// cuda/cuda_ssm.cu — Mamba's two fused kernels on the GPU, mirroring core/cpu/cpu_ssm_mamba.cpp
// (which has the derivations), plus register_ssm, which also stores the 2x2-block scan and the
// Cauchy kernel of cuda/cuda_ssm_scan.cu (mirroring core/cpu/cpu_ssm_scan.cpp).
//
// causal_conv1d (depthwise, over time), xp = [x0; x] [B, K-1+T, D], w [D, K], all contiguous:
//   forward   y[b, t, d]   = bias[d] + sum_k w[d, k] xp[b, t + k, d]       one thread per (b, t, d)
//   backward  dxp[b, s, d] = sum_k w[d, k] dy[b, s - k, d]  (0 <= s-k < T)   one thread per (b, s, d)
//             dw[d, k]     = sum_{b,t} dy[b, t, d] xp[b, t + k, d],  dbias[d] = sum_{b,t} dy[b, t, d]
// dw and dbias: one thread per (k, d) summing over (b, t) in the CPU's order (b, then t,
// ascending): deterministic, and consecutive threads read consecutive channels.
//
// selective_scan, per lane (b, d) a diagonal recurrence over N states:
//   a_t = exp(dt_t A[d]),  h_t = a_t h_{t-1} + dt_t u_t Bm_t,  y_t = Cm_t . h_t + Dskip u_t,
//   out_t = y_t * silu(z_t)
// u, dt, z [B, T, D]; A [D, N]; Bm, Cm [B, T, N]; Dskip [D]; h0, h_last [B, D, N];
// checkpoints [B, ceil(T/chunk), D, N] = the state entering each chunk.
// One thread per lane (b, d) walks time, its N states in scratch laid out [N][B*D] (lane fastest,
// so a warp's accesses are coalesced); y sums over n ascending as the CPU does.
// Backward (equations in cpu_ssm_mamba.cpp), chunk by chunk from the last, one launch each:
//   1. per lane: recompute the chunk's states h_{start-1} .. h_{start+len-1} from its checkpoint
//      (the same expressions as the forward), then walk the chunk backwards carrying dh (the
//      gradient reaching h_t, scratch [N][B*D]), accumulating dA (per lane, summed over t) and
//      dDskip (per lane) and writing du, ddt, dz, which the lane owns. dBm and dCm sum over
//      channels, so the lane stores its terms: gh dt u in a [len][N][B*D] buffer and gy h_t in
//      the state slot of h_t, which no later (earlier-in-time) step reads again;
//   2. per (b, t, n) of the chunk: dBm, dCm = those terms summed over d ascending.
// At the end dA[d, n] and dDskip[d] sum the per-lane partials over b ascending (the CPU's order),
// and dh0 is the remaining dh. No atomics: every result is the same on every run.
// The CPU's decays are a polynomial exp (vexp, within an ulp of exp); here exp/expf. The CPU
// stores a_t in the recompute; here it is recomputed in the walk from the same dt A (same value).
#include <algorithm>

#include "cuda/common.cuh"

namespace engram::cuda {

void register_ssm_scan(Backend& b);  // cuda_ssm_scan.cu: linear_scan_2x2(_reverse), cauchy_kernel(_backward)

namespace {  // this file's types and kernels: no clash with another file's names

static __device__ __forceinline__ float dexp(float x) { return expf(x); }
static __device__ __forceinline__ double dexp(double x) { return exp(x); }
template <typename T> static __device__ __forceinline__ T dsigmoid(T x) {
  return T(1) / (T(1) + dexp(-x));
}

// A contiguous operand of the given shape and dtype (optional ones are checked when defined).
static void check_operand(Tref t, const Shape& want, DType dt, const char* op, const char* what,
                          bool optional = false) {
  if (optional && !t.defined()) return;
  require_contiguous(t, op, what);
  ENGRAM_CHECK(t.shape() == want && t.dtype() == dt, "{}: {} should be {} {}, got {} {}", op, what,
               dtype_name(dt), shape_str(want), dtype_name(t.dtype()), shape_str(t.shape()));
}
template <typename T> static const T* ptr_or_null(Tref t) { return t.defined() ? t.data<T>() : nullptr; }
template <typename T> static T* mut_or_null(Tref t) { return t.defined() ? t.data<T>() : nullptr; }

// ================================================================ causal depthwise conv1d

struct ConvDims {
  int64_t B, L, D, K;
};

static ConvDims conv_dims(Tref xp, Tref w, const char* op) {
  require_contiguous(xp, op, "xp");
  require_contiguous(w, op, "w");
  ENGRAM_CHECK(xp.dim() == 3 && w.dim() == 2 && w.shape()[0] == xp.shape()[2] && w.shape()[1] > 0 &&
                   xp.shape()[1] >= w.shape()[1] - 1 && w.dtype() == xp.dtype(),
               "{}: expected xp [B, K-1+T, D] and w [D, K] of one dtype, got xp {} {}, w {} {}", op,
               dtype_name(xp.dtype()), shape_str(xp.shape()), dtype_name(w.dtype()),
               shape_str(w.shape()));
  const int64_t K = w.shape()[1];
  return {xp.shape()[0], xp.shape()[1] - (K - 1), xp.shape()[2], K};
}

template <typename T> static void conv_forward_impl(Tref xp_t, Tref w_t, Tref bias_t, ConvDims s, Tref y_t) {
  const T *xp = xp_t.data<T>(), *w = w_t.data<T>(), *bias = ptr_or_null<T>(bias_t);
  T* y = y_t.data<T>();
  const int64_t L = s.L, D = s.D, K = s.K, Lp = L + K - 1;
  for_each_index(s.B * L * D, [=] __device__(int64_t i) {
    const int64_t d = i % D, t = (i / D) % L, b = i / (D * L);
    T acc = bias ? bias[d] : T(0);
    for (int64_t k = 0; k < K; ++k) acc += w[d * K + k] * xp[(b * Lp + t + k) * D + d];
    y[i] = acc;
  }, "causal_conv1d");
}

template <typename T>
static void conv_backward_impl(Tref xp_t, Tref w_t, Tref dy_t, ConvDims s, Tref dxp_t, Tref dw_t,
                               Tref dbias_t) {
  const T *xp = xp_t.data<T>(), *w = w_t.data<T>(), *dy = dy_t.data<T>();
  T *dxp = dxp_t.data<T>(), *dw = dw_t.data<T>(), *dbias = mut_or_null<T>(dbias_t);
  const int64_t B = s.B, L = s.L, D = s.D, K = s.K, Lp = L + K - 1;
  const char* op = "causal_conv1d_backward";
  // dxp row s gathers dy rows s - k for the k that land inside [0, T), k ascending
  for_each_index(B * Lp * D, [=] __device__(int64_t i) {
    const int64_t d = i % D, sr = (i / D) % Lp, b = i / (D * Lp);
    T acc = 0;
    for (int64_t k = sr - L + 1 > 0 ? sr - L + 1 : 0; k < K && k <= sr; ++k)
      acc += w[d * K + k] * dy[(b * L + sr - k) * D + d];
    dxp[i] = acc;
  }, op);
  // row k < K of (k, d) is dw[d, k]; row K is dbias[d] (only when wanted)
  for_each_index((K + (dbias ? 1 : 0)) * D, [=] __device__(int64_t i) {
    const int64_t d = i % D, k = i / D;
    T acc = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < L; ++t) {
        const T g = dy[(b * L + t) * D + d];
        acc += k < K ? g * xp[(b * Lp + t + k) * D + d] : g;
      }
    if (k < K) dw[d * K + k] = acc;
    else dbias[d] = acc;
  }, op);
}

static void causal_conv1d(Tref xp, Tref w, Tref bias, Tref y) {
  const char* op = "causal_conv1d";
  const ConvDims s = conv_dims(xp, w, op);
  check_operand(bias, {s.D}, xp.dtype(), op, "bias", true);
  check_operand(y, {s.B, s.L, s.D}, xp.dtype(), op, "y");
  ENGRAM_DISPATCH_FLOAT(xp.dtype(), op, [&] { conv_forward_impl<scalar_t>(xp, w, bias, s, y); });
}

static void causal_conv1d_backward(Tref xp, Tref w, Tref dy, Tref dxp, Tref dw, Tref dbias) {
  const char* op = "causal_conv1d_backward";
  const ConvDims s = conv_dims(xp, w, op);
  check_operand(dy, {s.B, s.L, s.D}, xp.dtype(), op, "dy");
  check_operand(dxp, xp.shape(), xp.dtype(), op, "dxp");
  check_operand(dw, w.shape(), xp.dtype(), op, "dw");
  check_operand(dbias, {s.D}, xp.dtype(), op, "dbias", true);
  ENGRAM_DISPATCH_FLOAT(xp.dtype(), op,
                        [&] { conv_backward_impl<scalar_t>(xp, w, dy, s, dxp, dw, dbias); });
}

// ================================================================ selective scan

struct ScanDims {
  int64_t B, L, D, N, chunk, n_chunks;
};

template <typename T> struct ScanArgs {
  const T *u, *dt, *A, *Bm, *Cm, *Dskip, *z;  // Dskip, z may be null
};

// One recurrence step of one state: the forward and the backward's recompute share it, so both
// round (and contract into FMAs) the same way.
template <typename T> static __device__ __forceinline__ T scan_step(T a, T hp, T dbu, T Bn) {
  return a * hp + dbu * Bn;
}

// One thread per lane (b, d); h = scratch [N][B*D].
template <typename T>
__global__ void scan_forward_kernel(ScanArgs<T> a, const T* h0, ScanDims s, T* out, T* h_last,
                                    T* ckpt, T* hs) {
  const int64_t BD = s.B * s.D, N = s.N, D = s.D;
  ENGRAM_GRID_STRIDE(lane, BD) {
    const int64_t b = lane / D, d = lane % D;
    T* h = hs + lane;
    for (int64_t n = 0; n < N; ++n) h[n * BD] = h0 ? h0[lane * N + n] : T(0);
    const T Dl = a.Dskip ? a.Dskip[d] : T(0);
    const T* Ad = a.A + d * N;
    for (int64_t t = 0; t < s.L; ++t) {
      if (t % s.chunk == 0) {
        T* c = ckpt + ((b * s.n_chunks + t / s.chunk) * D + d) * N;
        for (int64_t n = 0; n < N; ++n) c[n] = h[n * BD];
      }
      const int64_t row = b * s.L + t, i = row * D + d;
      const T dt = a.dt[i], u = a.u[i], dbu = dt * u;
      const T *Bt = a.Bm + row * N, *Ct = a.Cm + row * N;
      T y = 0;
      for (int64_t n = 0; n < N; ++n) {
        const T hv = scan_step(dexp(dt * Ad[n]), h[n * BD], dbu, Bt[n]);
        h[n * BD] = hv;
        y += Ct[n] * hv;
      }
      if (a.Dskip) y += Dl * u;
      if (a.z) {
        const T zl = a.z[i];
        y *= zl * dsigmoid(zl);
      }
      out[i] = y;
    }
    for (int64_t n = 0; n < N; ++n) h_last[lane * N + n] = h[n * BD];
  }
}

// The backward's scratch, all lane-fastest: states [(len+1)][N][BD], dBc [len][N][BD],
// dh, dA [N][BD], dD [BD].
template <typename T> struct ScanWork {
  T *states, *dBc, *dh, *dA, *dD;
};
template <typename T> struct ScanGrads {
  T *du, *ddt, *dz;  // dz null when there is no z (or it is not wanted)
};

// Steps 1 of the backward for chunk c (see the top of the file), one thread per lane.
template <typename T>
__global__ void scan_backward_chunk_kernel(ScanArgs<T> a, const T* ckpt, const T* dout, ScanDims s,
                                           int64_t c, ScanWork<T> w, ScanGrads<T> g) {
  const int64_t BD = s.B * s.D, N = s.N, D = s.D, L = s.L, S = N * BD;
  const int64_t start = c * s.chunk, len = s.chunk < L - start ? s.chunk : L - start;
  ENGRAM_GRID_STRIDE(lane, BD) {
    const int64_t b = lane / D, d = lane % D;
    T *st = w.states + lane, *dBc = w.dBc + lane, *dh = w.dh + lane, *dA = w.dA + lane;
    const T* Ad = a.A + d * N;
    // recompute the chunk's states from its checkpoint
    const T* ck = ckpt + ((b * s.n_chunks + c) * D + d) * N;
    for (int64_t n = 0; n < N; ++n) st[n * BD] = ck[n];
    for (int64_t k = 0; k < len; ++k) {
      const int64_t row = b * L + start + k, i = row * D + d;
      const T dt = a.dt[i], dbu = dt * a.u[i];
      const T* Bt = a.Bm + row * N;
      for (int64_t n = 0; n < N; ++n)
        st[(k + 1) * S + n * BD] = scan_step(dexp(dt * Ad[n]), st[k * S + n * BD], dbu, Bt[n]);
    }
    // walk the chunk backwards
    const T Dl = a.Dskip ? a.Dskip[d] : T(0);
    T dD = w.dD[lane];
    for (int64_t k = len - 1; k >= 0; --k) {
      const int64_t row = b * L + start + k, i = row * D + d;
      const T dt = a.dt[i], u = a.u[i], go = dout[i];
      T zl = 0, sg = 0, gy = go;
      if (a.z) zl = a.z[i], sg = dsigmoid(zl), gy = go * zl * sg;
      const T dbu = dt * u;
      T y = 0, ddt = 0, du = 0;
      const T *Bt = a.Bm + row * N, *Ct = a.Cm + row * N;
      for (int64_t n = 0; n < N; ++n) {
        const T Bn = Bt[n], Cn = Ct[n], An = Ad[n];
        T* htp = st + (k + 1) * S + n * BD;
        const T ht = *htp, hp = st[k * S + n * BD], ex = dexp(dt * An);
        y += Cn * ht;
        const T gh = dh[n * BD] + gy * Cn;  // the full gradient of h_t
        *htp = gy * ht;                     // dCm's term; h_t is not needed any more
        const T e = gh * hp * ex;           // of dt_t A
        ddt += e * An + gh * u * Bn;
        dA[n * BD] += e * dt;
        du += gh * dt * Bn;
        dBc[k * S + n * BD] = gh * dbu;     // dBm's term
        dh[n * BD] = gh * ex;               // into h_{t-1}
      }
      if (a.Dskip) y += Dl * u, du += gy * Dl, dD += gy * u;
      if (g.dz) g.dz[i] = go * y * sg * (T(1) + zl * (T(1) - sg));  // dz_t = g_t y_t silu'(z_t)
      g.du[i] = du;
      g.ddt[i] = ddt;
    }
    w.dD[lane] = dD;
  }
}

// Step 2: dBm, dCm of the chunk's steps, one thread per (b, k, n), d ascending.
template <typename T>
__global__ void scan_reduce_chunk_kernel(ScanWork<T> w, ScanDims s, int64_t c, T* dB, T* dC) {
  const int64_t BD = s.B * s.D, N = s.N, D = s.D, L = s.L, S = N * BD;
  const int64_t start = c * s.chunk, len = s.chunk < L - start ? s.chunk : L - start;
  ENGRAM_GRID_STRIDE(i, s.B * len * N) {
    const int64_t n = i % N, k = (i / N) % len, b = i / (N * len);
    const T* pb = w.dBc + k * S + n * BD + b * D;
    const T* pc = w.states + (k + 1) * S + n * BD + b * D;
    T sb = 0, sc = 0;
    for (int64_t d = 0; d < D; ++d) sb += pb[d], sc += pc[d];
    const int64_t o = (b * L + start + k) * N + n;
    dB[o] = sb;
    dC[o] = sc;
  }
}

template <typename T>
static void scan_forward_impl(const ScanArgs<T>& a, const T* h0, const ScanDims& s, T* out,
                              T* h_last, T* ckpt) {
  const int64_t BD = s.B * s.D;
  Scratch hs(sizeof(T) * BD * s.N);
  scan_forward_kernel<T><<<blocks_for(BD), kThreads, 0, stream()>>>(a, h0, s, out, h_last, ckpt,
                                                                    hs.as<T>());
  check_launch("selective_scan");
}

template <typename T>
static void scan_backward_impl(const ScanArgs<T>& a, const T* ckpt, const T* dout, const T* dh_last,
                               const ScanDims& s, ScanGrads<T> g, T* dA, T* dB, T* dC, T* dDskip,
                               T* dh0) {
  const char* op = "selective_scan_backward";
  const int64_t B = s.B, D = s.D, N = s.N, BD = B * D, S = N * BD;
  const int64_t cl = std::min(s.chunk, s.L);  // the longest chunk
  Scratch buf(sizeof(T) * ((2 * cl + 3) * S + BD));
  ScanWork<T> w;
  w.states = buf.as<T>();
  w.dBc = w.states + (cl + 1) * S;
  w.dh = w.dBc + cl * S;
  w.dA = w.dh + S;
  w.dD = w.dA + S;
  // dh <- dh_last (or 0), per-lane dA and dDskip <- 0
  for_each_index(S, [=] __device__(int64_t i) {
    const int64_t n = i / BD, lane = i % BD;
    w.dh[i] = dh_last ? dh_last[lane * N + n] : T(0);
    w.dA[i] = 0;
  }, op);
  for_each_index(BD, [=] __device__(int64_t lane) { w.dD[lane] = 0; }, op);
  for (int64_t c = s.n_chunks - 1; c >= 0; --c) {
    const int64_t len = std::min(s.chunk, s.L - c * s.chunk);
    scan_backward_chunk_kernel<T><<<blocks_for(BD), kThreads, 0, stream()>>>(a, ckpt, dout, s, c, w, g);
    check_launch(op);
    if (B * len * N > 0) {
      scan_reduce_chunk_kernel<T><<<blocks_for(B * len * N), kThreads, 0, stream()>>>(w, s, c, dB, dC);
      check_launch(op);
    }
  }
  // dA[d, n] and dDskip[d]: per-lane partials summed over b ascending; dh0 = what dh holds now
  for_each_index(D * N, [=] __device__(int64_t i) {
    const int64_t d = i / N, n = i % N;
    T acc = 0;
    for (int64_t b = 0; b < B; ++b) acc += w.dA[n * BD + b * D + d];
    dA[i] = acc;
  }, op);
  if (dDskip) for_each_index(D, [=] __device__(int64_t d) {
    T acc = 0;
    for (int64_t b = 0; b < B; ++b) acc += w.dD[b * D + d];
    dDskip[d] = acc;
  }, op);
  if (dh0) for_each_index(S, [=] __device__(int64_t i) {
    const int64_t lane = i / N, n = i % N;
    dh0[i] = w.dh[n * BD + lane];
  }, op);
}

static ScanDims scan_dims(Tref u, Tref A, int64_t chunk, const char* op) {
  require_contiguous(u, op, "u");
  require_contiguous(A, op, "A");
  ENGRAM_CHECK(chunk > 0, "{}: chunk must be positive, got {}", op, chunk);
  ENGRAM_CHECK(u.dim() == 3 && A.dim() == 2 && A.shape()[0] == u.shape()[2],
               "{}: expected u [B, T, D] and A [D, N], got u {}, A {}", op, shape_str(u.shape()),
               shape_str(A.shape()));
  ScanDims s;
  s.B = u.shape()[0], s.L = u.shape()[1], s.D = u.shape()[2], s.N = A.shape()[1];
  s.chunk = chunk, s.n_chunks = (s.L + chunk - 1) / chunk;
  return s;
}

// Shapes and dtypes of the operands both directions share.
static void check_scan_inputs(const ScanDims& s, Tref u, Tref dt, Tref A, Tref Bm, Tref Cm,
                              Tref Dskip, Tref z, const char* op) {
  const DType t = u.dtype();
  check_operand(dt, u.shape(), t, op, "dt");
  check_operand(A, A.shape(), t, op, "A");
  check_operand(Bm, {s.B, s.L, s.N}, t, op, "Bm");
  check_operand(Cm, {s.B, s.L, s.N}, t, op, "Cm");
  check_operand(Dskip, {s.D}, t, op, "Dskip", true);
  check_operand(z, u.shape(), t, op, "z", true);
}

static void selective_scan(Tref u, Tref dt, Tref A, Tref Bm, Tref Cm, Tref Dskip, Tref z, Tref h0,
                           int64_t chunk, Tref out, Tref h_last, Tref ckpt) {
  const char* op = "selective_scan";
  const ScanDims s = scan_dims(u, A, chunk, op);
  check_scan_inputs(s, u, dt, A, Bm, Cm, Dskip, z, op);
  const Shape state{s.B, s.D, s.N};
  check_operand(h0, state, u.dtype(), op, "h0", true);
  check_operand(out, u.shape(), u.dtype(), op, "out");
  check_operand(h_last, state, u.dtype(), op, "h_last");
  check_operand(ckpt, {s.B, s.n_chunks, s.D, s.N}, u.dtype(), op, "checkpoints");
  if (s.B * s.D == 0) return;
  ENGRAM_DISPATCH_FLOAT(u.dtype(), op, [&] {
    using T = scalar_t;
    ScanArgs<T> a{u.data<T>(), dt.data<T>(), A.data<T>(), Bm.data<T>(), Cm.data<T>(),
                  ptr_or_null<T>(Dskip), ptr_or_null<T>(z)};
    scan_forward_impl<T>(a, ptr_or_null<T>(h0), s, out.data<T>(), h_last.data<T>(), ckpt.data<T>());
  });
}

static void selective_scan_backward(Tref u, Tref dt, Tref A, Tref Bm, Tref Cm, Tref Dskip, Tref z,
                                    Tref ckpt, int64_t chunk, Tref dout, Tref dh_last, Tref du,
                                    Tref ddt, Tref dA, Tref dBm, Tref dCm, Tref dDskip, Tref dz,
                                    Tref dh0) {
  const char* op = "selective_scan_backward";
  const ScanDims s = scan_dims(u, A, chunk, op);
  check_scan_inputs(s, u, dt, A, Bm, Cm, Dskip, z, op);
  const Shape state{s.B, s.D, s.N};
  const DType t = u.dtype();
  check_operand(ckpt, {s.B, s.n_chunks, s.D, s.N}, t, op, "checkpoints");
  check_operand(dout, u.shape(), t, op, "dout");
  check_operand(dh_last, state, t, op, "dh_last", true);
  check_operand(du, u.shape(), t, op, "du");
  check_operand(ddt, u.shape(), t, op, "ddt");
  check_operand(dA, A.shape(), t, op, "dA");
  check_operand(dBm, Bm.shape(), t, op, "dBm");
  check_operand(dCm, Cm.shape(), t, op, "dCm");
  check_operand(dDskip, {s.D}, t, op, "dDskip", true);
  check_operand(dz, u.shape(), t, op, "dz", true);
  check_operand(dh0, state, t, op, "dh0", true);
  ENGRAM_DISPATCH_FLOAT(t, op, [&] {
    using T = scalar_t;
    ScanArgs<T> a{u.data<T>(), dt.data<T>(), A.data<T>(), Bm.data<T>(), Cm.data<T>(),
                  ptr_or_null<T>(Dskip), ptr_or_null<T>(z)};
    // dz only where there is a z (the CPU leaves it alone otherwise)
    ScanGrads<T> g{du.data<T>(), ddt.data<T>(), a.z ? mut_or_null<T>(dz) : nullptr};
    // (B = 0 runs too: no lanes, and dA, dDskip come out as empty sums, 0)
    scan_backward_impl<T>(a, ckpt.data<T>(), dout.data<T>(), ptr_or_null<T>(dh_last), s, g,
                          dA.data<T>(), dBm.data<T>(), dCm.data<T>(), mut_or_null<T>(dDskip),
                          mut_or_null<T>(dh0));
  });
}

}  // namespace

void register_ssm(Backend& b) {
  b.causal_conv1d = causal_conv1d;
  b.causal_conv1d_backward = causal_conv1d_backward;
  b.selective_scan = selective_scan;
  b.selective_scan_backward = selective_scan_backward;
  register_ssm_scan(b);
}

}  // namespace engram::cuda
