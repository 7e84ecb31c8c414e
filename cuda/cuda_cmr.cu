// cuda/cuda_cmr.cu — episodic CMR's fused context drift on the GPU (mirrors
// core/cpu/cpu_cmr.cpp).
//
// Forward, per row b (a batch element and head) and step t, with D context units:
//   d_t   = c_{t-1} . cin_t
//   s_t   = sqrt(1 + beta_t^2 (d_t^2 - 1))
//   rho_t = s_t - beta_t d_t
//   c_t   = rho_t c_{t-1} + beta_t cin_t,        c_{-1} = c0
// cin, c [B, T, D], beta [B, T], c0 [B, D], all contiguous.
// Backward, walking t downwards with g = the gradient reaching c_t (dc_t plus what c_{t+1} sent):
//   drho   = g . c_{t-1}                 dbeta_t = g . cin_t + drho * (beta (d^2 - 1) / s - d)
//   dd     = drho * (beta^2 d / s - beta)
//   dcin_t = beta g + dd c_{t-1}         g_{t-1} = rho g + dd cin_t          dc0 = g_{-1}
// Every c_t is an output of the forward, so the backward needs no recomputation.
//
// One block per row, looping over t (the recurrence is sequential in t). Thread x owns the units
// i = x, x + blockDim, ...: it reads and writes only those, so the only cross-thread step is the
// block_sum of each dot product (a fixed tree order: deterministic, though not the CPU's left-to-
// right order, so f32 results agree to rounding). The running g of the backward lives in the dc0
// output, each thread updating its own units.
#include <algorithm>
#include <climits>

#include "core/flops.h"
#include "cuda/common.cuh"

namespace engram::cuda {

__device__ __forceinline__ float dsqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double dsqrt(double x) { return sqrt(x); }

template <typename T>
__global__ void drift_forward_kernel(const T* cin, const T* beta, const T* c0, int64_t Tn,
                                     int64_t D, T* c) {
  __shared__ T red[32];
  const int64_t b = blockIdx.x;
  const T* prev = c0 + b * D;
  for (int64_t t = 0; t < Tn; ++t) {
    const T* in = cin + (b * Tn + t) * D;
    T* out = c + (b * Tn + t) * D;
    const T be = beta[b * Tn + t];
    T part = 0;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) part += prev[i] * in[i];
    const T d = block_sum(part, red);  // every thread reaches this (no early exit)
    const T rho = dsqrt(T(1) + be * be * (d * d - T(1))) - be * d;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) out[i] = rho * prev[i] + be * in[i];
    prev = out;  // the next step reads only this thread's own units of out
  }
}

template <typename T>
__global__ void drift_backward_kernel(const T* cin, const T* beta, const T* c0, const T* c,
                                      const T* dc, int64_t Tn, int64_t D, T* dcin, T* dbeta,
                                      T* dc0) {
  __shared__ T red[32];
  const int64_t b = blockIdx.x;
  T* g = dc0 + b * D;  // the running gradient reaching c_t
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) g[i] = T(0);
  for (int64_t t = Tn - 1; t >= 0; --t) {
    const int64_t row = (b * Tn + t) * D;
    const T* prev = t > 0 ? c + row - D : c0 + b * D;
    const T* in = cin + row;
    const T be = beta[b * Tn + t];
    T pd = 0, pr = 0, pb = 0;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
      const T gi = g[i] + dc[row + i];
      g[i] = gi;
      pd += prev[i] * in[i];
      pr += gi * prev[i];
      pb += gi * in[i];
    }
    const T d = block_sum(pd, red), drho = block_sum(pr, red), dbe = block_sum(pb, red);
    const T s = dsqrt(T(1) + be * be * (d * d - T(1))), rho = s - be * d;
    const T dd = drho * (be * be * d / s - be);
    if (threadIdx.x == 0) dbeta[b * Tn + t] = dbe + drho * (be * (d * d - T(1)) / s - d);
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
      const T gi = g[i];
      dcin[row + i] = be * gi + dd * prev[i];
      g[i] = rho * gi + dd * in[i];
    }
  }
}

// Threads per row: a multiple of 32 (block_sum needs whole warps), about one per unit, at most 256.
static int row_threads(int64_t D) {
  const int64_t w = (std::max<int64_t>(D, 1) + 31) / 32 * 32;
  return (int)std::min<int64_t>(w, 256);
}

static void check_drift(Tref t, const Shape& want, DType dt, const char* op, const char* what) {
  require_contiguous(t, op, what);
  ENGRAM_CHECK(t.shape() == want && t.dtype() == dt, "{}: {} should be {} {}, got {} {}", op, what,
               dtype_name(dt), shape_str(want), dtype_name(t.dtype()), shape_str(t.shape()));
}

static void check_cin(Tref cin, const char* op) {
  require_contiguous(cin, op, "cin");
  ENGRAM_CHECK(cin.dim() == 3, "{}: expected cin [B, T, D], got {}", op, shape_str(cin.shape()));
  ENGRAM_CHECK(cin.shape()[0] <= INT_MAX, "{}: {} rows is more than one grid holds", op,
               cin.shape()[0]);
}

template <typename T> static void drift_forward_impl(Tref cin, Tref beta, Tref c0, Tref c) {
  const int64_t B = cin.shape()[0], Tn = cin.shape()[1], D = cin.shape()[2];
  flops::add(B * Tn * (5 * D + 8));  // per row and step, as the CPU counts (core/flops.h)
  if (B == 0 || Tn == 0) return;
  drift_forward_kernel<T><<<(unsigned)B, row_threads(D), 0, stream()>>>(
      cin.data<T>(), beta.data<T>(), c0.data<T>(), Tn, D, c.data<T>());
  check_launch("cmr_drift_scan");
}

static void cmr_drift_scan(Tref cin, Tref beta, Tref c0, Tref c) {
  const char* op = "cmr_drift_scan";
  check_cin(cin, op);
  const int64_t B = cin.shape()[0], Tn = cin.shape()[1], D = cin.shape()[2];
  const DType dt = cin.dtype();
  check_drift(beta, {B, Tn}, dt, op, "beta");
  check_drift(c0, {B, D}, dt, op, "c0");
  check_drift(c, cin.shape(), dt, op, "c");
  ENGRAM_DISPATCH_FLOAT(dt, op, [&] { drift_forward_impl<scalar_t>(cin, beta, c0, c); });
}

template <typename T>
static void drift_backward_impl(Tref cin, Tref beta, Tref c0, Tref c, Tref dc, Tref dcin,
                                Tref dbeta, Tref dc0) {
  const int64_t B = cin.shape()[0], Tn = cin.shape()[1], D = cin.shape()[2];
  if (B == 0) return;
  // with Tn == 0 the kernel just zeroes dc0, as the CPU does
  drift_backward_kernel<T><<<(unsigned)B, row_threads(D), 0, stream()>>>(
      cin.data<T>(), beta.data<T>(), c0.data<T>(), c.data<T>(), dc.data<T>(), Tn, D,
      dcin.data<T>(), dbeta.data<T>(), dc0.data<T>());
  check_launch("cmr_drift_scan_backward");
}

static void cmr_drift_scan_backward(Tref cin, Tref beta, Tref c0, Tref c, Tref dc, Tref dcin,
                                    Tref dbeta, Tref dc0) {
  const char* op = "cmr_drift_scan_backward";
  check_cin(cin, op);
  const int64_t B = cin.shape()[0], Tn = cin.shape()[1], D = cin.shape()[2];
  const DType dt = cin.dtype();
  check_drift(beta, {B, Tn}, dt, op, "beta");
  check_drift(c0, {B, D}, dt, op, "c0");
  check_drift(c, cin.shape(), dt, op, "c");
  check_drift(dc, cin.shape(), dt, op, "dc");
  check_drift(dcin, cin.shape(), dt, op, "dcin");
  check_drift(dbeta, {B, Tn}, dt, op, "dbeta");
  check_drift(dc0, {B, D}, dt, op, "dc0");
  ENGRAM_DISPATCH_FLOAT(dt, op, [&] {
    drift_backward_impl<scalar_t>(cin, beta, c0, c, dc, dcin, dbeta, dc0);
  });
}

void register_cmr(Backend& b) {
  b.cmr_drift_scan = cmr_drift_scan;
  b.cmr_drift_scan_backward = cmr_drift_scan_backward;
}

}  // namespace engram::cuda
