// core/cpu/cpu_nn.cpp — CPU kernels of the nn family: layer_norm, rms_norm, fused softmax
// cross-entropy and nll over rows.
//
// Every kernel works on rows: the last dim of a tensor [..., D] (layer_norm, rms_norm) or the
// rows of [N, C] (losses). Inputs may be arbitrary strided views (rows are located with a
// LineIndexer along the last dim); the per-row statistics mean/rstd [rows] are contiguous, as the
// autograd side allocates them. Rows are split over OpenMP threads; every sum is accumulated in
// double and nothing is allocated inside the row loop.
//
//   layer_norm:  mu = mean(x), rstd = 1/sqrt(mean((x - mu)^2) + eps), xhat = (x - mu) * rstd,
//                y = xhat * w + b
//     backward:  g = dy * w;  dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),
//                dw = sum_rows dy * xhat,  db = sum_rows dy
//   rms_norm:    rstd = 1/sqrt(mean(x^2) + eps), y = x * rstd * w
//     backward:  g = dy * w;  dx = rstd * (g - x * rstd^2 * mean(g * x)),  dw = sum_rows dy * x * rstd
//   cross_entropy (label smoothing e, C classes, target t, lse = log sum exp(z)):
//                loss = (1 - e) * (lse - z_t) + e/C * sum_c (lse - z_c)      (PyTorch's formula)
//                dlogits = softmax(z) - q,  q_c = (1 - e) [c == t] + e/C
//   nll_loss:    loss = -lp_t;  dlp_t = -dloss
// Rows whose target equals ignore_index give loss 0 and a zero gradient row.
#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/backend.h"
#include "core/cpu/strided.h"

namespace engram::cpu {

// Runs fn(row) for every row, split over threads when the work (rows * len) is large.
template <class Fn> static void parallel_rows(int64_t rows, int64_t len, Fn fn) {
#pragma omp parallel for if (rows * len > kParallelGrain && rows > 1) schedule(static)
  for (int64_t r = 0; r < rows; ++r) fn(r);
}

// Threads to use for a row loop that also reduces over rows (dw/db): each thread keeps its own
// partial sums, which are added up afterwards (no atomics, deterministic for a fixed count).
static int row_threads(int64_t rows, int64_t len) {
  return (rows * len > kParallelGrain && rows > 1) ? omp_get_max_threads() : 1;
}

// A 1-D optional parameter (w or b): pointer and stride, or null when undefined.
template <typename T> struct Param {
  const T* p = nullptr;
  int64_t s = 0;
  explicit Param(Tref t) {
    if (t.defined()) {
      p = t.data<T>();
      s = t.strides()[0];
    }
  }
  T at(int64_t j, T dflt) const { return p ? p[j * s] : dflt; }
};

// A weight row as contiguous doubles (1 where there is no weight), read once per call instead of
// through a branch and a stride per element.
template <typename T> std::vector<double> param_row(const Param<T>& w, int64_t n) {
  std::vector<double> row(n);
  for (int64_t j = 0; j < n; ++j) row[j] = (double)w.at(j, T(1));
  return row;
}

static int64_t last_len(Tref x, const char* op) {
  ENGRAM_CHECK(x.dim() >= 1, "{}: expected at least a 1-D tensor, got shape {}", op,
               shape_str(x.shape()));
  return x.shape().back();
}

// ---------------------------------------------------------------- layer_norm
// The row loops take their strides as template types: Unit (1 at compile time) for the common
// contiguous rows, so they vectorise (the sums in double with `omp simd reduction`, which lets
// the compiler keep several partial sums), or int64_t for any other layout.
struct Unit {
  constexpr operator int64_t() const { return 1; }
};

template <typename T, class S, class SW>
static void layer_norm_row(const T* xr, S sx, T* yr, S sy, const T* w, SW sw, const T* b, SW sb,
                           int64_t D, double eps, T& mean_out, T& rstd_out) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < D; ++j) s += xr[j * sx];
  const double mu = s / (double)D;
  double v = 0;  // two passes: the centred sum of squares does not cancel catastrophically
#pragma omp simd reduction(+ : v)
  for (int64_t j = 0; j < D; ++j) {
    const double d = xr[j * sx] - mu;
    v += d * d;
  }
  const double rs = 1.0 / std::sqrt(v / (double)D + eps);
  mean_out = T(mu);
  rstd_out = T(rs);
  if (w && b) {
#pragma omp simd
    for (int64_t j = 0; j < D; ++j)
      yr[j * sy] = T((xr[j * sx] - mu) * rs * (double)w[j * sw] + (double)b[j * sb]);
  } else {
    for (int64_t j = 0; j < D; ++j)
      yr[j * sy] = T((xr[j * sx] - mu) * rs * (w ? (double)w[j * sw] : 1.0) + (b ? (double)b[j * sb] : 0.0));
  }
}

template <typename T>
static void layer_norm_typed(Tref x, Tref w, Tref b, double eps, Tref y, Tref mean, Tref rstd) {
  const int64_t last = x.dim() - 1, D = x.shape()[last];
  LineIndexer li = make_line_indexer(x.shape(), last, {&x.strides(), &y.strides()});
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
  T* mp = mean.data<T>();
  T* rp = rstd.data<T>();
  const int64_t sx = x.strides()[last], sy = y.strides()[last];
  const T* wp = w.defined() ? w.data<T>() : nullptr;
  const T* bp = b.defined() ? b.data<T>() : nullptr;
  const int64_t sw = w.defined() ? w.strides()[0] : 1, sb = b.defined() ? b.strides()[0] : 1;
  const bool unit = sx == 1 && sy == 1 && sw == 1 && sb == 1;
  parallel_rows(li.lines(), D, [&](int64_t r) {
    const T* xr = xp + li.offset(0, r);
    T* yr = yp + li.offset(1, r);
    if (unit) layer_norm_row<T>(xr, Unit{}, yr, Unit{}, wp, Unit{}, bp, Unit{}, D, eps, mp[r], rp[r]);
    else layer_norm_row<T>(xr, sx, yr, sy, wp, sw, bp, sb, D, eps, mp[r], rp[r]);
  });
}

static void layer_norm(Tref x, Tref w, Tref b, double eps, Tref y, Tref mean, Tref rstd) {
  last_len(x, "layer_norm");
  ENGRAM_CHECK(mean.is_contiguous() && rstd.is_contiguous(),
               "layer_norm: mean/rstd must be contiguous");
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "layer_norm", [&] {
    layer_norm_typed<scalar_t>(x, w, b, eps, y, mean, rstd);
  });
}

// One row of the backward: dx (when dr is not null) and the row's share of dw, db (into pw,
// [2][D] = sum dy * xhat, sum dy, when not null). Strides as in layer_norm_row.
template <typename T, class S, class SW>
static void layer_norm_backward_row(const T* xr, S sx, const T* gr, S sg, T* dr, S sdx, const T* w,
                                    SW sw, double mu, double rs, int64_t D, double* pw) {
  if (dr) {
    double sum_g = 0, sum_gx = 0;  // sum(g), sum(g * xhat) with g = dy * w
#pragma omp simd reduction(+ : sum_g, sum_gx)
    for (int64_t j = 0; j < D; ++j) {
      const double g = (double)gr[j * sg] * (w ? (double)w[j * sw] : 1.0);
      sum_g += g;
      sum_gx += g * (xr[j * sx] - mu) * rs;
    }
    const double mg = sum_g / (double)D, mgx = sum_gx / (double)D;
#pragma omp simd
    for (int64_t j = 0; j < D; ++j) {
      const double g = (double)gr[j * sg] * (w ? (double)w[j * sw] : 1.0);
      const double xh = (xr[j * sx] - mu) * rs;
      dr[j * sdx] = T(rs * (g - mg - xh * mgx));
    }
  }
  if (pw) {
#pragma omp simd
    for (int64_t j = 0; j < D; ++j) {
      const double g = gr[j * sg];
      pw[j] += g * (xr[j * sx] - mu) * rs;
      pw[D + j] += g;
    }
  }
}

template <typename T>
static void layer_norm_backward_typed(Tref x, Tref w, Tref mean, Tref rstd, Tref dy, Tref dx,
                                      Tref dw, Tref db) {
  const int64_t last = x.dim() - 1, D = x.shape()[last];
  // dx may be undefined: index it with x's strides (never dereferenced then)
  LineIndexer li = make_line_indexer(x.shape(), last,
                                     {&x.strides(), &dy.strides(),
                                      dx.defined() ? &dx.strides() : &x.strides()});
  const int64_t rows = li.lines();
  const T* xp = x.data<T>();
  const T* gp = dy.data<T>();
  T* dxp = dx.defined() ? dx.data<T>() : nullptr;
  const T* mp = mean.data<T>();
  const T* rp = rstd.data<T>();
  const T* wp = w.defined() ? w.data<T>() : nullptr;
  const int64_t sw = w.defined() ? w.strides()[0] : 1;
  const int64_t sx = x.strides()[last], sg = dy.strides()[last];
  const int64_t sdx = dx.defined() ? dx.strides()[last] : 1;
  const bool unit = sx == 1 && sg == 1 && sdx == 1 && sw == 1;
  const bool want_params = dw.defined() || db.defined();
  const int nt = row_threads(rows, D);
  // per-thread partials: [nt][2][D] = (sum dy * xhat, sum dy)
  std::vector<double> part(want_params ? (size_t)nt * 2 * (size_t)D : 0, 0.0);
#pragma omp parallel num_threads(nt)
  {
    double* pw = want_params ? part.data() + (size_t)omp_get_thread_num() * 2 * (size_t)D : nullptr;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = xp + li.offset(0, r);
      const T* gr = gp + li.offset(1, r);
      T* dr = dxp ? dxp + li.offset(2, r) : nullptr;
      if (unit)
        layer_norm_backward_row<T>(xr, Unit{}, gr, Unit{}, dr, Unit{}, wp, Unit{}, mp[r], rp[r], D, pw);
      else
        layer_norm_backward_row<T>(xr, sx, gr, sg, dr, sdx, wp, sw, mp[r], rp[r], D, pw);
    }
  }
  if (!want_params) return;
  T* dwp = dw.defined() ? dw.data<T>() : nullptr;
  T* dbp = db.defined() ? db.data<T>() : nullptr;
  const int64_t sdw = dw.defined() ? dw.strides()[0] : 0, sdb = db.defined() ? db.strides()[0] : 0;
  for (int64_t j = 0; j < D; ++j) {
    double a = 0, c = 0;
    for (int t = 0; t < nt; ++t) {
      a += part[(size_t)t * 2 * D + j];
      c += part[(size_t)t * 2 * D + D + j];
    }
    if (dwp) dwp[j * sdw] = T(a);
    if (dbp) dbp[j * sdb] = T(c);
  }
}

static void layer_norm_backward(Tref x, Tref w, Tref mean, Tref rstd, Tref dy, Tref dx, Tref dw,
                                Tref db) {
  last_len(x, "layer_norm_backward");
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "layer_norm_backward", [&] {
    layer_norm_backward_typed<scalar_t>(x, w, mean, rstd, dy, dx, dw, db);
  });
}

// ---------------------------------------------------------------- rms_norm
template <typename T>
static void rms_norm_typed(Tref x, Tref w, double eps, Tref y, Tref rstd) {
  const int64_t last = x.dim() - 1, D = x.shape()[last];
  LineIndexer li = make_line_indexer(x.shape(), last, {&x.strides(), &y.strides()});
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
  T* rp = rstd.data<T>();
  Param<T> wp(w);
  const int64_t sx = x.strides()[last], sy = y.strides()[last];
  const std::vector<double> wv = param_row(wp, D);
  parallel_rows(li.lines(), D, [&](int64_t r) {
    const T* xr = xp + li.offset(0, r);
    T* yr = yp + li.offset(1, r);
    double s = 0;
    // simd reduction: the sum in vector lanes (in order it ran one element at a time)
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < D; ++j) s += (double)xr[j * sx] * xr[j * sx];
    const double rs = 1.0 / std::sqrt(s / (double)D + eps);
    rp[r] = T(rs);
#pragma omp simd
    for (int64_t j = 0; j < D; ++j) yr[j * sy] = T(xr[j * sx] * rs * wv[j]);
  });
}

static void rms_norm(Tref x, Tref w, double eps, Tref y, Tref rstd) {
  last_len(x, "rms_norm");
  ENGRAM_CHECK(rstd.is_contiguous(), "rms_norm: rstd must be contiguous");
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "rms_norm", [&] { rms_norm_typed<scalar_t>(x, w, eps, y, rstd); });
}

template <typename T>
static void rms_norm_backward_typed(Tref x, Tref w, Tref rstd, Tref dy, Tref dx, Tref dw) {
  const int64_t last = x.dim() - 1, D = x.shape()[last];
  LineIndexer li = make_line_indexer(x.shape(), last,
                                     {&x.strides(), &dy.strides(),
                                      dx.defined() ? &dx.strides() : &x.strides()});
  const int64_t rows = li.lines();
  const T* xp = x.data<T>();
  const T* gp = dy.data<T>();
  T* dxp = dx.defined() ? dx.data<T>() : nullptr;
  const T* rp = rstd.data<T>();
  Param<T> wp(w);
  const int64_t sx = x.strides()[last], sg = dy.strides()[last];
  const int64_t sdx = dx.defined() ? dx.strides()[last] : 0;
  const bool want_w = dw.defined();
  const std::vector<double> wv = param_row(wp, D);
  const int nt = row_threads(rows, D);
  std::vector<double> part(want_w ? (size_t)nt * (size_t)D : 0, 0.0);  // per-thread sum dy*x*rstd
#pragma omp parallel num_threads(nt)
  {
    double* pw = want_w ? part.data() + (size_t)omp_get_thread_num() * (size_t)D : nullptr;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = xp + li.offset(0, r);
      const T* gr = gp + li.offset(1, r);
      const double rs = rp[r];
      if (dxp) {
        double sgx = 0;  // sum(g * x)
#pragma omp simd reduction(+ : sgx)
        for (int64_t j = 0; j < D; ++j) sgx += (double)gr[j * sg] * wv[j] * (double)xr[j * sx];
        const double k = rs * rs * sgx / (double)D;
        T* dr = dxp + li.offset(2, r);
#pragma omp simd
        for (int64_t j = 0; j < D; ++j) {
          double g = (double)gr[j * sg] * wv[j];
          dr[j * sdx] = T(rs * (g - (double)xr[j * sx] * k));
        }
      }
      if (pw)
#pragma omp simd
        for (int64_t j = 0; j < D; ++j) pw[j] += (double)gr[j * sg] * (double)xr[j * sx] * rs;
    }
  }
  if (!want_w) return;
  T* dwp = dw.data<T>();
  const int64_t sdw = dw.strides()[0];
  for (int64_t j = 0; j < D; ++j) {
    double a = 0;
    for (int t = 0; t < nt; ++t) a += part[(size_t)t * D + j];
    dwp[j * sdw] = T(a);
  }
}

static void rms_norm_backward(Tref x, Tref w, Tref rstd, Tref dy, Tref dx, Tref dw) {
  last_len(x, "rms_norm_backward");
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "rms_norm_backward", [&] {
    rms_norm_backward_typed<scalar_t>(x, w, rstd, dy, dx, dw);
  });
}

// ---------------------------------------------------------------- losses over rows
// Checked serially before the parallel loop (an exception must not leave an OpenMP region).
static void check_targets(Tref target, int64_t n_classes, int64_t ignore_index, const char* op) {
  ENGRAM_CHECK(target.dtype() == DType::i64, "{}: target must be i64, got {}", op,
               dtype_name(target.dtype()));
  const int64_t* tp = target.data<int64_t>();
  const int64_t n = target.shape()[0], st = target.strides()[0];
  for (int64_t i = 0; i < n; ++i) {
    int64_t t = tp[i * st];
    ENGRAM_CHECK(t == ignore_index || (t >= 0 && t < n_classes),
                 "{}: target {} at row {} is out of range for {} classes (ignore_index {})", op, t,
                 i, n_classes, ignore_index);
  }
}

template <typename T>
static void cross_entropy_typed(Tref logits, Tref target, int64_t ignore_index, double smoothing,
                                Tref loss, Tref dlogits) {
  const int64_t N = logits.shape()[0], C = logits.shape()[1];
  const T* zp = logits.data<T>();
  const int64_t* tp = target.data<int64_t>();
  T* lp = loss.data<T>();
  T* gp = dlogits.defined() ? dlogits.data<T>() : nullptr;
  const int64_t sn = logits.strides()[0], sc = logits.strides()[1], st = target.strides()[0];
  const int64_t sl = loss.strides()[0];
  const int64_t gn = gp ? dlogits.strides()[0] : 0, gc = gp ? dlogits.strides()[1] : 0;
  const double on = 1.0 - smoothing, off = smoothing / (double)C;
  parallel_rows(N, C, [&](int64_t i) {
    const T* z = zp + i * sn;
    T* g = gp ? gp + i * gn : nullptr;
    const int64_t t = tp[i * st];
    if (t == ignore_index) {
      lp[i * sl] = T(0);
      if (g)
        for (int64_t c = 0; c < C; ++c) g[c * gc] = T(0);
      return;
    }
    T mx = -std::numeric_limits<T>::infinity();
    for (int64_t c = 0; c < C; ++c) mx = std::max(mx, z[c * sc]);
    if (std::isinf(mx) && mx < 0) mx = 0;  // an all -inf row: keep NaN out of the shift
    double s = 0, zsum = 0;
    for (int64_t c = 0; c < C; ++c) {
      T e = std::exp(z[c * sc] - mx);
      s += e;
      zsum += z[c * sc];
      if (g) g[c * gc] = e;  // stash exp; normalised below
    }
    const double lse = (double)mx + std::log(s);
    double l = on * (lse - (double)z[t * sc]);
    if (smoothing != 0) l += off * ((double)C * lse - zsum);
    lp[i * sl] = T(l);
    if (g) {
      const double inv = 1.0 / s;
      for (int64_t c = 0; c < C; ++c) g[c * gc] = T((double)g[c * gc] * inv - off);
      g[t * gc] = T((double)g[t * gc] - on);
    }
  });
}

static void cross_entropy(Tref logits, Tref target, int64_t ignore_index, double smoothing,
                          Tref loss, Tref dlogits) {
  ENGRAM_CHECK(logits.dim() == 2 && target.dim() == 1 && target.shape()[0] == logits.shape()[0],
               "cross_entropy: expected logits [N, C] and target [N], got {} and {}",
               shape_str(logits.shape()), shape_str(target.shape()));
  check_targets(target, logits.shape()[1], ignore_index, "cross_entropy");
  ENGRAM_DISPATCH_FLOAT(logits.dtype(), "cross_entropy", [&] {
    cross_entropy_typed<scalar_t>(logits, target, ignore_index, smoothing, loss, dlogits);
  });
}

template <typename T>
static void nll_loss_typed(Tref lp, Tref target, int64_t ignore_index, Tref loss) {
  const int64_t N = lp.shape()[0];
  const T* xp = lp.data<T>();
  const int64_t* tp = target.data<int64_t>();
  T* op = loss.data<T>();
  const int64_t sn = lp.strides()[0], sc = lp.strides()[1], st = target.strides()[0];
  const int64_t sl = loss.strides()[0];
  parallel_rows(N, 1, [&](int64_t i) {
    const int64_t t = tp[i * st];
    op[i * sl] = t == ignore_index ? T(0) : T(-xp[i * sn + t * sc]);
  });
}

static void nll_loss(Tref lp, Tref target, int64_t ignore_index, Tref loss) {
  ENGRAM_CHECK(lp.dim() == 2 && target.dim() == 1 && target.shape()[0] == lp.shape()[0],
               "nll_loss: expected log_probs [N, C] and target [N], got {} and {}",
               shape_str(lp.shape()), shape_str(target.shape()));
  check_targets(target, lp.shape()[1], ignore_index, "nll_loss");
  ENGRAM_DISPATCH_FLOAT(lp.dtype(), "nll_loss", [&] {
    nll_loss_typed<scalar_t>(lp, target, ignore_index, loss);
  });
}

template <typename T>
static void nll_loss_backward_typed(Tref target, int64_t ignore_index, Tref dloss, Tref dlp) {
  const int64_t N = dlp.shape()[0], C = dlp.shape()[1];
  const int64_t* tp = target.data<int64_t>();
  const T* gp = dloss.data<T>();
  T* op = dlp.data<T>();
  const int64_t st = target.strides()[0], sg = dloss.strides()[0];
  const int64_t sn = dlp.strides()[0], sc = dlp.strides()[1];
  parallel_rows(N, C, [&](int64_t i) {
    T* row = op + i * sn;
    for (int64_t c = 0; c < C; ++c) row[c * sc] = T(0);
    const int64_t t = tp[i * st];
    if (t != ignore_index) row[t * sc] = -gp[i * sg];
  });
}

static void nll_loss_backward(Tref target, int64_t ignore_index, Tref dloss, Tref dlp) {
  ENGRAM_CHECK(dlp.dim() == 2 && target.dim() == 1 && dloss.dim() == 1 &&
                   target.shape()[0] == dlp.shape()[0] && dloss.shape()[0] == dlp.shape()[0],
               "nll_loss_backward: expected target [N], dloss [N], dlog_probs [N, C], got {}, {}, {}",
               shape_str(target.shape()), shape_str(dloss.shape()), shape_str(dlp.shape()));
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

}  // namespace engram::cpu
