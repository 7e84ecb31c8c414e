// cuda/cuda_nn.cu — the nn family on the GPU: layer_norm, rms_norm (with backwards), fused softmax
// cross-entropy and nll over rows (mirrors core/cpu/cpu_nn.cpp, which sets exactly these fields).
//
//   layer_norm:  mu = mean(x), rstd = 1/sqrt(mean((x - mu)^2) + eps), xhat = (x - mu) * rstd,
//                y = xhat * w + b                                     (x [..., D], mean/rstd [rows])
//     backward:  g = dy * w;  dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),
//                dw = sum_rows dy * xhat,  db = sum_rows dy
//   rms_norm:    rstd = 1/sqrt(mean(x^2) + eps), y = x * rstd * w
//     backward:  g = dy * w;  dx = rstd * (g - x * rstd^2 * mean(g * x)),  dw = sum_rows dy * x * rstd
//   cross_entropy (smoothing e, C classes, target t, lse = log sum exp(z)), logits [N, C]:
//                loss = (1 - e) (lse - z_t) + e/C sum_c (lse - z_c);  dlogits = softmax(z) - q,
//                q_c = (1 - e) [c == t] + e/C
//   nll_loss:    loss = -lp_t;  backward: dlp[i, t] = -dloss[i], every other element 0
// Rows whose target == ignore_index give loss 0 and a zero gradient row. Every output is
// overwritten (never accumulated), as on the CPU; w, b may be undefined (1 and 0), and in the
// backwards dx, dw, db may be undefined (not computed).
//
// Layout: as on the CPU, inputs and outputs may be strided views. Row r (row-major over the
// leading dims) is located with the Strided indexer over the leading dims, the last dim with its
// own stride; mean/rstd [rows] are contiguous. One block per row (a grid-stride loop over rows)
// for the row-wise kernels, with block_sum / block_max; every sum is accumulated in double, as the
// CPU does, and each expression is written in the CPU's order and types (e.g. the softmax
// exponential is computed in T), so f32 results agree to rounding.
// dw/db are sums over rows: a deterministic two-stage reduction. Stage 1: blocks of (columns x a
// chunk of rows); each thread owns one column and sums its chunk's rows in order into a Scratch
// partial [chunks][2][D]. Stage 2: one thread per column adds the chunks in order. No atomics.
// Targets are checked (i64, in [0, C) or == ignore_index) by a small kernel before anything is
// written; the first bad row is reported with the CPU's message (one host synchronisation).
#include <algorithm>
#include <climits>
#include <cmath>

#include "cuda/common.cuh"

namespace engram::cuda {

__device__ __forceinline__ float dev_exp(float v) { return expf(v); }
__device__ __forceinline__ double dev_exp(double v) { return exp(v); }

// Threads for one row of `len` elements: a multiple of 32 (block_sum's requirement), 32..512.
static int row_threads(int64_t len) {
  return (int)std::clamp<int64_t>((len + 31) / 32 * 32, 32, 512);
}
static unsigned row_blocks(int64_t rows) {
  return (unsigned)std::clamp<int64_t>(rows, 1, 65535LL * 8);
}
static Shape lead(const Shape& s) { return Shape(s.begin(), s.end() - 1); }

static void check_like(Tref t, Tref x, const char* op, const char* what) {
  require_cuda(t, op, what);
  ENGRAM_CHECK(t.shape() == x.shape() && t.dtype() == x.dtype(), "{}: {} is {} {}, expected {} {}",
               op, what, dtype_name(t.dtype()), shape_str(t.shape()), dtype_name(x.dtype()),
               shape_str(x.shape()));
}
static void check_vec(Tref t, int64_t n, DType dt, const char* op, const char* what) {
  require_cuda(t, op, what);
  ENGRAM_CHECK(t.dim() == 1 && t.shape()[0] == n && t.dtype() == dt,
               "{}: {} is {} {}, expected {} [{}]", op, what, dtype_name(t.dtype()),
               shape_str(t.shape()), dtype_name(dt), n);
}
static int64_t last_len(Tref x, const char* op) {
  require_cuda(x, op, "x");
  ENGRAM_CHECK(x.dim() >= 1, "{}: expected at least a 1-D tensor, got shape {}", op,
               shape_str(x.shape()));
  return x.shape().back();
}
template <typename T> static const T* opt(Tref t) { return t.defined() ? t.data<T>() : nullptr; }
template <typename T> static T* opt_out(Tref t) { return t.defined() ? t.data<T>() : nullptr; }
static int64_t opt_stride(Tref t) { return t.defined() ? t.strides().back() : 0; }

// ---------------------------------------------------------------- layer_norm / rms_norm forward
// rms: no mean (mu = 0, mean not written) and sum x^2; else the two-pass centred variance.
template <typename T>
__global__ void norm_forward_kernel(const T* x, T* y, const T* w, int64_t sw, const T* b,
                                    int64_t sb, Strided<2> rs_, int64_t rows, int64_t D,
                                    int64_t sx, int64_t sy, double eps, T* mean, T* rstd,
                                    bool rms) {
  __shared__ double sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {  // uniform per block
    int64_t off[2];
    rs_.offsets(r, off);
    const T* xr = x + off[0];
    T* yr = y + off[1];
    double mu = 0, s = 0;
    if (!rms) {
      for (int64_t j = threadIdx.x; j < D; j += blockDim.x) s += (double)xr[j * sx];
      mu = block_sum(s, sh) / (double)D;
      s = 0;
    }
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      const double d = rms ? (double)xr[j * sx] : (double)xr[j * sx] - mu;
      s += d * d;
    }
    const double rs = 1.0 / sqrt(block_sum(s, sh) / (double)D + eps);
    if (threadIdx.x == 0) {
      if (!rms) mean[r] = T(mu);
      rstd[r] = T(rs);
    }
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      const double wj = (double)(w ? w[j * sw] : T(1));
      yr[j * sy] = rms ? T((double)xr[j * sx] * rs * wj)
                       : T(((double)xr[j * sx] - mu) * rs * wj + (double)(b ? b[j * sb] : T(0)));
    }
  }
}

template <typename T>
static void norm_forward_typed(Tref x, Tref w, Tref b, double eps, Tref y, Tref mean, Tref rstd,
                               bool rms, const char* op) {
  const int64_t D = x.shape().back(), rows = rstd.numel();
  if (rows == 0) return;
  norm_forward_kernel<T><<<row_blocks(rows), row_threads(D), 0, stream()>>>(
      x.data<T>(), y.data<T>(), opt<T>(w), opt_stride(w), opt<T>(b), opt_stride(b),
      make_strided(lead(x.shape()), lead(x.strides()), lead(y.strides()), op), rows, D,
      x.strides().back(), y.strides().back(), eps, rms ? nullptr : mean.data<T>(), rstd.data<T>(),
      rms);
  check_launch(op);
}

static int64_t check_norm(Tref x, Tref w, Tref b, Tref y, Tref mean, Tref rstd, const char* op) {
  const int64_t D = last_len(x, op), rows = shape_numel(lead(x.shape()));
  check_like(y, x, op, "y");
  if (w.defined()) check_vec(w, D, x.dtype(), op, "w");
  if (b.defined()) check_vec(b, D, x.dtype(), op, "b");
  if (mean.defined()) require_contiguous(mean, op, "mean");
  require_contiguous(rstd, op, "rstd");
  ENGRAM_CHECK(rstd.numel() == rows && rstd.dtype() == x.dtype() &&
                   (!mean.defined() || (mean.numel() == rows && mean.dtype() == x.dtype())),
               "{}: mean/rstd must be {} with {} elements", op, dtype_name(x.dtype()), rows);
  return D;
}

static void layer_norm(Tref x, Tref w, Tref b, double eps, Tref y, Tref mean, Tref rstd) {
  require_cuda(mean, "layer_norm", "mean");
  check_norm(x, w, b, y, mean, rstd, "layer_norm");
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "layer_norm", [&] {
    norm_forward_typed<scalar_t>(x, w, b, eps, y, mean, rstd, false, "layer_norm");
  });
}

static void rms_norm(Tref x, Tref w, double eps, Tref y, Tref rstd) {
  check_norm(x, w, Tensor(), y, Tensor(), rstd, "rms_norm");
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "rms_norm", [&] {
    norm_forward_typed<scalar_t>(x, w, Tensor(), eps, y, Tensor(), rstd, true, "rms_norm");
  });
}

// ---------------------------------------------------------------- backwards: dx (block per row)
// layer_norm: dx = rs (g - mean(g) - xhat mean(g xhat)); rms: dx = rs (g - x rs^2 mean(g x)).
template <typename T>
__global__ void norm_dx_kernel(const T* x, const T* dy, T* dx, const T* w, int64_t sw,
                               const T* mean, const T* rstd, Strided<3> rs_, int64_t rows,
                               int64_t D, int64_t sx, int64_t sg, int64_t sdx, bool rms) {
  __shared__ double sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    int64_t off[3];
    rs_.offsets(r, off);
    const T* xr = x + off[0];
    const T* gr = dy + off[1];
    T* dr = dx + off[2];
    const double rs = rstd[r];
    if (rms) {
      double sgx = 0;  // sum(g * x)
      for (int64_t j = threadIdx.x; j < D; j += blockDim.x)
        sgx += (double)gr[j * sg] * (double)(w ? w[j * sw] : T(1)) * (double)xr[j * sx];
      const double k = rs * rs * block_sum(sgx, sh) / (double)D;
      for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
        const double g = (double)gr[j * sg] * (double)(w ? w[j * sw] : T(1));
        dr[j * sdx] = T(rs * (g - (double)xr[j * sx] * k));
      }
    } else {
      const double mu = mean[r];
      double sg_ = 0, sgx = 0;  // sum(g), sum(g * xhat)
      for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
        const double g = (double)gr[j * sg] * (double)(w ? w[j * sw] : T(1));
        sg_ += g;
        sgx += g * ((double)xr[j * sx] - mu) * rs;
      }
      const double mg = block_sum(sg_, sh) / (double)D;
      const double mgx = block_sum(sgx, sh) / (double)D;
      for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
        const double g = (double)gr[j * sg] * (double)(w ? w[j * sw] : T(1));
        const double xh = ((double)xr[j * sx] - mu) * rs;
        dr[j * sdx] = T(rs * (g - mg - xh * mgx));
      }
    }
  }
}

// ---------------------------------------------------------------- backwards: dw/db (two stages)
// Stage 1: thread = column j, blockIdx.y = a chunk of rows summed in order:
//   part[c][0][j] = sum dy (x - mu) rs  (mu = 0 for rms: dy x rs),  part[c][1][j] = sum dy.
template <typename T>
__global__ void norm_param_partial_kernel(const T* x, const T* dy, const T* mean, const T* rstd,
                                          Strided<2> rs_, int64_t rows, int64_t D, int64_t sx,
                                          int64_t sg, int64_t chunk_rows, double* part) {
  const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= D) return;  // no block-wide synchronisation in this kernel
  const int64_t c = blockIdx.y, r0 = c * chunk_rows, r1 = r0 + chunk_rows < rows ? r0 + chunk_rows : rows;
  double a = 0, s = 0;
  for (int64_t r = r0; r < r1; ++r) {
    int64_t off[2];
    rs_.offsets(r, off);
    const double g = dy[off[1] + j * sg], mu = mean ? (double)mean[r] : 0.0, rs = rstd[r];
    a += g * ((double)x[off[0] + j * sx] - mu) * rs;
    s += g;
  }
  part[(c * 2) * D + j] = a;
  part[(c * 2 + 1) * D + j] = s;
}

// Stage 2: dw[j] = sum_c part[c][0][j], db[j] = sum_c part[c][1][j] (either may be null).
template <typename T>
__global__ void norm_param_finish_kernel(const double* part, int64_t chunks, int64_t D, T* dw,
                                         int64_t sdw, T* db, int64_t sdb) {
  ENGRAM_GRID_STRIDE(j, D) {
    double a = 0, s = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      a += part[(c * 2) * D + j];
      s += part[(c * 2 + 1) * D + j];
    }
    if (dw) dw[j * sdw] = T(a);
    if (db) db[j * sdb] = T(s);
  }
}

template <typename T>
static void norm_backward_typed(Tref x, Tref w, Tref mean, Tref rstd, Tref dy, Tref dx, Tref dw,
                                Tref db, bool rms, const char* op) {
  const int64_t D = x.shape().back(), rows = rstd.numel();
  const Shape lx = lead(x.shape()), sx = lead(x.strides()), sg = lead(dy.strides());
  const T* mp = rms ? nullptr : mean.data<T>();
  if (dx.defined() && rows > 0) {
    norm_dx_kernel<T><<<row_blocks(rows), row_threads(D), 0, stream()>>>(
        x.data<T>(), dy.data<T>(), dx.data<T>(), opt<T>(w), opt_stride(w), mp, rstd.data<T>(),
        make_strided(lx, sx, sg, lead(dx.strides()), op), rows, D, x.strides().back(),
        dy.strides().back(), dx.strides().back(), rms);
    check_launch(op);
  }
  if ((!dw.defined() && !db.defined()) || D == 0) return;
  const int64_t chunk_rows = std::max<int64_t>(16, (rows + 511) / 512);
  const int64_t chunks = (rows + chunk_rows - 1) / chunk_rows;  // <= 512; 0 when rows == 0
  Scratch part((size_t)chunks * 2 * (size_t)D * sizeof(double));
  const int threads = (int)std::min<int64_t>(256, (D + 31) / 32 * 32);
  if (chunks > 0) {
    dim3 grid((unsigned)((D + threads - 1) / threads), (unsigned)chunks);
    norm_param_partial_kernel<T><<<grid, threads, 0, stream()>>>(
        x.data<T>(), dy.data<T>(), mp, rstd.data<T>(), make_strided(lx, sx, sg, op), rows, D,
        x.strides().back(), dy.strides().back(), chunk_rows, part.as<double>());
    check_launch(op);
  }
  norm_param_finish_kernel<T><<<blocks_for(D), kThreads, 0, stream()>>>(
      part.as<double>(), chunks, D, opt_out<T>(dw), opt_stride(dw), opt_out<T>(db),
      opt_stride(db));
  check_launch(op);
}

static void check_norm_backward(Tref x, Tref w, Tref rstd, Tref dy, Tref dx, Tref dw, Tref db,
                                const char* op) {
  const int64_t D = last_len(x, op);
  check_like(dy, x, op, "dy");
  if (dx.defined()) check_like(dx, x, op, "dx");
  if (w.defined()) check_vec(w, D, x.dtype(), op, "w");
  if (dw.defined()) check_vec(dw, D, x.dtype(), op, "dw");
  if (db.defined()) check_vec(db, D, x.dtype(), op, "db");
  require_contiguous(rstd, op, "rstd");
  ENGRAM_CHECK(rstd.numel() == shape_numel(lead(x.shape())) && rstd.dtype() == x.dtype(),
               "{}: rstd must be {} with one element per row", op, dtype_name(x.dtype()));
}

static void layer_norm_backward(Tref x, Tref w, Tref mean, Tref rstd, Tref dy, Tref dx, Tref dw,
                                Tref db) {
  check_norm_backward(x, w, rstd, dy, dx, dw, db, "layer_norm_backward");
  require_contiguous(mean, "layer_norm_backward", "mean");
  ENGRAM_CHECK(mean.numel() == rstd.numel() && mean.dtype() == x.dtype(),
               "layer_norm_backward: mean must match rstd");
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "layer_norm_backward", [&] {
    norm_backward_typed<scalar_t>(x, w, mean, rstd, dy, dx, dw, db, false, "layer_norm_backward");
  });
}

static void rms_norm_backward(Tref x, Tref w, Tref rstd, Tref dy, Tref dx, Tref dw) {
  check_norm_backward(x, w, rstd, dy, dx, dw, Tensor(), "rms_norm_backward");
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "rms_norm_backward", [&] {
    norm_backward_typed<scalar_t>(x, w, Tensor(), rstd, dy, dx, dw, Tensor(), true,
                                  "rms_norm_backward");
  });
}

// ---------------------------------------------------------------- losses over rows
__global__ void find_bad_target_kernel(const int64_t* t, int64_t st, int64_t n, int64_t classes,
                                       int64_t ignore_index, unsigned long long* first) {
  ENGRAM_GRID_STRIDE(i, n) {
    const int64_t v = t[i * st];
    if (!(v == ignore_index || (v >= 0 && v < classes))) atomicMin(first, (unsigned long long)i);
  }
}

// The CPU's check_targets: i64, each target in [0, C) or == ignore_index; the first bad row
// is reported. Runs before anything is written.
static void check_targets(Tref target, int64_t n_classes, int64_t ignore_index, const char* op) {
  require_cuda(target, op, "target");
  ENGRAM_CHECK(target.dtype() == DType::i64, "{}: target must be i64, got {}", op,
               dtype_name(target.dtype()));
  const int64_t n = target.shape()[0], st = target.strides()[0];
  if (n == 0) return;
  Scratch first(sizeof(unsigned long long));
  unsigned long long* fp = first.as<unsigned long long>();
  ENGRAM_CUDA_CHECK(cudaMemsetAsync(fp, 0xff, sizeof(unsigned long long), stream()), op);
  find_bad_target_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(
      target.data<int64_t>(), st, n, n_classes, ignore_index, fp);
  check_launch(op);
  unsigned long long row = 0;
  ENGRAM_CUDA_CHECK(cudaMemcpyAsync(&row, fp, sizeof(row), cudaMemcpyDeviceToHost, stream()), op);
  synchronize(op);
  if (row == ULLONG_MAX) return;
  int64_t t = 0;
  ENGRAM_CUDA_CHECK(cudaMemcpyAsync(&t, target.data<int64_t>() + (int64_t)row * st, sizeof(t),
                                    cudaMemcpyDeviceToHost, stream()),
                    op);
  synchronize(op);
  ENGRAM_FAIL("{}: target {} at row {} is out of range for {} classes (ignore_index {})", op, t,
              (int64_t)row, n_classes, ignore_index);
}

// One block per row i of logits [N, C]; the CPU's statements in its order and types.
template <typename T>
__global__ void cross_entropy_kernel(const T* z, int64_t sn, int64_t sc, const int64_t* tgt,
                                     int64_t st, T* loss, int64_t sl, T* g, int64_t gn, int64_t gc,
                                     int64_t N, int64_t C, int64_t ignore_index, double on,
                                     double off, bool smooth) {
  __shared__ double sh[32];
  for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
    const T* zr = z + i * sn;
    T* gr = g ? g + i * gn : nullptr;
    const int64_t t = tgt[i * st];
    if (t == ignore_index) {  // the same for the whole block: no divergent synchronisation
      if (threadIdx.x == 0) loss[i * sl] = T(0);
      if (gr)
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) gr[c * gc] = T(0);
      continue;
    }
    double m = -INFINITY;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const double v = (double)zr[c * sc];
      m = m < v ? v : m;  // std::max(m, v)
    }
    T mx = T(block_max(m, sh, (double)-INFINITY));  // exact: a T converted to double and back
    if (mx == T(-INFINITY)) mx = T(0);               // an all -inf row: keep NaN out of the shift
    double s = 0, zsum = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const T e = dev_exp(T(zr[c * sc] - mx));
      s += e;
      zsum += zr[c * sc];
    }
    s = block_sum(s, sh);
    zsum = block_sum(zsum, sh);
    const double lse = (double)mx + log(s);
    if (threadIdx.x == 0) {
      double l = on * (lse - (double)zr[t * sc]);
      if (smooth) l += off * ((double)C * lse - zsum);
      loss[i * sl] = T(l);
    }
    if (gr) {
      const double inv = 1.0 / s;
      for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        const T e = dev_exp(T(zr[c * sc] - mx));  // the CPU's stashed exp, recomputed
        T v = T((double)e * inv - off);
        if (c == t) v = T((double)v - on);
        gr[c * gc] = v;
      }
    }
  }
}

template <typename T>
static void cross_entropy_typed(Tref logits, Tref target, int64_t ignore_index, double smoothing,
                                Tref loss, Tref dlogits) {
  const int64_t N = logits.shape()[0], C = logits.shape()[1];
  if (N == 0) return;
  T* gp = opt_out<T>(dlogits);
  cross_entropy_kernel<T><<<row_blocks(N), row_threads(C), 0, stream()>>>(
      logits.data<T>(), logits.strides()[0], logits.strides()[1], target.data<int64_t>(),
      target.strides()[0], loss.data<T>(), loss.strides()[0], gp,
      gp ? dlogits.strides()[0] : 0, gp ? dlogits.strides()[1] : 0, N, C, ignore_index,
      1.0 - smoothing, smoothing / (double)C, smoothing != 0);
  check_launch("cross_entropy");
}

static void cross_entropy(Tref logits, Tref target, int64_t ignore_index, double smoothing,
                          Tref loss, Tref dlogits) {
  require_cuda(logits, "cross_entropy", "logits");
  require_cuda(target, "cross_entropy", "target");
  ENGRAM_CHECK(logits.dim() == 2 && target.dim() == 1 && target.shape()[0] == logits.shape()[0],
               "cross_entropy: expected logits [N, C] and target [N], got {} and {}",
               shape_str(logits.shape()), shape_str(target.shape()));
  check_vec(loss, logits.shape()[0], logits.dtype(), "cross_entropy", "loss");
  if (dlogits.defined()) check_like(dlogits, logits, "cross_entropy", "dlogits");
  check_targets(target, logits.shape()[1], ignore_index, "cross_entropy");
  ENGRAM_DISPATCH_FLOAT(logits.dtype(), "cross_entropy", [&] {
    cross_entropy_typed<scalar_t>(logits, target, ignore_index, smoothing, loss, dlogits);
  });
}

template <typename T>
static void nll_loss_typed(Tref lp, Tref target, int64_t ignore_index, Tref loss) {
  const T* xp = lp.data<T>();
  const int64_t* tp = target.data<int64_t>();
  T* op = loss.data<T>();
  const int64_t sn = lp.strides()[0], sc = lp.strides()[1], st = target.strides()[0];
  const int64_t sl = loss.strides()[0];
  for_each_index(
      lp.shape()[0],
      [=] __device__(int64_t i) {
        const int64_t t = tp[i * st];
        op[i * sl] = t == ignore_index ? T(0) : T(-xp[i * sn + t * sc]);
      },
      "nll_loss");
}

static void nll_loss(Tref lp, Tref target, int64_t ignore_index, Tref loss) {
  require_cuda(lp, "nll_loss", "log_probs");
  require_cuda(target, "nll_loss", "target");
  ENGRAM_CHECK(lp.dim() == 2 && target.dim() == 1 && target.shape()[0] == lp.shape()[0],
               "nll_loss: expected log_probs [N, C] and target [N], got {} and {}",
               shape_str(lp.shape()), shape_str(target.shape()));
  check_vec(loss, lp.shape()[0], lp.dtype(), "nll_loss", "loss");
  check_targets(target, lp.shape()[1], ignore_index, "nll_loss");
  ENGRAM_DISPATCH_FLOAT(lp.dtype(), "nll_loss", [&] {
    nll_loss_typed<scalar_t>(lp, target, ignore_index, loss);
  });
}

// One thread per element of dlog_probs: -dloss[i] at the target, 0 elsewhere (overwritten).
template <typename T>
static void nll_loss_backward_typed(Tref target, int64_t ignore_index, Tref dloss, Tref dlp) {
  const int64_t N = dlp.shape()[0], C = dlp.shape()[1];
  const int64_t* tp = target.data<int64_t>();
  const T* gp = dloss.data<T>();
  T* op = dlp.data<T>();
  const int64_t st = target.strides()[0], sg = dloss.strides()[0];
  const int64_t sn = dlp.strides()[0], sc = dlp.strides()[1];
  for_each_index(
      N * C,
      [=] __device__(int64_t f) {
        const int64_t i = f / C, c = f % C, t = tp[i * st];
        op[i * sn + c * sc] = (t != ignore_index && c == t) ? T(-gp[i * sg]) : T(0);
      },
      "nll_loss_backward");
}

static void nll_loss_backward(Tref target, int64_t ignore_index, Tref dloss, Tref dlp) {
  require_cuda(target, "nll_loss_backward", "target");
  require_cuda(dloss, "nll_loss_backward", "dloss");
  require_cuda(dlp, "nll_loss_backward", "dlog_probs");
  ENGRAM_CHECK(dlp.dim() == 2 && target.dim() == 1 && dloss.dim() == 1 &&
                   target.shape()[0] == dlp.shape()[0] && dloss.shape()[0] == dlp.shape()[0],
               "nll_loss_backward: expected target [N], dloss [N], dlog_probs [N, C], got {}, {}, {}",
               shape_str(target.shape()), shape_str(dloss.shape()), shape_str(dlp.shape()));
  ENGRAM_CHECK(dloss.dtype() == dlp.dtype(), "nll_loss_backward: dloss is {}, dlog_probs {}",
               dtype_name(dloss.dtype()), dtype_name(dlp.dtype()));
  check_targets(target, dlp.shape()[1], ignore_index, "nll_loss_backward");
  ENGRAM_DISPATCH_FLOAT(dlp.dtype(), "nll_loss_backward", [&] {
    nll_loss_backward_typed<scalar_t>(target, ignore_index, dloss, dlp);
  });
}

void register_nn(Backend& b) {
  b.layer_norm = layer_norm;
  b.layer_norm_backward = layer_norm_backward;
  b.rms_norm = rms_norm;
  b.rms_norm_backward = rms_norm_backward;
  b.cross_entropy = cross_entropy;
  b.nll_loss = nll_loss;
  b.nll_loss_backward = nll_loss_backward;
}

}  // namespace engram::cuda
