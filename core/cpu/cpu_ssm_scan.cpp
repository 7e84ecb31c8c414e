// core/cpu/cpu_ssm_scan.cpp — CPU kernels of the 2x2-block scan, the Cauchy kernel and the
// complex Vandermonde powers (nn/ssm/).
//
// linear_scan_2x2, along dim 1 of [B, T, F, 2] (LinOSS's oscillators, S5's complex modes):
//   forward   h_t = M_t h_{t-1} + f_t,           t = 0 .. T-1,  h_{-1} = h0 (or 0)
//   reverse   g_t = dh_t + M_{t+1}^T g_{t+1},    t = T-1 .. 0,  g_T = 0
// with M_t [2, 2] per (b, t, f). The reverse scan is the adjoint of the forward one
// (autograd/ssm_scan_ops.cpp builds dM, df, dh0 from g). Every (b, f) column is an independent
// recurrence, sequential over T; work is split over B and blocks of kFeatBlock columns, and each
// time step is one pass over the block's columns, so memory is read row by row. Operands are
// addressed through their own strides (M's broadcasts over B, T or F are stride 0), so no
// operand is ever copied.
//
// cauchy_kernel, complex as trailing [re, im], per row r (S4's generating-function sums):
//   k_l = sum_n v_n c_ln,  c_ln = 1 / (z_l - w_n)
// backward, from the real-pair gradient g_l of k_l (for a holomorphic map the real-pair
// gradient of its input is conj(f') times the upstream pair):
//   dv_n = sum_l conj(c_ln) g_l
//   dw_n = sum_l conj(v_n c_ln^2) g_l             (dk_l/dw_n = v_n c_ln^2)
//   dz_l = -conj(sum_n v_n c_ln^2) g_l            (dk_l/dz_l = -sum_n v_n c_ln^2)
// The forward and dz are independent per (r, l); dv and dw per (r, n), each a sum over l: two
// passes, each split over its own independent outputs. Accumulation is in the tensor's dtype.
//
// vandermonde, complex as trailing [re, im], per entry r (S4D's kernel powers):
//   V_rj = exp(a_r p_j),  p_j = start + j step,  j = 0 .. P-1
// backward (real-pair convention: conj(dV_rj/da_r) g_rj, dV_rj/da_r = p_j V_rj):
//   da_r = sum_j p_j conj(V_rj) g_rj
// The forward runs in double whatever the dtype: exp/cos/sin once every kReseed powers, the
// powers between them by multiplying by q = exp(a step) (one complex multiply instead of three
// transcendentals; at most kReseed roundings of double, far below float's or the f64 gradcheck's
// resolution). The angle ai p is formed in double too, so p up to thousands loses nothing.
#include <algorithm>
#include <cmath>

#include "core/backend.h"
#include "core/cpu/kernel_checks.h"
#include "core/kernel_args.h"
#include "core/cpu/strided.h"

namespace engram::cpu {

constexpr int64_t kFeatBlock = 256;

// Element strides of the scan operands: [B, T, F, 2(, 2)], and h0 [B, F, 2].
struct ScanStrides {
  int64_t b = 0, t = 0, f = 0, i = 0, j = 0;
};

static ScanStrides strides_of(Tref x, bool time_dim) {
  const Shape& s = x.strides();
  ScanStrides st;
  size_t k = 0;
  st.b = s[k++];
  if (time_dim) st.t = s[k++];
  st.f = s[k++];
  st.i = s[k++];
  if (k < s.size()) st.j = s[k];
  return st;
}

// One time step over the columns [f0, f1): h = M prev + f, or h = f when prev is null (h_{-1} = 0).
template <typename T>
static inline void step_2x2(const T* m, ScanStrides sm, const T* f, ScanStrides sf, const T* prev,
                            ScanStrides sp, T* h, ScanStrides sh, int64_t f0, int64_t f1) {
  if (!prev) {
    for (int64_t c = f0; c < f1; ++c) {
      h[c * sh.f] = f[c * sf.f];
      h[c * sh.f + sh.i] = f[c * sf.f + sf.i];
    }
    return;
  }
  for (int64_t c = f0; c < f1; ++c) {
    const T* mc = m + c * sm.f;
    const T p0 = prev[c * sp.f], p1 = prev[c * sp.f + sp.i];
    h[c * sh.f] = mc[0] * p0 + mc[sm.j] * p1 + f[c * sf.f];
    h[c * sh.f + sh.i] = mc[sm.i] * p0 + mc[sm.i + sm.j] * p1 + f[c * sf.f + sf.i];
  }
}

template <typename T>
static void scan_2x2_typed(const T* M, ScanStrides sm, const T* f, ScanStrides sf, const T* h0,
                           ScanStrides s0, T* h, ScanStrides sh, int64_t B, int64_t L, int64_t F) {
  const int64_t nblk = (F + kFeatBlock - 1) / kFeatBlock, work = B * nblk;
#pragma omp parallel for if (B * L * F * 4 > kParallelGrain && work > 1) schedule(static)
  for (int64_t w = 0; w < work; ++w) {
    const int64_t b = w / nblk, f0 = (w % nblk) * kFeatBlock, f1 = std::min(F, f0 + kFeatBlock);
    const T* prev = h0 ? h0 + b * s0.b : nullptr;
    ScanStrides sp = s0;
    for (int64_t t = 0; t < L; ++t) {
      T* ht = h + b * sh.b + t * sh.t;
      step_2x2(M + b * sm.b + t * sm.t, sm, f + b * sf.b + t * sf.t, sf, prev, sp, ht, sh, f0, f1);
      prev = ht;
      sp = sh;
    }
  }
}

template <typename T>
static void scan_2x2_reverse_typed(const T* M, ScanStrides sm, const T* dh, ScanStrides sd, T* g,
                                   ScanStrides sg, int64_t B, int64_t L, int64_t F) {
  const int64_t nblk = (F + kFeatBlock - 1) / kFeatBlock, work = B * nblk;
  ScanStrides smt = sm;  // M^T: the same entries with the row and column strides swapped
  std::swap(smt.i, smt.j);
#pragma omp parallel for if (B * L * F * 4 > kParallelGrain && work > 1) schedule(static)
  for (int64_t w = 0; w < work; ++w) {
    const int64_t b = w / nblk, f0 = (w % nblk) * kFeatBlock, f1 = std::min(F, f0 + kFeatBlock);
    for (int64_t t = L - 1; t >= 0; --t) {
      // g_t = M_{t+1}^T g_{t+1} + dh_t: the forward step with time reversed and shifted by one
      T* gt = g + b * sg.b + t * sg.t;
      const T* d = dh + b * sd.b + t * sd.t;
      if (t + 1 < L) step_2x2(M + b * sm.b + (t + 1) * sm.t, smt, d, sd, gt + sg.t, sg, gt, sg, f0, f1);
      else step_2x2<T>(nullptr, smt, d, sd, nullptr, sg, gt, sg, f0, f1);
    }
  }
}

static void check_scan_2x2(const char* op, Tref M, Tref f, Tref out) {
  ENGRAM_CHECK(f.dim() == 4 && f.shape()[3] == 2 && out.shape() == f.shape(),
               "{}: expected f and the output [B, T, F, 2], got {} and {}", op,
               shape_str(f.shape()), shape_str(out.shape()));
  Shape ms = f.shape();
  ms.push_back(2);
  ENGRAM_CHECK(M.shape() == ms, "{}: expected M {} (= f's [B, T, F] + [2, 2]), got {}", op,
               shape_str(ms), shape_str(M.shape()));
  ENGRAM_CHECK(M.dtype() == f.dtype() && out.dtype() == f.dtype(), "{}: dtypes differ: {}, {}, {}",
               op, dtype_name(M.dtype()), dtype_name(f.dtype()), dtype_name(out.dtype()));
}

static void linear_scan_2x2(Tref M, Tref f, Tref h0, Tref h) {
  check_scan_2x2("linear_scan_2x2", M, f, h);
  const int64_t B = f.shape()[0], L = f.shape()[1], F = f.shape()[2];
  if (h0.defined())
    ENGRAM_CHECK(h0.shape() == Shape({B, F, 2}) && h0.dtype() == f.dtype(),
                 "linear_scan_2x2: h0 {} {} should be {} [{}, {}, 2]", dtype_name(h0.dtype()),
                 shape_str(h0.shape()), dtype_name(f.dtype()), B, F);
  if (f.numel() == 0) return;
  ENGRAM_DISPATCH_FLOAT(f.dtype(), "linear_scan_2x2", [&] {
    using T = scalar_t;
    scan_2x2_typed<T>(M.data<T>(), strides_of(M, true), f.data<T>(), strides_of(f, true),
                      h0.defined() ? h0.data<T>() : nullptr,
                      h0.defined() ? strides_of(h0, false) : ScanStrides{}, h.data<T>(),
                      strides_of(h, true), B, L, F);
  });
}

static void linear_scan_2x2_reverse(Tref M, Tref dh, Tref g) {
  check_scan_2x2("linear_scan_2x2_reverse", M, dh, g);
  const int64_t B = dh.shape()[0], L = dh.shape()[1], F = dh.shape()[2];
  if (dh.numel() == 0) return;
  ENGRAM_DISPATCH_FLOAT(dh.dtype(), "linear_scan_2x2_reverse", [&] {
    using T = scalar_t;
    scan_2x2_reverse_typed<T>(M.data<T>(), strides_of(M, true), dh.data<T>(), strides_of(dh, true),
                              g.data<T>(), strides_of(g, true), B, L, F);
  });
}

// ---- Cauchy kernel (all operands contiguous [R, ., 2]) ----

template <typename T> struct Cx {
  T re, im;
};
template <typename T> static inline Cx<T> cmul(Cx<T> a, Cx<T> b) {
  return {a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}
template <typename T> static inline Cx<T> cconj_mul(Cx<T> a, Cx<T> b) {  // conj(a) * b
  return {a.re * b.re + a.im * b.im, a.re * b.im - a.im * b.re};
}
template <typename T> static inline Cx<T> crecip_diff(const T* z, const T* w) {  // 1 / (z - w)
  const T dr = z[0] - w[0], di = z[1] - w[1], s = T(1) / (dr * dr + di * di);
  return {dr * s, -di * s};
}

template <typename T>
static void cauchy_typed(const T* v, const T* z, const T* w, T* k, int64_t R, int64_t N,
                         int64_t L) {
#pragma omp parallel for if (R * L * N > kParallelGrain) schedule(static)
  for (int64_t rl = 0; rl < R * L; ++rl) {
    const int64_t r = rl / L;
    const T* zl = z + 2 * rl;
    const T* vr = v + 2 * r * N;
    const T* wr = w + 2 * r * N;
    T acc_re = 0, acc_im = 0;
    for (int64_t n = 0; n < N; ++n) {
      Cx<T> c = crecip_diff(zl, wr + 2 * n);
      Cx<T> t = cmul(Cx<T>{vr[2 * n], vr[2 * n + 1]}, c);
      acc_re += t.re;
      acc_im += t.im;
    }
    k[2 * rl] = acc_re;
    k[2 * rl + 1] = acc_im;
  }
}

template <typename T>
static void cauchy_backward_typed(const T* v, const T* z, const T* w, const T* dk, T* dv, T* dz,
                                  T* dw, int64_t R, int64_t N, int64_t L) {
  // dz_l = -conj(sum_n v_n c_ln^2) g_l
#pragma omp parallel for if (R * L * N > kParallelGrain) schedule(static)
  for (int64_t rl = 0; rl < R * L; ++rl) {
    const int64_t r = rl / L;
    const T* zl = z + 2 * rl;
    const T* vr = v + 2 * r * N;
    const T* wr = w + 2 * r * N;
    Cx<T> s{0, 0};
    for (int64_t n = 0; n < N; ++n) {
      Cx<T> c = crecip_diff(zl, wr + 2 * n);
      Cx<T> t = cmul(Cx<T>{vr[2 * n], vr[2 * n + 1]}, cmul(c, c));
      s.re += t.re;
      s.im += t.im;
    }
    Cx<T> d = cconj_mul(s, Cx<T>{dk[2 * rl], dk[2 * rl + 1]});
    dz[2 * rl] = -d.re;
    dz[2 * rl + 1] = -d.im;
  }
  // dv_n = sum_l conj(c_ln) g_l ;  dw_n = conj(v_n) sum_l conj(c_ln^2) g_l
#pragma omp parallel for if (R * L * N > kParallelGrain) schedule(static)
  for (int64_t rn = 0; rn < R * N; ++rn) {
    const int64_t r = rn / N;
    const T* wn = w + 2 * rn;
    Cx<T> sv{0, 0}, sw{0, 0};
    for (int64_t l = 0; l < L; ++l) {
      const T* zl = z + 2 * (r * L + l);
      const Cx<T> g{dk[2 * (r * L + l)], dk[2 * (r * L + l) + 1]};
      Cx<T> c = crecip_diff(zl, wn);
      Cx<T> a = cconj_mul(c, g), b = cconj_mul(cmul(c, c), g);
      sv.re += a.re;
      sv.im += a.im;
      sw.re += b.re;
      sw.im += b.im;
    }
    Cx<T> e = cconj_mul(Cx<T>{v[2 * rn], v[2 * rn + 1]}, sw);
    dv[2 * rn] = sv.re;
    dv[2 * rn + 1] = sv.im;
    dw[2 * rn] = e.re;
    dw[2 * rn + 1] = e.im;
  }
}

static void check_cauchy(const char* op, Tref v, Tref z, Tref w, Tref k) {
  ENGRAM_CHECK(v.dim() == 3 && v.shape()[2] == 2 && w.shape() == v.shape() && z.dim() == 3 &&
                   z.shape()[2] == 2 && z.shape()[0] == v.shape()[0] && k.shape() == z.shape(),
               "{}: expected v, w [R, N, 2], z and k [R, L, 2], got v {}, z {}, w {}, k {}", op,
               shape_str(v.shape()), shape_str(z.shape()), shape_str(w.shape()),
               shape_str(k.shape()));
  ENGRAM_CHECK(v.is_contiguous() && z.is_contiguous() && w.is_contiguous() && k.is_contiguous(),
               "{}: expected contiguous operands", op);
  ENGRAM_CHECK(z.dtype() == v.dtype() && w.dtype() == v.dtype() && k.dtype() == v.dtype(),
               "{}: dtypes differ: v {}, z {}, w {}, k {}", op, dtype_name(v.dtype()),
               dtype_name(z.dtype()), dtype_name(w.dtype()), dtype_name(k.dtype()));
}

static void cauchy_kernel(Tref v, Tref z, Tref w, Tref k) {
  check_cauchy("cauchy_kernel", v, z, w, k);
  const int64_t R = v.shape()[0], N = v.shape()[1], L = z.shape()[1];
  ENGRAM_DISPATCH_FLOAT(v.dtype(), "cauchy_kernel", [&] {
    using T = scalar_t;
    cauchy_typed<T>(v.data<T>(), z.data<T>(), w.data<T>(), k.data<T>(), R, N, L);
  });
}

static void cauchy_kernel_backward(Tref v, Tref z, Tref w, Tref dk, Tref dv, Tref dz, Tref dw) {
  check_cauchy("cauchy_kernel_backward", v, z, w, dk);
  ENGRAM_CHECK(dv.shape() == v.shape() && dw.shape() == w.shape() && dz.shape() == z.shape() &&
                   dv.is_contiguous() && dw.is_contiguous() && dz.is_contiguous() &&
                   dv.dtype() == v.dtype() && dw.dtype() == v.dtype() && dz.dtype() == v.dtype(),
               "cauchy_kernel_backward: expected contiguous dv {}, dw {}, dz {} of the inputs' "
               "shapes and dtype",
               shape_str(dv.shape()), shape_str(dw.shape()), shape_str(dz.shape()));
  const int64_t R = v.shape()[0], N = v.shape()[1], L = z.shape()[1];
  ENGRAM_DISPATCH_FLOAT(v.dtype(), "cauchy_kernel_backward", [&] {
    using T = scalar_t;
    cauchy_backward_typed<T>(v.data<T>(), z.data<T>(), w.data<T>(), dk.data<T>(), dv.data<T>(),
                             dz.data<T>(), dw.data<T>(), R, N, L);
  });
}

// ---- vandermonde ----

constexpr int64_t kReseed = 16;

template <typename T>
static void vandermonde_typed(const T* a, T* V, int64_t R, int64_t P, double start, double step) {
#pragma omp parallel for if (R * P > kParallelGrain) schedule(static)
  for (int64_t r = 0; r < R; ++r) {
    const double ar = a[2 * r], ai = a[2 * r + 1];
    const double q_mag = std::exp(ar * step), qr = q_mag * std::cos(ai * step),
                 qi = q_mag * std::sin(ai * step);
    T* out = V + 2 * r * P;
    for (int64_t j0 = 0; j0 < P; j0 += kReseed) {
      const double p = start + double(j0) * step, mag = std::exp(ar * p);
      double wr = mag * std::cos(ai * p), wi = mag * std::sin(ai * p);
      for (int64_t j = j0; j < std::min(P, j0 + kReseed); ++j) {
        out[2 * j] = T(wr);
        out[2 * j + 1] = T(wi);
        const double nr = wr * qr - wi * qi;
        wi = wr * qi + wi * qr;
        wr = nr;
      }
    }
  }
}

template <typename T>
static void vandermonde_backward_typed(const T* V, const T* dV, T* da, int64_t R, int64_t P,
                                       double start, double step) {
#pragma omp parallel for if (R * P > kParallelGrain) schedule(static)
  for (int64_t r = 0; r < R; ++r) {
    const T* w = V + 2 * r * P;
    const T* g = dV + 2 * r * P;
    double acc_re = 0, acc_im = 0;
    for (int64_t j = 0; j < P; ++j) {
      const double p = start + double(j) * step, wr = w[2 * j], wi = w[2 * j + 1];
      const double gr = g[2 * j], gi = g[2 * j + 1];
      acc_re += p * (wr * gr + wi * gi);  // p conj(w) g
      acc_im += p * (wr * gi - wi * gr);
    }
    da[2 * r] = T(acc_re);
    da[2 * r + 1] = T(acc_im);
  }
}

static void check_vandermonde(const char* op, Tref a, Tref V) {
  check_vandermonde_args(op, a, V);
  check_contiguous({&a, &V}, op);
}

static void vandermonde(Tref a, double start, double step, Tref V) {
  check_vandermonde("vandermonde", a, V);
  ENGRAM_DISPATCH_FLOAT(a.dtype(), "vandermonde", [&] {
    using T = scalar_t;
    vandermonde_typed<T>(a.data<T>(), V.data<T>(), a.shape()[0], V.shape()[1], start, step);
  });
}

static void vandermonde_backward(Tref V, Tref dV, double start, double step, Tref da) {
  const char* op = "vandermonde_backward";
  check_vandermonde(op, da, V);
  check_contiguous({&dV}, op);
  ENGRAM_CHECK(dV.shape() == V.shape() && dV.dtype() == V.dtype(),
               "{}: expected dV of V's shape {} and dtype, got {}", op, shape_str(V.shape()),
               shape_str(dV.shape()));
  ENGRAM_DISPATCH_FLOAT(V.dtype(), op, [&] {
    using T = scalar_t;
    vandermonde_backward_typed<T>(V.data<T>(), dV.data<T>(), da.data<T>(), V.shape()[0],
                                  V.shape()[1], start, step);
  });
}

void register_ssm_scan(Backend& b) {
  b.linear_scan_2x2 = linear_scan_2x2;
  b.linear_scan_2x2_reverse = linear_scan_2x2_reverse;
  b.cauchy_kernel = cauchy_kernel;
  b.cauchy_kernel_backward = cauchy_kernel_backward;
  b.vandermonde = vandermonde;
  b.vandermonde_backward = vandermonde_backward;
}

}  // namespace engram::cpu
