// cuda/cuda_reduce.cu — reductions, line scans, softmax (plain, log, masked) and top-k on the GPU.
// Mirrors core/cpu/cpu_reduce.cpp (reduce, arg_reduce, cumsum, softmax, softmax_backward, topk) and
// core/cpu/cpu_attention.cpp (masked_softmax, masked_softmax_backward); f32 and f64, as there.
//
//   reduce:   out keeps x's rank; dim d is kept when out.shape[d] == x.shape[d], else reduced
//             (out.shape[d] must be 1). out[i] = fold over the reduced block of x, in double:
//             sum, or max/min with NaN propagating (an empty block gives 0, -inf, +inf).
//   arg_reduce (values/indices have `dim` of size 1): the first NaN if the line has one, else
//             the first index of the max (min).
//   cumsum:   out_j = sum_{i<=j} x_i (reverse: sum_{i>=j}), accumulated in double.
//   softmax:  m = max x (NaN ignored, an all -inf line uses m = 0), e_j = exp(x_j - m) in T,
//             S = sum e (double); y = e * T(1/S), log: y = x - (m + T(log S)).
//     backward: dx = y (dy - T(sum dy y)),  log: dx = dy - exp(y) T(sum dy).
//   masked_softmax along the last dim of x [..., Tq, Tk], keys from core/attention_mask.h:
//             y_j = exp(s x_j - m) / sum_V exp(s x_k - m) on visible keys V, exactly 0 elsewhere;
//             no visible key, or a sum that is not a positive finite number: the row is all NaN.
//     backward: dx_j = s y_j (dy_j - sum_V y_k dy_k) on V, 0 elsewhere.
//   topk:     the k best along dim, best first; NaN ranks above every number (first when
//             largest, last otherwise), ties go to the lower index — cpu_reduce.cpp's order.
//
// Layout: every operand may be strided (out of masked_softmax and y/dx of its backward must be
// contiguous, as the contract says). A line l (row-major over the dims other than `dim`) is found
// with the Strided indexer over those dims; along `dim` each operand has its own stride.
// Parallel shape: one block per line for the row-wise ops (a grid-stride loop over lines, so the
// __syncthreads inside are uniform per block); cumsum is one thread per line looping in order, so
// it is bit-identical to the CPU. reduce is a deterministic two-stage fold (no atomics): stage 1
// gives each (output, chunk of the reduced block) to a block (when the reduced dims are the
// inner ones in memory) or to a thread (when the kept dims are: then neighbouring threads read
// neighbouring memory), stage 2 folds the chunks of each output in order. Sums are in double, so
// the order differs from the CPU's only below double rounding.
// topk: per line, (key, index) pairs are bitonic-sorted, keys made so that ascending (key, index)
// order is cpu_reduce.cpp's `better` order; lines of up to 2048 in shared memory, longer ones in a
// global Scratch slot per block. Values are then read back from x at the sorted indices.
#include <algorithm>
#include <cmath>

#include "core/attention_mask.h"
#include "cuda/common.cuh"

namespace engram::cuda {

__device__ __forceinline__ float dev_exp(float v) { return expf(v); }
__device__ __forceinline__ double dev_exp(double v) { return exp(v); }
template <typename T> __device__ __forceinline__ bool is_nan(T v) { return v != v; }

static Shape drop_dim(const Shape& s, int64_t dim) {
  Shape r;
  for (int64_t d = 0; d < (int64_t)s.size(); ++d)
    if (d != dim) r.push_back(s[d]);
  return r;
}
// Threads for a line of `len`: a power of two in [32, cap] (the tree reductions below need 2^n).
static int pow2_threads(int64_t len, int cap = 512) {
  int t = 32;
  while (t < cap && t < len) t <<= 1;
  return t;
}
static unsigned line_blocks(int64_t lines) {
  return (unsigned)std::clamp<int64_t>(lines, 1, 65535LL * 8);
}
static void check_line_op(Tref x, int64_t dim, const char* op) {
  require_cuda(x, op, "x");
  ENGRAM_CHECK(dim >= 0 && dim < x.dim(), "{}: dim {} out of range for shape {}", op, dim,
               shape_str(x.shape()));
}
static void check_same(Tref t, Tref x, const char* op, const char* what) {
  require_cuda(t, op, what);
  ENGRAM_CHECK(t.shape() == x.shape() && t.dtype() == x.dtype(), "{}: {} is {} {}, expected {} {}",
               op, what, dtype_name(t.dtype()), shape_str(t.shape()), dtype_name(x.dtype()),
               shape_str(x.shape()));
}

// ---------------------------------------------------------------- reduce
// The CPU's fold: sum, or max/min where a NaN, once met, stays (`(v > acc || isnan(v)) ? v : acc`).
// Associative, so chunks and threads may fold in any grouping and give the same max/min.
__device__ __forceinline__ double fold(ReduceOp op, double a, double b) {
  if (op == ReduceOp::sum) return a + b;
  if (is_nan(a)) return a;
  if (is_nan(b)) return b;
  return op == ReduceOp::max ? (b > a ? b : a) : (b < a ? b : a);
}
__device__ __forceinline__ double fold_identity(ReduceOp op) {
  return op == ReduceOp::sum ? 0.0 : op == ReduceOp::max ? -(double)INFINITY : (double)INFINITY;
}
// Fold over the block (blockDim.x a multiple of 32); every thread gets the result.
__device__ double block_fold(ReduceOp op, double v, double* sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fold(op, v, __shfl_down_sync(0xffffffffu, v, o));
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  double r = threadIdx.x < warps ? sh[threadIdx.x] : fold_identity(op);
  if (warp == 0) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) r = fold(op, r, __shfl_down_sync(0xffffffffu, r, o));
  }
  if (threadIdx.x == 0) sh[0] = r;
  __syncthreads();
  return sh[0];
}

// Stage 1, block mode: block (i, c) folds chunk c of output i's reduced block. With one chunk
// the result goes straight to out, else to part[c][i].
template <typename T>
__global__ void reduce_block_kernel(ReduceOp op, const T* x, T* out, double* part, Strided<2> kept,
                                    Strided<1> red, int64_t n_out, int64_t n_red, int64_t chunk) {
  __shared__ double sh[32];
  const int64_t c = blockIdx.y, r0 = c * chunk, r1 = r0 + chunk < n_red ? r0 + chunk : n_red;
  for (int64_t i = blockIdx.x; i < n_out; i += gridDim.x) {  // uniform per block
    int64_t ko[2];
    kept.offsets(i, ko);
    double acc = fold_identity(op);
    for (int64_t r = r0 + threadIdx.x; r < r1; r += blockDim.x) {
      int64_t ro[1];
      red.offsets(r, ro);
      acc = fold(op, acc, (double)x[ko[0] + ro[0]]);
    }
    acc = block_fold(op, acc, sh);
    if (threadIdx.x == 0) {
      if (part) part[c * n_out + i] = acc;
      else out[ko[1]] = T(acc);
    }
  }
}

// Stage 1, thread mode: thread i (grid x) folds chunk blockIdx.y of output i's block in order.
template <typename T>
__global__ void reduce_thread_kernel(ReduceOp op, const T* x, T* out, double* part,
                                     Strided<2> kept, Strided<1> red, int64_t n_out, int64_t n_red,
                                     int64_t chunk) {
  const int64_t c = blockIdx.y, r0 = c * chunk, r1 = r0 + chunk < n_red ? r0 + chunk : n_red;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n_out;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t ko[2];
    kept.offsets(i, ko);
    double acc = fold_identity(op);
    for (int64_t r = r0; r < r1; ++r) {
      int64_t ro[1];
      red.offsets(r, ro);
      acc = fold(op, acc, (double)x[ko[0] + ro[0]]);
    }
    if (part) part[c * n_out + i] = acc;
    else out[ko[1]] = T(acc);
  }
}

// Stage 2: out[i] = fold of part[0..chunks)[i], in chunk order.
template <typename T>
__global__ void reduce_finish_kernel(ReduceOp op, const double* part, int64_t chunks, T* out,
                                     Strided<2> kept, int64_t n_out) {
  ENGRAM_GRID_STRIDE(i, n_out) {
    double acc = fold_identity(op);
    for (int64_t c = 0; c < chunks; ++c) acc = fold(op, acc, part[c * n_out + i]);
    int64_t ko[2];
    kept.offsets(i, ko);
    out[ko[1]] = T(acc);
  }
}

template <typename T>
static void reduce_typed(ReduceOp op, Tref x, Tref out, const Strided<2>& kept,
                         const Strided<1>& red, int64_t n_out, int64_t n_red, bool block_mode) {
  const char* opn = "reduce";
  auto cdiv = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  int64_t chunks;
  if (block_mode)  // enough blocks to fill the GPU when there are few outputs
    chunks = n_out >= 512 ? 1 : std::min<int64_t>({cdiv(n_red, 4096), cdiv(1024, n_out), 1024});
  else  // enough threads (~2^18) when there are few outputs
    chunks = std::min<int64_t>({cdiv(n_red, 32), cdiv(1 << 18, n_out), 1024});
  chunks = std::max<int64_t>(chunks, 1);
  const int64_t chunk = std::max<int64_t>(cdiv(n_red, chunks), 1);
  chunks = std::max<int64_t>(cdiv(n_red, chunk), 1);
  Scratch part(chunks > 1 ? (size_t)chunks * (size_t)n_out * sizeof(double) : 0);
  double* pp = chunks > 1 ? part.as<double>() : nullptr;
  const T* xp = x.data<T>();
  T* o = out.data<T>();
  if (block_mode) {
    dim3 grid((unsigned)std::clamp<int64_t>(n_out, 1, 1LL << 20), (unsigned)chunks);
    reduce_block_kernel<T><<<grid, kThreads, 0, stream()>>>(op, xp, o, pp, kept, red, n_out,
                                                             n_red, chunk);
  } else {
    dim3 grid(blocks_for(n_out), (unsigned)chunks);
    reduce_thread_kernel<T><<<grid, kThreads, 0, stream()>>>(op, xp, o, pp, kept, red, n_out,
                                                              n_red, chunk);
  }
  check_launch(opn);
  if (pp) {
    reduce_finish_kernel<T><<<blocks_for(n_out), kThreads, 0, stream()>>>(op, pp, chunks, o, kept,
                                                                           n_out);
    check_launch(opn);
  }
}

static void reduce(ReduceOp op, Tref x, Tref out) {
  require_cuda(x, "reduce", "x");
  require_cuda(out, "reduce", "out");
  ENGRAM_CHECK(out.dim() == x.dim(), "reduce: out rank {} != input rank {}", out.dim(), x.dim());
  ENGRAM_CHECK(out.dtype() == x.dtype(), "reduce: out is {}, input {}", dtype_name(out.dtype()),
               dtype_name(x.dtype()));
  // Split dims into kept (out size == x size) and reduced (out size 1), as the CPU does.
  Shape kept_shape, red_shape, kept_x, kept_o, red_x;
  int64_t min_kept = INT64_MAX, min_red = INT64_MAX;  // smallest |x stride| of each (size > 1)
  for (int64_t d = 0; d < x.dim(); ++d) {
    const int64_t n = x.shape()[d], st = x.strides()[d] < 0 ? -x.strides()[d] : x.strides()[d];
    if (out.shape()[d] == n) {
      kept_shape.push_back(n);
      kept_x.push_back(x.strides()[d]);
      kept_o.push_back(out.strides()[d]);
      if (n > 1) min_kept = std::min(min_kept, st);
    } else {
      ENGRAM_CHECK(out.shape()[d] == 1, "reduce: out shape {} does not match input {}",
                   shape_str(out.shape()), shape_str(x.shape()));
      red_shape.push_back(n);
      red_x.push_back(x.strides()[d]);
      if (n > 1) min_red = std::min(min_red, st);
    }
  }
  const int64_t n_out = shape_numel(kept_shape), n_red = shape_numel(red_shape);
  if (n_out == 0) return;
  const Strided<2> kept = make_strided(kept_shape, kept_x, kept_o, "reduce");
  const Strided<1> red = make_strided(red_shape, red_x, "reduce");
  // Block mode when threads of a block walking the reduced block read neighbouring memory (the
  // innermost dim is reduced), or when there are too few outputs for one thread each.
  const bool block_mode = n_out < 64 || min_red < min_kept;
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "reduce", [&] {
    reduce_typed<scalar_t>(op, x, out, kept, red, n_out, n_red, block_mode);
  });
}

// ---------------------------------------------------------------- arg_reduce
// Each thread runs the CPU's loop over its own j's (j = tid, tid + B, ...: increasing), so it holds
// its first NaN or its first extremum; the tree below keeps the NaN, else the extremum, and the
// lower index on equal candidates — the CPU's answer for the whole line.
template <typename T>
__device__ __forceinline__ bool arg_better(bool is_max, T bv, int64_t bi, T av, int64_t ai) {
  if (bi < 0) return false;  // b holds no element
  if (ai < 0) return true;
  const bool an = is_nan(av), bn = is_nan(bv);
  if (an || bn) return an && bn ? bi < ai : bn;
  if (bv == av) return bi < ai;
  return is_max ? bv > av : bv < av;
}

template <typename T>
__global__ void arg_reduce_kernel(bool is_max, const T* x, T* vals, int64_t* idx, Strided<3> ls,
                                  int64_t lines, int64_t len, int64_t sx) {
  __shared__ T sv[512];
  __shared__ int64_t si[512];
  const int tid = threadIdx.x;
  for (int64_t l = blockIdx.x; l < lines; l += gridDim.x) {
    int64_t off[3];
    ls.offsets(l, off);
    const T* xl = x + off[0];
    T bv = T(0);
    int64_t best = -1;
    for (int64_t j = tid; j < len; j += blockDim.x) {
      const T v = xl[j * sx];
      if (best < 0) {
        bv = v;
        best = j;
        continue;
      }
      if (is_nan(bv)) break;
      if (is_max ? (v > bv || is_nan(v)) : (v < bv || is_nan(v))) {
        bv = v;
        best = j;
      }
    }
    sv[tid] = bv;
    si[tid] = best;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
      if (tid < s && arg_better(is_max, sv[tid + s], si[tid + s], sv[tid], si[tid])) {
        sv[tid] = sv[tid + s];
        si[tid] = si[tid + s];
      }
      __syncthreads();
    }
    if (tid == 0) {
      vals[off[1]] = sv[0];
      idx[off[2]] = si[0];
    }
    __syncthreads();  // sv/si are rewritten for the next line
  }
}

static void arg_reduce(ReduceOp op, Tref x, int64_t dim, Tref values, Tref indices) {
  check_line_op(x, dim, "arg_reduce");
  require_cuda(values, "arg_reduce", "values");
  require_cuda(indices, "arg_reduce", "indices");
  const int64_t len = x.shape()[dim];
  ENGRAM_CHECK(len > 0, "max/min: reduction over an empty dim {} of shape {}", dim,
               shape_str(x.shape()));
  Shape keep = x.shape();
  keep[dim] = 1;
  ENGRAM_CHECK(values.shape() == keep && values.dtype() == x.dtype() && indices.shape() == keep &&
                   indices.dtype() == DType::i64,
               "arg_reduce: values must be {} {} and indices i64 of that shape",
               dtype_name(x.dtype()), shape_str(keep));
  const Shape outer = drop_dim(x.shape(), dim);
  const int64_t lines = shape_numel(outer);
  if (lines == 0) return;
  const Strided<3> ls = make_strided(outer, drop_dim(x.strides(), dim),
                                     drop_dim(values.strides(), dim),
                                     drop_dim(indices.strides(), dim), "arg_reduce");
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "arg_reduce", [&] {
    using T = scalar_t;
    arg_reduce_kernel<T><<<line_blocks(lines), pow2_threads(len), 0, stream()>>>(
        op == ReduceOp::max, x.data<T>(), values.data<T>(), indices.data<int64_t>(), ls, lines,
        len, x.strides()[dim]);
    check_launch("arg_reduce");
  });
}

// ---------------------------------------------------------------- cumsum
// One thread per line, in order, in double: the CPU's loop exactly.
template <typename T>
__global__ void cumsum_kernel(const T* x, T* out, Strided<2> ls, int64_t lines, int64_t len,
                              int64_t sx, int64_t so, bool reverse) {
  ENGRAM_GRID_STRIDE(l, lines) {
    int64_t off[2];
    ls.offsets(l, off);
    const T* xl = x + off[0];
    T* ol = out + off[1];
    double acc = 0;
    for (int64_t k = 0; k < len; ++k) {
      const int64_t j = reverse ? len - 1 - k : k;
      acc += (double)xl[j * sx];
      ol[j * so] = T(acc);
    }
  }
}

static void cumsum(Tref x, int64_t dim, bool reverse, Tref out) {
  check_line_op(x, dim, "cumsum");
  check_same(out, x, "cumsum", "out");
  const Shape outer = drop_dim(x.shape(), dim);
  const int64_t lines = shape_numel(outer), len = x.shape()[dim];
  if (lines == 0 || len == 0) return;
  const Strided<2> ls =
      make_strided(outer, drop_dim(x.strides(), dim), drop_dim(out.strides(), dim), "cumsum");
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "cumsum", [&] {
    using T = scalar_t;
    cumsum_kernel<T><<<blocks_for(lines), kThreads, 0, stream()>>>(
        x.data<T>(), out.data<T>(), ls, lines, len, x.strides()[dim], out.strides()[dim], reverse);
    check_launch("cumsum");
  });
}

// ---------------------------------------------------------------- softmax / log_softmax
template <typename T>
__global__ void softmax_kernel(const T* x, T* out, Strided<2> ls, int64_t lines, int64_t len,
                               int64_t sx, int64_t so, bool log) {
  __shared__ T shm[32];
  __shared__ double shs[32];
  for (int64_t l = blockIdx.x; l < lines; l += gridDim.x) {  // uniform per block
    int64_t off[2];
    ls.offsets(l, off);
    const T* xl = x + off[0];
    T* ol = out + off[1];
    T mx = T(-INFINITY);
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
      const T v = xl[j * sx];
      mx = mx < v ? v : mx;  // std::max(mx, v): a NaN never enters, so block_max sees none
    }
    mx = block_max(mx, shm, T(-INFINITY));
    if (mx == T(-INFINITY)) mx = T(0);  // an all -inf row gives NaN-free 0/uniform output
    double s = 0;
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) s += (double)dev_exp(xl[j * sx] - mx);
    s = block_sum(s, shs);
    if (log) {
      const T lse = mx + T(::log(s));
      for (int64_t j = threadIdx.x; j < len; j += blockDim.x) ol[j * so] = xl[j * sx] - lse;
    } else {
      const T inv = T(1.0 / s);
      for (int64_t j = threadIdx.x; j < len; j += blockDim.x)
        ol[j * so] = dev_exp(xl[j * sx] - mx) * inv;  // the same e as summed, then scaled
    }
  }
}

static void softmax(Tref x, int64_t dim, bool log, Tref out) {
  check_line_op(x, dim, "softmax");
  check_same(out, x, "softmax", "out");
  const Shape outer = drop_dim(x.shape(), dim);
  const int64_t lines = shape_numel(outer), len = x.shape()[dim];
  if (lines == 0 || len == 0) return;
  const Strided<2> ls =
      make_strided(outer, drop_dim(x.strides(), dim), drop_dim(out.strides(), dim), "softmax");
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "softmax", [&] {
    using T = scalar_t;
    softmax_kernel<T><<<line_blocks(lines), pow2_threads(len), 0, stream()>>>(
        x.data<T>(), out.data<T>(), ls, lines, len, x.strides()[dim], out.strides()[dim], log);
    check_launch("softmax");
  });
}

// softmax: dx = y * (dy - sum(dy * y));  log_softmax: dx = dy - exp(y) * sum(dy)
template <typename T>
__global__ void softmax_backward_kernel(const T* y, const T* dy, T* dx, Strided<3> ls,
                                        int64_t lines, int64_t len, int64_t sy, int64_t sg,
                                        int64_t so, bool log) {
  __shared__ double shs[32];
  for (int64_t l = blockIdx.x; l < lines; l += gridDim.x) {
    int64_t off[3];
    ls.offsets(l, off);
    const T* yl = y + off[0];
    const T* gl = dy + off[1];
    T* ol = dx + off[2];
    double dot = 0;
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x)
      dot += log ? (double)gl[j * sg] : (double)(gl[j * sg] * yl[j * sy]);  // product in T
    const T d = T(block_sum(dot, shs));
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x)
      ol[j * so] = log ? gl[j * sg] - dev_exp(yl[j * sy]) * d : yl[j * sy] * (gl[j * sg] - d);
  }
}

static void softmax_backward(Tref y, Tref dy, int64_t dim, bool log, Tref dx) {
  check_line_op(y, dim, "softmax_backward");
  check_same(dy, y, "softmax_backward", "dy");
  check_same(dx, y, "softmax_backward", "dx");
  const Shape outer = drop_dim(y.shape(), dim);
  const int64_t lines = shape_numel(outer), len = y.shape()[dim];
  if (lines == 0 || len == 0) return;
  const Strided<3> ls = make_strided(outer, drop_dim(y.strides(), dim), drop_dim(dy.strides(), dim),
                                     drop_dim(dx.strides(), dim), "softmax_backward");
  ENGRAM_DISPATCH_FLOAT(y.dtype(), "softmax_backward", [&] {
    using T = scalar_t;
    softmax_backward_kernel<T><<<line_blocks(lines), pow2_threads(len), 0, stream()>>>(
        y.data<T>(), dy.data<T>(), dx.data<T>(), ls, lines, len, y.strides()[dim],
        dy.strides()[dim], dx.strides()[dim], log);
    check_launch("softmax_backward");
  });
}

// ---------------------------------------------------------------- masked softmax (attention)
// The t-th visible key of a row: [0, a) then [b0, b1).
__device__ __forceinline__ int64_t visible_at(const VisibleKeys& v, int64_t t) {
  return t < v.a ? t : v.b0 + (t - v.a);
}
__device__ __forceinline__ bool is_visible(const VisibleKeys& v, int64_t j) {
  return j < v.a || (j >= v.b0 && j < v.b1);
}

template <typename T>
__global__ void masked_softmax_kernel(const T* x, T* out, Strided<1> rs, int64_t rows, int64_t Tq,
                                      int64_t Tk, int64_t sx, T scale, bool causal, int64_t window,
                                      int64_t prefix) {
  __shared__ T shm[32];
  __shared__ double shs[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {  // v, and so every branch, per block
    const VisibleKeys v = visible_keys(r % Tq, Tq, Tk, causal, window, prefix);
    const int64_t n = v.count();
    int64_t off[1];
    rs.offsets(r, off);
    const T* xl = x + off[0];
    T* ol = out + r * Tk;
    if (n == 0) {
      for (int64_t j = threadIdx.x; j < Tk; j += blockDim.x) ol[j] = T(NAN);
      continue;
    }
    T mx = T(-INFINITY);
    for (int64_t t = threadIdx.x; t < n; t += blockDim.x) {
      const T s = scale * xl[visible_at(v, t) * sx];
      mx = mx < s ? s : mx;
    }
    mx = block_max(mx, shm, T(-INFINITY));
    double sum = 0;
    for (int64_t t = threadIdx.x; t < n; t += blockDim.x)
      sum += (double)dev_exp(scale * xl[visible_at(v, t) * sx] - mx);
    sum = block_sum(sum, shs);
    if (!(sum > 0) || !isfinite(sum)) {  // every visible score -inf, or an inf/NaN score
      for (int64_t j = threadIdx.x; j < Tk; j += blockDim.x) ol[j] = T(NAN);
      continue;
    }
    const T inv = T(1.0 / sum);
    for (int64_t j = threadIdx.x; j < Tk; j += blockDim.x)
      ol[j] = is_visible(v, j) ? dev_exp(scale * xl[j * sx] - mx) * inv : T(0);
  }
}

static void check_masked_softmax_args(Tref x, int64_t window, int64_t prefix, const char* op) {
  require_cuda(x, op, "x");
  ENGRAM_CHECK(x.dim() >= 2, "{}: expected x [..., Tq, Tk], got {}", op, shape_str(x.shape()));
  ENGRAM_CHECK(window >= 0 && prefix >= 0, "{}: window {} and prefix {} must be >= 0", op, window,
               prefix);
}

static void masked_softmax(Tref x, double scale, bool causal, int64_t window, int64_t prefix,
                           Tref out) {
  check_masked_softmax_args(x, window, prefix, "masked_softmax");
  require_cuda(out, "masked_softmax", "out");
  ENGRAM_CHECK(out.is_contiguous() && out.shape() == x.shape() && out.dtype() == x.dtype(),
               "masked_softmax: out must be contiguous {}", shape_str(x.shape()));
  const int64_t last = x.dim() - 1, Tk = x.shape()[last], Tq = x.shape()[last - 1];
  const Shape lead = drop_dim(x.shape(), last);
  const int64_t rows = shape_numel(lead);
  if (rows == 0 || Tk == 0) return;
  const Strided<1> rs = make_strided(lead, drop_dim(x.strides(), last), "masked_softmax");
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "masked_softmax", [&] {
    using T = scalar_t;
    masked_softmax_kernel<T><<<line_blocks(rows), pow2_threads(Tk), 0, stream()>>>(
        x.data<T>(), out.data<T>(), rs, rows, Tq, Tk, x.strides()[last], T(scale), causal, window,
        prefix);
    check_launch("masked_softmax");
  });
}

template <typename T>
__global__ void masked_softmax_backward_kernel(const T* y, const T* dy, T* dx, Strided<1> rs,
                                               int64_t rows, int64_t Tq, int64_t Tk, int64_t sg,
                                               T scale, bool causal, int64_t window,
                                               int64_t prefix) {
  __shared__ double shs[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const VisibleKeys v = visible_keys(r % Tq, Tq, Tk, causal, window, prefix);
    const int64_t n = v.count();
    int64_t off[1];
    rs.offsets(r, off);
    const T* gl = dy + off[0];
    const T* yl = y + r * Tk;
    T* dl = dx + r * Tk;
    double dot = 0;
    for (int64_t t = threadIdx.x; t < n; t += blockDim.x) {
      const int64_t j = visible_at(v, t);
      dot += (double)(gl[j * sg] * yl[j]);  // product in T, as the CPU
    }
    const T d = T(block_sum(dot, shs));
    for (int64_t j = threadIdx.x; j < Tk; j += blockDim.x)
      dl[j] = is_visible(v, j) ? scale * (yl[j] * (gl[j * sg] - d)) : T(0);
  }
}

static void masked_softmax_backward(Tref y, Tref dy, double scale, bool causal, int64_t window,
                                    int64_t prefix, Tref dx) {
  check_masked_softmax_args(y, window, prefix, "masked_softmax_backward");
  require_cuda(dy, "masked_softmax_backward", "dy");
  require_cuda(dx, "masked_softmax_backward", "dx");
  ENGRAM_CHECK(y.is_contiguous() && dx.is_contiguous() && dy.shape() == y.shape() &&
                   dx.shape() == y.shape() && dy.dtype() == y.dtype() && dx.dtype() == y.dtype(),
               "masked_softmax_backward: y and dx must be contiguous {}, dy that shape",
               shape_str(y.shape()));
  const int64_t last = y.dim() - 1, Tk = y.shape()[last], Tq = y.shape()[last - 1];
  const Shape lead = drop_dim(y.shape(), last);
  const int64_t rows = shape_numel(lead);
  if (rows == 0 || Tk == 0) return;
  const Strided<1> rs = make_strided(lead, drop_dim(dy.strides(), last), "masked_softmax_backward");
  ENGRAM_DISPATCH_FLOAT(y.dtype(), "masked_softmax_backward", [&] {
    using T = scalar_t;
    masked_softmax_backward_kernel<T><<<line_blocks(rows), pow2_threads(Tk), 0, stream()>>>(
        y.data<T>(), dy.data<T>(), dx.data<T>(), rs, rows, Tq, Tk, dy.strides()[last], T(scale),
        causal, window, prefix);
    check_launch("masked_softmax_backward");
  });
}

// ---------------------------------------------------------------- topk
// key(v): ascending key = cpu_reduce.cpp's `better` order on values. Floats map to unsigned ints
// in numeric order (flip the sign bit of positives, all bits of negatives); -0 is made +0 first
// (the CPU treats them as equal: a tie, broken by index); NaNs share the best (largest) or worst
// (smallest) key. Equal keys are ordered by index, so (key, index) is a strict total order.
__device__ __forceinline__ uint64_t ordered_bits(float v) {
  const uint32_t u = __float_as_uint(v);
  return (uint64_t)((u & 0x80000000u) ? ~u : (u | 0x80000000u));
}
__device__ __forceinline__ uint64_t ordered_bits(double v) {
  const uint64_t u = (uint64_t)__double_as_longlong(v);
  return (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
}
template <typename T> __device__ __forceinline__ uint64_t topk_key(T v, bool largest) {
  if (is_nan(v)) return largest ? 0ull : ~0ull;
  if (v == T(0)) v = T(0);
  const uint64_t o = ordered_bits(v);  // largest: flipped within the type's width, never 0
  return largest ? (sizeof(T) == 4 ? 0xffffffffull - o : ~o) : o;
}

constexpr int64_t kTopkShared = 2048;  // longest line sorted in shared memory (32 KiB)

// Line l: keys/indices padded to P = 2^n (padding: key ~0, index >= len, so after every real
// element), bitonic-sorted ascending in K/I (shared memory, or this block's global slot), and the
// first k written out.
template <typename T>
__global__ void topk_kernel(const T* x, T* vals, int64_t* idx, Strided<3> ls, int64_t lines,
                            int64_t len, int64_t k, int64_t P, int64_t sx, int64_t sv, int64_t si,
                            bool largest, uint64_t* gk, int64_t* gi) {
  __shared__ uint64_t shk[kTopkShared];
  __shared__ int64_t shi[kTopkShared];
  uint64_t* K = gk ? gk + (int64_t)blockIdx.x * P : shk;
  int64_t* I = gi ? gi + (int64_t)blockIdx.x * P : shi;
  for (int64_t l = blockIdx.x; l < lines; l += gridDim.x) {
    int64_t off[3];
    ls.offsets(l, off);
    const T* xl = x + off[0];
    for (int64_t j = threadIdx.x; j < P; j += blockDim.x) {
      K[j] = j < len ? topk_key(xl[j * sx], largest) : ~0ull;
      I[j] = j;
    }
    __syncthreads();  // also makes global-slot writes visible to the whole block
    for (int64_t size = 2; size <= P; size <<= 1) {
      for (int64_t stride = size >> 1; stride > 0; stride >>= 1) {
        for (int64_t t = threadIdx.x; t < P / 2; t += blockDim.x) {
          const int64_t i = ((t & ~(stride - 1)) << 1) | (t & (stride - 1)), j = i + stride;
          const bool ascending = (i & size) == 0;
          const bool j_lt_i = K[j] < K[i] || (K[j] == K[i] && I[j] < I[i]);
          if (j_lt_i == ascending) {  // ascending: want K[i] < K[j]; descending: the reverse
            const uint64_t tk = K[i];
            K[i] = K[j];
            K[j] = tk;
            const int64_t ti = I[i];
            I[i] = I[j];
            I[j] = ti;
          }
        }
        __syncthreads();
      }
    }
    T* vl = vals + off[1];
    int64_t* il = idx + off[2];
    for (int64_t j = threadIdx.x; j < k; j += blockDim.x) {
      vl[j * sv] = xl[I[j] * sx];
      il[j * si] = I[j];
    }
    __syncthreads();  // K/I are rewritten for the next line
  }
}

static void topk(Tref x, int64_t k, int64_t dim, bool largest, Tref values, Tref indices) {
  check_line_op(x, dim, "topk");
  require_cuda(values, "topk", "values");
  require_cuda(indices, "topk", "indices");
  const int64_t len = x.shape()[dim];
  ENGRAM_CHECK(k >= 0 && k <= len, "topk: k={} out of range for dim {} of shape {}", k, dim,
               shape_str(x.shape()));
  Shape s = x.shape();
  s[dim] = k;
  ENGRAM_CHECK(values.shape() == s && values.dtype() == x.dtype() && indices.shape() == s &&
                   indices.dtype() == DType::i64,
               "topk: values must be {} {} and indices i64 of that shape", dtype_name(x.dtype()),
               shape_str(s));
  const Shape outer = drop_dim(x.shape(), dim);
  const int64_t lines = shape_numel(outer);
  if (lines == 0 || k == 0) return;
  const Strided<3> ls = make_strided(outer, drop_dim(x.strides(), dim),
                                     drop_dim(values.strides(), dim),
                                     drop_dim(indices.strides(), dim), "topk");
  int64_t P = 1;
  while (P < len) P <<= 1;
  const bool global = P > kTopkShared;
  // Global slots: as many blocks as fit in ~256 MiB of scratch (at least one), each looping lines.
  const int64_t slot_bytes = P * (int64_t)(sizeof(uint64_t) + sizeof(int64_t));
  const int64_t blocks = global ? std::clamp<int64_t>((256LL << 20) / slot_bytes, 1,
                                                      std::min<int64_t>(lines, 65535LL * 8))
                                : (int64_t)line_blocks(lines);
  Scratch keys(global ? (size_t)(blocks * P) * sizeof(uint64_t) : 0);
  Scratch ids(global ? (size_t)(blocks * P) * sizeof(int64_t) : 0);
  const int threads = (int)std::clamp<int64_t>(P / 2, 32, 1024);
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "topk", [&] {
    using T = scalar_t;
    topk_kernel<T><<<(unsigned)blocks, threads, 0, stream()>>>(
        x.data<T>(), values.data<T>(), indices.data<int64_t>(), ls, lines, len, k, P,
        x.strides()[dim], values.strides()[dim], indices.strides()[dim], largest,
        global ? keys.as<uint64_t>() : nullptr, global ? ids.as<int64_t>() : nullptr);
    check_launch("topk");
  });
}

void register_reduce(Backend& b) {
  b.reduce = reduce;
  b.arg_reduce = arg_reduce;
  b.cumsum = cumsum;
  b.softmax = softmax;
  b.softmax_backward = softmax_backward;
  b.masked_softmax = masked_softmax;
  b.masked_softmax_backward = masked_softmax_backward;
  b.topk = topk;
}

}  // namespace engram::cuda
