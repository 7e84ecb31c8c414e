// core/cpu/cpu_ssm_mamba.cpp — Mamba's two fused kernels on the CPU (Gu & Dao 2023, arXiv
// 2312.00752; state-spaces/mamba selective_scan_ref and csrc/selective_scan/*.cuh).
//
// causal_conv1d (depthwise, over time), xp = [x0; x] [B, K-1+T, D], w [D, K]:
//   forward   y[b, t, d]    = bias[d] + sum_k w[d, k] xp[b, t + k, d]
//   backward  dxp[b, s, d]  = sum_k w[d, k] dy[b, s - k, d]     (0 <= s - k < T)
//             dw[d, k]      = sum_{b,t} dy[b, t, d] xp[b, t + k, d] ;  dbias[d] = sum_{b,t} dy[b, t, d]
//
// selective_scan, per batch b and channel d, a diagonal recurrence over N states
// (u, dt, z [B, T, D]; A [D, N]; Bm, Cm [B, T, N]; Dskip [D]; h [B, D, N]):
//   a_t = exp(dt_t A[d])          (zero-order hold of A)
//   h_t = a_t * h_{t-1} + dt_t u_t Bm_t          (Euler for B, as the reference does)
//   y_t = Cm_t . h_t + Dskip u_t ;  out_t = y_t * silu(z_t)
// backward, g_t = dout_t and dh the gradient reaching h_t (dh = dh_last after the last step):
//   gy = g_t silu(z_t) ;  dz_t = g_t y_t silu'(z_t) ;  dDskip += gy u_t
//   dh    += gy Cm_t ;  dCm_t += gy h_t
//   e      = dh * h_{t-1} * a_t                    (the gradient of dt_t A)
//   ddt_t  = sum_n e A + dh u_t Bm_t ;  dA += e dt_t
//   du_t   = sum_n dh dt_t Bm_t + gy Dskip ;  dBm_t += dh dt_t u_t
//   dh    <- dh * a_t                              (into h_{t-1}; what is left at t = 0 is dh0)
// Storing every h_t would cost B T D N numbers; the forward keeps only the state entering each
// chunk of `chunk` steps (checkpoints [B, ceil(T/chunk), D, N], like the CUDA kernel's per-chunk
// prefix) and the backward recomputes one chunk at a time (h and a for its steps) from it.
//
// Work is split over (batch, block of kBlock channels): each task walks time once, reading rows
// of u/dt/z (kBlock contiguous channels, one cache line) and the shared Bm_t, Cm_t rows, with
// its [N, kBlock] state in cache. The vector loops run over the block's channel lanes with the
// state index n fixed, so the forward needs no horizontal sums. exp has to be in those loops,
// so it is a branch-free polynomial (vexp below) that the compiler vectorises, where a libm call
// would run one element at a time and dominate the whole scan. dBm and dCm sum over channels,
// so the backward gives each group of channel blocks its own partial [B, T, N] buffer and adds
// them up after; dA and dDskip sum over batches the same way.
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/backend.h"
#include "core/cpu/kernel_checks.h"
#include "core/cpu/vmath.h"

namespace engram::cpu {

// The scan's task functions are built for SSE2 and AVX2 (ENGRAM_SIMD_CLONES, core/cpu/vmath.h).
constexpr int64_t kBlock = 16;           // channels per task
constexpr int64_t kParallelGrain = 1 << 14;  // elements of work below which one thread runs


template <typename T> static const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}
template <typename T> static T* mut_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// ---------------------------------------------------------------- causal depthwise conv1d
template <typename T>
static void conv_forward_typed(const T* xp, const T* w, const T* bias, int64_t B, int64_t L,
                               int64_t D, int64_t K, T* y) {
  std::vector<T> wt(K * D);  // w transposed to [K, D]: the channel loop reads it contiguously
  for (int64_t d = 0; d < D; ++d)
    for (int64_t k = 0; k < K; ++k) wt[k * D + d] = w[d * K + k];
  const int64_t Lp = L + K - 1;
#pragma omp parallel for collapse(2) schedule(static) if (B * L * D * K > kParallelGrain)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < L; ++t) {
      T* yt = y + (b * L + t) * D;
      if (bias) std::copy(bias, bias + D, yt);
      else std::fill(yt, yt + D, T(0));
      for (int64_t k = 0; k < K; ++k) {
        const T* xr = xp + (b * Lp + t + k) * D;
        const T* wk = wt.data() + k * D;
        for (int64_t d = 0; d < D; ++d) yt[d] += wk[d] * xr[d];
      }
    }
}

template <typename T>
static void conv_backward_typed(const T* xp, const T* w, const T* dy, int64_t B, int64_t L,
                                int64_t D, int64_t K, T* dxp, T* dw, T* dbias) {
  std::vector<T> wt(K * D);
  for (int64_t d = 0; d < D; ++d)
    for (int64_t k = 0; k < K; ++k) wt[k * D + d] = w[d * K + k];
  const int64_t Lp = L + K - 1;
  const bool par = B * L * D * K > kParallelGrain;
  // dxp row s gathers dy rows s - k for the k that land inside [0, T)
#pragma omp parallel for collapse(2) schedule(static) if (par)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < Lp; ++s) {
      T* dr = dxp + (b * Lp + s) * D;
      std::fill(dr, dr + D, T(0));
      for (int64_t k = std::max<int64_t>(0, s - L + 1); k < K && k <= s; ++k) {
        const T* g = dy + (b * L + s - k) * D;
        const T* wk = wt.data() + k * D;
        for (int64_t d = 0; d < D; ++d) dr[d] += wk[d] * g[d];
      }
    }
  // dw, dbias: each thread owns a range of channels and sums over every (b, t)
  const int64_t n_ranges = std::max<int64_t>(1, std::min<int64_t>(par ? omp_get_max_threads() : 1,
                                                                  (D + 7) / 8));
#pragma omp parallel for schedule(static) if (par && n_ranges > 1)
  for (int64_t r = 0; r < n_ranges; ++r) {
    const int64_t d0 = D * r / n_ranges, d1 = D * (r + 1) / n_ranges, nd = d1 - d0;
    std::vector<T> acc((K + 1) * nd, T(0));  // K rows of dw (transposed), then dbias
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < L; ++t) {
        const T* g = dy + (b * L + t) * D + d0;
        for (int64_t k = 0; k < K; ++k) {
          const T* xr = xp + (b * Lp + t + k) * D + d0;
          T* a = acc.data() + k * nd;
          for (int64_t j = 0; j < nd; ++j) a[j] += g[j] * xr[j];
        }
        T* ab = acc.data() + K * nd;
        for (int64_t j = 0; j < nd; ++j) ab[j] += g[j];
      }
    for (int64_t j = 0; j < nd; ++j) {
      for (int64_t k = 0; k < K; ++k) dw[(d0 + j) * K + k] = acc[k * nd + j];
      if (dbias) dbias[d0 + j] = acc[K * nd + j];
    }
  }
}

static void causal_conv1d(Tref xp, Tref w, Tref bias, Tref y) {
  check_contiguous({&xp, &w, &bias, &y}, "causal_conv1d");
  const int64_t B = xp.shape()[0], D = xp.shape()[2], K = w.shape()[1];
  const int64_t L = xp.shape()[1] - (K - 1);
  ENGRAM_DISPATCH_FLOAT(xp.dtype(), "causal_conv1d", [&] {
    using T = scalar_t;
    conv_forward_typed<T>(xp.data<T>(), w.data<T>(), ptr_or_null<T>(bias), B, L, D, K, y.data<T>());
  });
}

static void causal_conv1d_backward(Tref xp, Tref w, Tref dy, Tref dxp, Tref dw, Tref dbias) {
  check_contiguous({&xp, &w, &dy, &dxp, &dw, &dbias}, "causal_conv1d_backward");
  const int64_t B = xp.shape()[0], D = xp.shape()[2], K = w.shape()[1];
  const int64_t L = xp.shape()[1] - (K - 1);
  ENGRAM_DISPATCH_FLOAT(xp.dtype(), "causal_conv1d_backward", [&] {
    using T = scalar_t;
    conv_backward_typed<T>(xp.data<T>(), w.data<T>(), dy.data<T>(), B, L, D, K, dxp.data<T>(),
                           dw.data<T>(), mut_or_null<T>(dbias));
  });
}

// ---------------------------------------------------------------- selective scan
// A task holds its block's [N, D] slices "n-major": x[n * kBlock + j] for channel d0 + j, so
// every loop below runs over the kBlock channel lanes with state n fixed: vertical vector code,
// no horizontal sums in the forward. A block narrower than kBlock (the last one) pads its lanes
// with zeros (A = 0, dt = u = dout = 0), whose contributions are all exactly 0.
struct ScanDims {
  int64_t B, L, D, N, chunk, n_chunks, n_blocks;
};

template <typename T> struct ScanArgs {
  const T *u, *dt, *A, *Bm, *Cm, *Dskip, *z;
};

// rows [d0, d0 + nd) of a row-major [., N] array -> lanes [N][kBlock] (zero padded), and back
template <typename T> static void to_lanes(const T* src, int64_t nd, int64_t N, T* lanes) {
  std::fill(lanes, lanes + N * kBlock, T(0));
  for (int64_t j = 0; j < nd; ++j)
    for (int64_t n = 0; n < N; ++n) lanes[n * kBlock + j] = src[j * N + n];
}
template <typename T> static void from_lanes(const T* lanes, int64_t nd, int64_t N, T* dst) {
  for (int64_t j = 0; j < nd; ++j)
    for (int64_t n = 0; n < N; ++n) dst[j * N + n] = lanes[n * kBlock + j];
}
// nd values of one [B, T, D] row (src at channel d0) -> kBlock lanes (zero padded), and back.
// These run once per token and block: the full block's fixed-length loop inlines (a
// variable-length std::copy would be a memmove call each time).
template <typename T> static inline void row_lanes(const T* src, int64_t nd, T* lanes) {
  if (nd == kBlock) {
    for (int64_t j = 0; j < kBlock; ++j) lanes[j] = src[j];
  } else {
    for (int64_t j = 0; j < kBlock; ++j) lanes[j] = j < nd ? src[j] : T(0);
  }
}
template <typename T> static inline void lanes_row(const T* lanes, int64_t nd, T* dst) {
  if (nd == kBlock) {
    for (int64_t j = 0; j < kBlock; ++j) dst[j] = lanes[j];
  } else {
    for (int64_t j = 0; j < nd; ++j) dst[j] = lanes[j];
  }
}


// One task of the forward: batch b, channels [d0, d0 + nd), all of time. `work` holds
// 2 N kBlock values.
template <typename T>
ENGRAM_SIMD_CLONES static void scan_forward_task(const ScanArgs<T>& a, const T* h0, const ScanDims& s, int64_t b,
                              int64_t d0, int64_t nd, T* out, T* h_last, T* ckpt, T* work) {
  const int64_t N = s.N, D = s.D;
  T* At = work;               // A of the block, [N][kBlock]
  T* h = work + N * kBlock;   // the running state, [N][kBlock]
  to_lanes(a.A + d0 * N, nd, N, At);
  if (h0) to_lanes(h0 + (b * D + d0) * N, nd, N, h);
  else std::fill(h, h + N * kBlock, T(0));
  T Dl[kBlock] = {}, dt[kBlock] = {}, u[kBlock] = {}, dbu[kBlock] = {}, y[kBlock] = {},
    zl[kBlock] = {};
  if (a.Dskip) row_lanes(a.Dskip + d0, nd, Dl);
  for (int64_t t = 0; t < s.L; ++t) {
    if (t % s.chunk == 0) from_lanes(h, nd, N, ckpt + ((b * s.n_chunks + t / s.chunk) * D + d0) * N);
    const int64_t row = b * s.L + t;
    row_lanes(a.dt + row * D + d0, nd, dt);
    row_lanes(a.u + row * D + d0, nd, u);
    for (int64_t j = 0; j < kBlock; ++j) dbu[j] = dt[j] * u[j], y[j] = 0;
    const T* Bt = a.Bm + row * N;
    const T* Ct = a.Cm + row * N;
    for (int64_t n = 0; n < N; ++n) {
      const T Bn = Bt[n], Cn = Ct[n];
      const T* An = At + n * kBlock;
      T* hn = h + n * kBlock;
#pragma omp simd
      for (int64_t j = 0; j < kBlock; ++j) {
        const T hv = vexp(dt[j] * An[j]) * hn[j] + dbu[j] * Bn;
        hn[j] = hv;
        y[j] += Cn * hv;
      }
    }
    if (a.Dskip)
      for (int64_t j = 0; j < kBlock; ++j) y[j] += Dl[j] * u[j];
    if (a.z) {
      row_lanes(a.z + row * D + d0, nd, zl);
#pragma omp simd
      for (int64_t j = 0; j < kBlock; ++j) y[j] *= zl[j] * vsigmoid(zl[j]);
    }
    lanes_row(y, nd, out + row * D + d0);
  }
  from_lanes(h, nd, N, h_last + (b * D + d0) * N);
}

template <typename T> struct ScanGrads {
  T *du, *ddt, *dh0, *dz;
  T *dB, *dC;  // this task's partial [B, T, N] buffers (summed over channel groups later)
  T *dA, *dD;  // partial [B, D, N] and [B, D] (summed over batches later)
};

// One task of the backward: batch b, channel blocks [blk0, blk1). `work` holds
// (2 chunk + 4) N kBlock values: the chunk's states and decays, A, dA and the adjoint dh.
template <typename T>
ENGRAM_SIMD_CLONES static void scan_backward_task(const ScanArgs<T>& a, const T* ckpt, const T* dout,
                               const T* dh_last, const ScanDims& s, int64_t b, int64_t blk0,
                               int64_t blk1, const ScanGrads<T>& g, T* work) {
  const int64_t N = s.N, D = s.D, L = s.L, S = N * kBlock;
  T* states = work;                         // h_{start-1} .. h_{start+len-1}: (chunk + 1) S
  T* decay = states + (s.chunk + 1) * S;    // a_t of the chunk's steps: chunk S
  T* At = decay + s.chunk * S;
  T* dAt = At + S;
  T* dh = dAt + S;                          // the gradient reaching the current h_t
  T Dl[kBlock] = {}, dD[kBlock] = {}, dt[kBlock] = {}, u[kBlock] = {}, dbu[kBlock] = {},
    go[kBlock] = {}, gy[kBlock] = {}, zl[kBlock] = {}, sg[kBlock] = {}, y[kBlock] = {},
    ddt[kBlock] = {}, du[kBlock] = {};
  for (int64_t blk = blk0; blk < blk1; ++blk) {
    const int64_t d0 = blk * kBlock, nd = std::min(kBlock, D - d0);
    to_lanes(a.A + d0 * N, nd, N, At);
    std::fill(dAt, dAt + S, T(0));
    std::fill(dD, dD + kBlock, T(0));
    if (a.Dskip) row_lanes(a.Dskip + d0, nd, Dl);
    if (dh_last) to_lanes(dh_last + (b * D + d0) * N, nd, N, dh);
    else std::fill(dh, dh + S, T(0));
    for (int64_t c = s.n_chunks - 1; c >= 0; --c) {
      const int64_t start = c * s.chunk, len = std::min(s.chunk, L - start);
      // recompute the chunk's states and decays from its checkpoint
      to_lanes(ckpt + ((b * s.n_chunks + c) * D + d0) * N, nd, N, states);
      for (int64_t k = 0; k < len; ++k) {
        const int64_t row = b * L + start + k;
        row_lanes(a.dt + row * D + d0, nd, dt);
        row_lanes(a.u + row * D + d0, nd, u);
        for (int64_t j = 0; j < kBlock; ++j) dbu[j] = dt[j] * u[j];
        const T* Bt = a.Bm + row * N;
        for (int64_t n = 0; n < N; ++n) {
          const T Bn = Bt[n];
          const T* An = At + n * kBlock;
          const T* hp = states + k * S + n * kBlock;
          T* hn = states + (k + 1) * S + n * kBlock;
          T* ex = decay + k * S + n * kBlock;
#pragma omp simd
          for (int64_t j = 0; j < kBlock; ++j) {
            const T e = vexp(dt[j] * An[j]);
            ex[j] = e;
            hn[j] = e * hp[j] + dbu[j] * Bn;
          }
        }
      }
      // walk the chunk backwards
      for (int64_t k = len - 1; k >= 0; --k) {
        const int64_t row = b * L + start + k;
        row_lanes(a.dt + row * D + d0, nd, dt);
        row_lanes(a.u + row * D + d0, nd, u);
        row_lanes(dout + row * D + d0, nd, go);
        if (a.z) {
          row_lanes(a.z + row * D + d0, nd, zl);
#pragma omp simd
          for (int64_t j = 0; j < kBlock; ++j) sg[j] = vsigmoid(zl[j]), gy[j] = go[j] * zl[j] * sg[j];
        } else {
          for (int64_t j = 0; j < kBlock; ++j) gy[j] = go[j];
        }
        for (int64_t j = 0; j < kBlock; ++j) dbu[j] = dt[j] * u[j], y[j] = ddt[j] = du[j] = 0;
        const T* Bt = a.Bm + row * N;
        const T* Ct = a.Cm + row * N;
        T* dBt = g.dB + row * N;
        T* dCt = g.dC + row * N;
        for (int64_t n = 0; n < N; ++n) {
          const T Bn = Bt[n], Cn = Ct[n];
          const T* An = At + n * kBlock;
          const T* ht = states + (k + 1) * S + n * kBlock;
          const T* hp = states + k * S + n * kBlock;
          const T* ex = decay + k * S + n * kBlock;
          T* dAn = dAt + n * kBlock;
          T* dhn = dh + n * kBlock;
          T dC_n = 0, dB_n = 0;
#pragma omp simd reduction(+ : dC_n, dB_n)
          for (int64_t j = 0; j < kBlock; ++j) {
            y[j] += Cn * ht[j];
            const T gh = dhn[j] + gy[j] * Cn;  // the full gradient of h_t
            dC_n += gy[j] * ht[j];
            const T e = gh * hp[j] * ex[j];    // of dt_t A
            ddt[j] += e * An[j] + gh * u[j] * Bn;
            dAn[j] += e * dt[j];
            du[j] += gh * dt[j] * Bn;
            dB_n += gh * dbu[j];
            dhn[j] = gh * ex[j];               // into h_{t-1}
          }
          dCt[n] += dC_n;
          dBt[n] += dB_n;
        }
        if (a.Dskip)
          for (int64_t j = 0; j < kBlock; ++j) y[j] += Dl[j] * u[j], du[j] += gy[j] * Dl[j], dD[j] += gy[j] * u[j];
        const int64_t i = row * D + d0;
        if (a.z) {
          for (int64_t j = 0; j < kBlock; ++j) y[j] = go[j] * y[j] * sg[j] * (T(1) + zl[j] * (T(1) - sg[j]));
          lanes_row(y, nd, g.dz + i);  // dz_t = g_t y_t silu'(z_t)
        }
        lanes_row(du, nd, g.du + i);
        lanes_row(ddt, nd, g.ddt + i);
      }
    }
    from_lanes(dh, nd, N, g.dh0 + (b * D + d0) * N);
    from_lanes(dAt, nd, N, g.dA + (b * D + d0) * N);
    if (a.Dskip) std::copy(dD, dD + nd, g.dD + b * D + d0);
  }
}

template <typename T>
static void scan_forward_typed(const ScanArgs<T>& a, const T* h0, const ScanDims& s, T* out,
                               T* h_last, T* ckpt) {
  const int64_t tasks = s.B * s.n_blocks;
#pragma omp parallel if (s.B * s.L * s.D * s.N > kParallelGrain && tasks > 1)
  {
    std::vector<T> work(2 * s.N * kBlock);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t b = task / s.n_blocks, d0 = (task % s.n_blocks) * kBlock;
      scan_forward_task(a, h0, s, b, d0, std::min(kBlock, s.D - d0), out, h_last, ckpt,
                        work.data());
    }
  }
}

template <typename T>
static void scan_backward_typed(const ScanArgs<T>& a, const T* ckpt, const T* dout,
                                const T* dh_last, const ScanDims& s, T* du, T* ddt, T* dA, T* dB,
                                T* dC, T* dD, T* dz, T* dh0) {
  const int64_t B = s.B, L = s.L, D = s.D, N = s.N;
  const bool par = B * L * D * N > kParallelGrain;
  const int64_t threads = par ? omp_get_max_threads() : 1;
  // G groups of channel blocks per batch element, enough for every thread to have a task
  const int64_t G = B >= threads ? 1 : std::min(s.n_blocks, (threads + B - 1) / B);
  std::vector<T> dB_part, dC_part;
  if (G > 1) dB_part.assign(G * B * L * N, T(0)), dC_part.assign(G * B * L * N, T(0));
  else std::fill(dB, dB + B * L * N, T(0)), std::fill(dC, dC + B * L * N, T(0));
  std::vector<T> dA_part(B * D * N), dD_part(B * D);
#pragma omp parallel if (par && B * G > 1)
  {
    std::vector<T> work((2 * s.chunk + 4) * N * kBlock);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < B * G; ++task) {
      const int64_t b = task / G, grp = task % G;
      ScanGrads<T> g{du, ddt, dh0, dz,
                     G > 1 ? dB_part.data() + grp * B * L * N : dB,
                     G > 1 ? dC_part.data() + grp * B * L * N : dC, dA_part.data(), dD_part.data()};
      scan_backward_task(a, ckpt, dout, dh_last, s, b, s.n_blocks * grp / G,
                         s.n_blocks * (grp + 1) / G, g, work.data());
    }
  }
  if (G > 1) {
    const int64_t M = B * L * N;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t i = 0; i < M; ++i) {
      T sb = 0, sc = 0;
      for (int64_t grp = 0; grp < G; ++grp) sb += dB_part[grp * M + i], sc += dC_part[grp * M + i];
      dB[i] = sb, dC[i] = sc;
    }
  }
  for (int64_t i = 0; i < D * N; ++i) {
    T acc = 0;
    for (int64_t b = 0; b < B; ++b) acc += dA_part[b * D * N + i];
    dA[i] = acc;
  }
  if (dD)
    for (int64_t d = 0; d < D; ++d) {
      T acc = 0;
      for (int64_t b = 0; b < B; ++b) acc += dD_part[b * D + d];
      dD[d] = acc;
    }
}

static ScanDims scan_dims(Tref u, Tref A, int64_t chunk) {
  ScanDims s;
  s.B = u.shape()[0], s.L = u.shape()[1], s.D = u.shape()[2], s.N = A.shape()[1];
  s.chunk = chunk, s.n_chunks = (s.L + chunk - 1) / chunk, s.n_blocks = (s.D + kBlock - 1) / kBlock;
  return s;
}

static void selective_scan(Tref u, Tref dt, Tref A, Tref Bm, Tref Cm, Tref Dskip, Tref z, Tref h0,
                           int64_t chunk, Tref out, Tref h_last, Tref ckpt) {
  check_contiguous({&u, &dt, &A, &Bm, &Cm, &Dskip, &z, &h0, &out, &h_last, &ckpt}, "selective_scan");
  ENGRAM_CHECK(chunk > 0, "selective_scan: chunk must be positive, got {}", chunk);
  const ScanDims s = scan_dims(u, A, chunk);
  ENGRAM_DISPATCH_FLOAT(u.dtype(), "selective_scan", [&] {
    using T = scalar_t;
    ScanArgs<T> a{u.data<T>(), dt.data<T>(), A.data<T>(), Bm.data<T>(), Cm.data<T>(),
                  ptr_or_null<T>(Dskip), ptr_or_null<T>(z)};
    scan_forward_typed<T>(a, ptr_or_null<T>(h0), s, out.data<T>(), h_last.data<T>(), ckpt.data<T>());
  });
}

static void selective_scan_backward(Tref u, Tref dt, Tref A, Tref Bm, Tref Cm, Tref Dskip, Tref z,
                                    Tref ckpt, int64_t chunk, Tref dout, Tref dh_last, Tref du,
                                    Tref ddt, Tref dA, Tref dBm, Tref dCm, Tref dDskip, Tref dz,
                                    Tref dh0) {
  check_contiguous({&u, &dt, &A, &Bm, &Cm, &Dskip, &z, &ckpt, &dout, &dh_last, &du, &ddt, &dA, &dBm,
                &dCm, &dDskip, &dz, &dh0},
               "selective_scan_backward");
  ENGRAM_CHECK(chunk > 0, "selective_scan_backward: chunk must be positive, got {}", chunk);
  const ScanDims s = scan_dims(u, A, chunk);
  ENGRAM_DISPATCH_FLOAT(u.dtype(), "selective_scan_backward", [&] {
    using T = scalar_t;
    ScanArgs<T> a{u.data<T>(), dt.data<T>(), A.data<T>(), Bm.data<T>(), Cm.data<T>(),
                  ptr_or_null<T>(Dskip), ptr_or_null<T>(z)};
    // the running adjoint needs a buffer even when the caller does not want dh0
    Tensor dh0_buf = dh0.defined() ? dh0 : empty({s.B, s.D, s.N}, u.dtype());
    scan_backward_typed<T>(a, ckpt.data<T>(), dout.data<T>(), ptr_or_null<T>(dh_last), s,
                           du.data<T>(), ddt.data<T>(), dA.data<T>(), dBm.data<T>(), dCm.data<T>(),
                           mut_or_null<T>(dDskip), a.z ? dz.data<T>() : nullptr,
                           dh0_buf.data<T>());
  });
}

void register_ssm_mamba(Backend& b) {
  b.causal_conv1d = causal_conv1d;
  b.causal_conv1d_backward = causal_conv1d_backward;
  b.selective_scan = selective_scan;
  b.selective_scan_backward = selective_scan_backward;
}

}  // namespace engram::cpu
