// cuda/cuda_ssm_scan.cu — the 2x2-block scan, S4's Cauchy kernel and S4D's Vandermonde powers on
// the GPU, mirroring core/cpu/cpu_ssm_scan.cpp (which has the equations' derivations).
// register_ssm_scan is called by register_ssm (cuda/cuda_ssm.cu).
//
// linear_scan_2x2, along dim 1 of [B, T, F, 2] (LinOSS's oscillators, S5's complex modes):
//   forward   h_t = M_t h_{t-1} + f_t,           t = 0 .. T-1,  h_{-1} = h0 (or none: h_0 = f_0)
//   reverse   g_t = dh_t + M_{t+1}^T g_{t+1},    t = T-1 .. 0,  g_{T-1} = dh_{T-1}
// M [B, T, F, 2, 2], f, h, dh, g [B, T, F, 2], h0 [B, F, 2]. Every (b, f) column is an
// independent recurrence: one thread per column loops over time (consecutive threads take
// consecutive columns, so each step reads a row). Operands are addressed through their own
// strides, as on the CPU (M's broadcasts over B, T or F are stride 0), so nothing is copied.
// The reverse is the forward step with M's row and column strides swapped (M^T).
//
// cauchy_kernel, complex as trailing [re, im], all contiguous, per row r:
//   k_l = sum_n v_n c_ln,  c_ln = 1 / (z_l - w_n)                   v, w [R, N, 2], z, k [R, L, 2]
// backward from the real-pair gradient g_l of k_l:
//   dz_l = -conj(sum_n v_n c_ln^2) g_l                               one thread per (r, l)
//   dv_n = sum_l conj(c_ln) g_l,  dw_n = conj(v_n) sum_l conj(c_ln^2) g_l   one thread per (r, n)
// Sums run in the CPU's order (n, resp. l, ascending), in the tensor's dtype.
//
// vandermonde, per entry r: V_rj = exp(a_r p_j), p_j = start + j step     a [R, 2], V [R, P, 2]
//   one thread per (r, j), exp/cos/sin of the double angle (the CPU multiplies by exp(a step)
//   between exact reseeds, so the two agree to rounding, not bitwise);
// backward da_r = sum_j p_j conj(V_rj) dV_rj, one thread per r, j ascending, in double.
#include "core/kernel_args.h"
#include "cuda/common.cuh"

namespace engram::cuda {

namespace {  // this file's types and kernels: no clash with another file's names

// ================================================================ linear_scan_2x2

// Element strides of [B, T, F, 2(, 2)] (j: the column of M) and of h0 [B, F, 2] (t = 0).
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

// h = m p + f for one column (m at its [0, 0] entry, strides sm.i for rows and sm.j for columns).
template <typename T>
static __device__ __forceinline__ void step_2x2(const T* m, ScanStrides sm, const T* f,
                                                int64_t fi, T p0, T p1, T& h0, T& h1) {
  h0 = m[0] * p0 + m[sm.j] * p1 + f[0];
  h1 = m[sm.i] * p0 + m[sm.i + sm.j] * p1 + f[fi];
}

template <typename T>
__global__ void scan_2x2_kernel(const T* M, ScanStrides sm, const T* f, ScanStrides sf,
                                const T* h0, ScanStrides s0, T* h, ScanStrides sh, int64_t B,
                                int64_t L, int64_t F) {
  ENGRAM_GRID_STRIDE(lane, B * F) {
    const int64_t b = lane / F, c = lane % F;
    T p0 = 0, p1 = 0;
    if (h0) p0 = h0[b * s0.b + c * s0.f], p1 = h0[b * s0.b + c * s0.f + s0.i];
    for (int64_t t = 0; t < L; ++t) {
      const T* fc = f + b * sf.b + t * sf.t + c * sf.f;
      T* hc = h + b * sh.b + t * sh.t + c * sh.f;
      T q0, q1;
      if (t == 0 && !h0) q0 = fc[0], q1 = fc[sf.i];  // h_{-1} = 0: h_0 = f_0 exactly
      else step_2x2(M + b * sm.b + t * sm.t + c * sm.f, sm, fc, sf.i, p0, p1, q0, q1);
      hc[0] = q0;
      hc[sh.i] = q1;
      p0 = q0, p1 = q1;
    }
  }
}

// smt: M's strides with i and j swapped (M^T)
template <typename T>
__global__ void scan_2x2_reverse_kernel(const T* M, ScanStrides smt, const T* dh, ScanStrides sd,
                                        T* g, ScanStrides sg, int64_t B, int64_t L, int64_t F) {
  ENGRAM_GRID_STRIDE(lane, B * F) {
    const int64_t b = lane / F, c = lane % F;
    T p0 = 0, p1 = 0;  // g_{t+1}
    for (int64_t t = L - 1; t >= 0; --t) {
      const T* d = dh + b * sd.b + t * sd.t + c * sd.f;
      T* gc = g + b * sg.b + t * sg.t + c * sg.f;
      T q0, q1;
      if (t + 1 < L) step_2x2(M + b * smt.b + (t + 1) * smt.t + c * smt.f, smt, d, sd.i, p0, p1, q0, q1);
      else q0 = d[0], q1 = d[sd.i];
      gc[0] = q0;
      gc[sg.i] = q1;
      p0 = q0, p1 = q1;
    }
  }
}

static void check_scan_2x2(const char* op, Tref M, Tref f, Tref out) {
  require_cuda(M, op, "M");
  require_cuda(f, op, "f (dh)");
  require_cuda(out, op, "the output");
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

template <typename T>
static void scan_2x2_impl(Tref M, Tref f, Tref h0, Tref h, int64_t B, int64_t L, int64_t F) {
  scan_2x2_kernel<T><<<blocks_for(B * F), kThreads, 0, stream()>>>(
      M.data<T>(), strides_of(M, true), f.data<T>(), strides_of(f, true),
      h0.defined() ? h0.data<T>() : nullptr, h0.defined() ? strides_of(h0, false) : ScanStrides{},
      h.data<T>(), strides_of(h, true), B, L, F);
  check_launch("linear_scan_2x2");
}

template <typename T>
static void scan_2x2_reverse_impl(Tref M, Tref dh, Tref g, int64_t B, int64_t L, int64_t F) {
  ScanStrides smt = strides_of(M, true);
  const int64_t i = smt.i;
  smt.i = smt.j, smt.j = i;
  scan_2x2_reverse_kernel<T><<<blocks_for(B * F), kThreads, 0, stream()>>>(
      M.data<T>(), smt, dh.data<T>(), strides_of(dh, true), g.data<T>(), strides_of(g, true), B,
      L, F);
  check_launch("linear_scan_2x2_reverse");
}

static void linear_scan_2x2(Tref M, Tref f, Tref h0, Tref h) {
  check_scan_2x2("linear_scan_2x2", M, f, h);
  const int64_t B = f.shape()[0], L = f.shape()[1], F = f.shape()[2];
  if (h0.defined()) {
    require_cuda(h0, "linear_scan_2x2", "h0");
    ENGRAM_CHECK(h0.shape() == Shape({B, F, 2}) && h0.dtype() == f.dtype(),
                 "linear_scan_2x2: h0 {} {} should be {} [{}, {}, 2]", dtype_name(h0.dtype()),
                 shape_str(h0.shape()), dtype_name(f.dtype()), B, F);
  }
  if (f.numel() == 0) return;
  ENGRAM_DISPATCH_FLOAT(f.dtype(), "linear_scan_2x2",
                        [&] { scan_2x2_impl<scalar_t>(M, f, h0, h, B, L, F); });
}

static void linear_scan_2x2_reverse(Tref M, Tref dh, Tref g) {
  check_scan_2x2("linear_scan_2x2_reverse", M, dh, g);
  const int64_t B = dh.shape()[0], L = dh.shape()[1], F = dh.shape()[2];
  if (dh.numel() == 0) return;
  ENGRAM_DISPATCH_FLOAT(dh.dtype(), "linear_scan_2x2_reverse",
                        [&] { scan_2x2_reverse_impl<scalar_t>(M, dh, g, B, L, F); });
}

// ================================================================ Cauchy kernel

template <typename T> struct Cx {
  T re, im;
};
template <typename T> static __device__ __forceinline__ Cx<T> cmul(Cx<T> a, Cx<T> b) {
  return {a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}
template <typename T> static __device__ __forceinline__ Cx<T> cconj_mul(Cx<T> a, Cx<T> b) {
  return {a.re * b.re + a.im * b.im, a.re * b.im - a.im * b.re};  // conj(a) * b
}
template <typename T> static __device__ __forceinline__ Cx<T> crecip_diff(const T* z, const T* w) {
  const T dr = z[0] - w[0], di = z[1] - w[1], s = T(1) / (dr * dr + di * di);  // 1 / (z - w)
  return {dr * s, -di * s};
}

template <typename T>
static void cauchy_impl(Tref v_t, Tref z_t, Tref w_t, Tref k_t, int64_t R, int64_t N, int64_t L) {
  const T *v = v_t.data<T>(), *z = z_t.data<T>(), *w = w_t.data<T>();
  T* k = k_t.data<T>();
  for_each_index(R * L, [=] __device__(int64_t rl) {
    const int64_t r = rl / L;
    const T* zl = z + 2 * rl;
    const T *vr = v + 2 * r * N, *wr = w + 2 * r * N;
    T acc_re = 0, acc_im = 0;
    for (int64_t n = 0; n < N; ++n) {
      const Cx<T> t = cmul(Cx<T>{vr[2 * n], vr[2 * n + 1]}, crecip_diff(zl, wr + 2 * n));
      acc_re += t.re;
      acc_im += t.im;
    }
    k[2 * rl] = acc_re;
    k[2 * rl + 1] = acc_im;
  }, "cauchy_kernel");
}

template <typename T>
static void cauchy_backward_impl(Tref v_t, Tref z_t, Tref w_t, Tref dk_t, Tref dv_t, Tref dz_t,
                                 Tref dw_t, int64_t R, int64_t N, int64_t L) {
  const T *v = v_t.data<T>(), *z = z_t.data<T>(), *w = w_t.data<T>(), *dk = dk_t.data<T>();
  T *dv = dv_t.data<T>(), *dz = dz_t.data<T>(), *dw = dw_t.data<T>();
  const char* op = "cauchy_kernel_backward";
  // dz_l = -conj(sum_n v_n c_ln^2) g_l
  for_each_index(R * L, [=] __device__(int64_t rl) {
    const int64_t r = rl / L;
    const T* zl = z + 2 * rl;
    const T *vr = v + 2 * r * N, *wr = w + 2 * r * N;
    Cx<T> s{0, 0};
    for (int64_t n = 0; n < N; ++n) {
      const Cx<T> c = crecip_diff(zl, wr + 2 * n);
      const Cx<T> t = cmul(Cx<T>{vr[2 * n], vr[2 * n + 1]}, cmul(c, c));
      s.re += t.re;
      s.im += t.im;
    }
    const Cx<T> d = cconj_mul(s, Cx<T>{dk[2 * rl], dk[2 * rl + 1]});
    dz[2 * rl] = -d.re;
    dz[2 * rl + 1] = -d.im;
  }, op);
  // dv_n = sum_l conj(c_ln) g_l ;  dw_n = conj(v_n) sum_l conj(c_ln^2) g_l
  for_each_index(R * N, [=] __device__(int64_t rn) {
    const int64_t r = rn / N;
    const T* wn = w + 2 * rn;
    Cx<T> sv{0, 0}, sw{0, 0};
    for (int64_t l = 0; l < L; ++l) {
      const T* zl = z + 2 * (r * L + l);
      const Cx<T> g{dk[2 * (r * L + l)], dk[2 * (r * L + l) + 1]};
      const Cx<T> c = crecip_diff(zl, wn);
      const Cx<T> a = cconj_mul(c, g), b = cconj_mul(cmul(c, c), g);
      sv.re += a.re;
      sv.im += a.im;
      sw.re += b.re;
      sw.im += b.im;
    }
    const Cx<T> e = cconj_mul(Cx<T>{v[2 * rn], v[2 * rn + 1]}, sw);
    dv[2 * rn] = sv.re;
    dv[2 * rn + 1] = sv.im;
    dw[2 * rn] = e.re;
    dw[2 * rn + 1] = e.im;
  }, op);
}

static void check_cauchy(const char* op, Tref v, Tref z, Tref w, Tref k) {
  require_contiguous(v, op, "v");
  require_contiguous(z, op, "z");
  require_contiguous(w, op, "w");
  require_contiguous(k, op, "k (dk)");
  ENGRAM_CHECK(v.dim() == 3 && v.shape()[2] == 2 && w.shape() == v.shape() && z.dim() == 3 &&
                   z.shape()[2] == 2 && z.shape()[0] == v.shape()[0] && k.shape() == z.shape(),
               "{}: expected v, w [R, N, 2], z and k [R, L, 2], got v {}, z {}, w {}, k {}", op,
               shape_str(v.shape()), shape_str(z.shape()), shape_str(w.shape()),
               shape_str(k.shape()));
  ENGRAM_CHECK(z.dtype() == v.dtype() && w.dtype() == v.dtype() && k.dtype() == v.dtype(),
               "{}: dtypes differ: v {}, z {}, w {}, k {}", op, dtype_name(v.dtype()),
               dtype_name(z.dtype()), dtype_name(w.dtype()), dtype_name(k.dtype()));
}

static void cauchy_kernel(Tref v, Tref z, Tref w, Tref k) {
  check_cauchy("cauchy_kernel", v, z, w, k);
  const int64_t R = v.shape()[0], N = v.shape()[1], L = z.shape()[1];
  ENGRAM_DISPATCH_FLOAT(v.dtype(), "cauchy_kernel",
                        [&] { cauchy_impl<scalar_t>(v, z, w, k, R, N, L); });
}

static void cauchy_kernel_backward(Tref v, Tref z, Tref w, Tref dk, Tref dv, Tref dz, Tref dw) {
  const char* op = "cauchy_kernel_backward";
  check_cauchy(op, v, z, w, dk);
  require_contiguous(dv, op, "dv");
  require_contiguous(dz, op, "dz");
  require_contiguous(dw, op, "dw");
  ENGRAM_CHECK(dv.shape() == v.shape() && dw.shape() == w.shape() && dz.shape() == z.shape() &&
                   dv.dtype() == v.dtype() && dw.dtype() == v.dtype() && dz.dtype() == v.dtype(),
               "{}: expected dv {}, dw {}, dz {} of the inputs' shapes and dtype", op,
               shape_str(dv.shape()), shape_str(dw.shape()), shape_str(dz.shape()));
  const int64_t R = v.shape()[0], N = v.shape()[1], L = z.shape()[1];
  ENGRAM_DISPATCH_FLOAT(v.dtype(), op, [&] {
    cauchy_backward_impl<scalar_t>(v, z, w, dk, dv, dz, dw, R, N, L);
  });
}

// ================================================================ Vandermonde powers

template <typename T>
static void vandermonde_impl(Tref a_t, double start, double step, Tref V_t) {
  const T* a = a_t.data<T>();
  T* V = V_t.data<T>();
  const int64_t P = V_t.shape()[1];
  for_each_index(V_t.numel() / 2, [=] __device__(int64_t rj) {
    const int64_t r = rj / P, j = rj % P;
    const double p = start + double(j) * step, ar = a[2 * r], ai = a[2 * r + 1];
    const double mag = exp(ar * p);
    double s, c;
    sincos(ai * p, &s, &c);
    V[2 * rj] = T(mag * c);
    V[2 * rj + 1] = T(mag * s);
  }, "vandermonde");
}

template <typename T>
static void vandermonde_backward_impl(Tref V_t, Tref dV_t, double start, double step, Tref da_t) {
  const T *V = V_t.data<T>(), *dV = dV_t.data<T>();
  T* da = da_t.data<T>();
  const int64_t P = V_t.shape()[1];
  for_each_index(V_t.shape()[0], [=] __device__(int64_t r) {
    const T *w = V + 2 * r * P, *g = dV + 2 * r * P;
    double acc_re = 0, acc_im = 0;
    for (int64_t j = 0; j < P; ++j) {
      const double p = start + double(j) * step, wr = w[2 * j], wi = w[2 * j + 1];
      const double gr = g[2 * j], gi = g[2 * j + 1];
      acc_re += p * (wr * gr + wi * gi);
      acc_im += p * (wr * gi - wi * gr);
    }
    da[2 * r] = T(acc_re);
    da[2 * r + 1] = T(acc_im);
  }, "vandermonde_backward");
}

static void check_vandermonde(const char* op, Tref a, Tref V) {
  require_contiguous(a, op, "a (da)");
  require_contiguous(V, op, "V");
  check_vandermonde_args(op, a, V);
}

static void vandermonde(Tref a, double start, double step, Tref V) {
  check_vandermonde("vandermonde", a, V);
  ENGRAM_DISPATCH_FLOAT(a.dtype(), "vandermonde",
                        [&] { vandermonde_impl<scalar_t>(a, start, step, V); });
}

static void vandermonde_backward(Tref V, Tref dV, double start, double step, Tref da) {
  const char* op = "vandermonde_backward";
  check_vandermonde(op, da, V);
  require_contiguous(dV, op, "dV");
  ENGRAM_CHECK(dV.shape() == V.shape() && dV.dtype() == V.dtype(),
               "{}: expected dV of V's shape {} and dtype, got {}", op, shape_str(V.shape()),
               shape_str(dV.shape()));
  ENGRAM_DISPATCH_FLOAT(V.dtype(), op,
                        [&] { vandermonde_backward_impl<scalar_t>(V, dV, start, step, da); });
}

}  // namespace

void register_ssm_scan(Backend& b) {
  b.linear_scan_2x2 = linear_scan_2x2;
  b.linear_scan_2x2_reverse = linear_scan_2x2_reverse;
  b.cauchy_kernel = cauchy_kernel;
  b.cauchy_kernel_backward = cauchy_kernel_backward;
  b.vandermonde = vandermonde;
  b.vandermonde_backward = vandermonde_backward;
}

}  // namespace engram::cuda
