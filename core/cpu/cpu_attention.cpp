// core/cpu/cpu_attention.cpp — attention's fused masked softmax on the CPU (core/backend.h).
//
// Forward, per row (query i) of x [..., Tq, Tk] (any strides), out [..., Tq, Tk] contiguous:
//   V   = the keys row i sees (core/attention_mask.h: at most two ranges, from indices only)
//   m   = max_{j in V} scale * x_j
//   y_j = exp(scale * x_j - m) / sum_{k in V} exp(scale * x_k - m)  for j in V,  0 elsewhere
// A row with no visible key, or whose sum is not a positive number (every visible score -inf, or
// a +inf/NaN score), is all NaN, as softmax over a row of -inf (PyTorch's masked attention) is.
// Backward (y, dx contiguous; dy any strides), the softmax adjoint with the scale folded in:
//   dx_j = scale * y_j * (dy_j - sum_{k in V} y_k dy_k)  for j in V,  0 elsewhere.
// Only V is read and exp'd: a square causal mask does half the exps and reads of a dense softmax,
// and neither pass touches a mask tensor. Sums accumulate in double (as cpu_reduce.cpp's softmax
// does, so the fused path matches masked_fill + softmax to rounding). Rows are split over OpenMP
// threads; the inner loops are unit-stride when the last dim is, so they vectorise.
#include <cmath>
#include <limits>

#include "core/attention_mask.h"
#include "core/backend.h"
#include "core/cpu/vmath.h"
#include "core/cpu/strided.h"

namespace engram::cpu {

static void check_masked_softmax_args(Tref x, int64_t window, int64_t prefix, const char* op) {
  ENGRAM_CHECK(x.dim() >= 2, "{}: expected x [..., Tq, Tk], got {}", op, shape_str(x.shape()));
  ENGRAM_CHECK(window >= 0 && prefix >= 0, "{}: window {} and prefix {} must be >= 0", op, window,
               prefix);
}

// One row: SX is the last-dim stride when known at compile time (1), else 0 and sx is used.
template <typename T, int64_t SX>
static void masked_softmax_row(const T* xl, int64_t sx_rt, T* ol, int64_t Tk, T scale,
                               VisibleKeys v) {
  const int64_t sx = SX ? SX : sx_rt;
  if (v.count() == 0) {
    for (int64_t j = 0; j < Tk; ++j) ol[j] = std::numeric_limits<T>::quiet_NaN();
    return;
  }
  T mx = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < v.a; ++j) mx = std::max(mx, scale * xl[j * sx]);
#pragma omp simd reduction(max : mx)
  for (int64_t j = v.b0; j < v.b1; ++j) mx = std::max(mx, scale * xl[j * sx]);
  double sum = 0;  // exp vectorised in float (core/cpu/vmath.h), the sum kept in double
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < v.a; ++j) {
    T e = vexp_softmax(scale * xl[j * sx] - mx);
    ol[j] = e;
    sum += e;
  }
#pragma omp simd reduction(+ : sum)
  for (int64_t j = v.b0; j < v.b1; ++j) {
    T e = vexp_softmax(scale * xl[j * sx] - mx);
    ol[j] = e;
    sum += e;
  }
  if (!(sum > 0) || !std::isfinite(sum)) {  // every visible score -inf, or an inf/NaN score
    for (int64_t j = 0; j < Tk; ++j) ol[j] = std::numeric_limits<T>::quiet_NaN();
    return;
  }
  const T inv = T(1.0 / sum);
  for (int64_t j = 0; j < v.a; ++j) ol[j] *= inv;
  for (int64_t j = v.a; j < v.b0; ++j) ol[j] = T(0);
  for (int64_t j = v.b0; j < v.b1; ++j) ol[j] *= inv;
  for (int64_t j = v.b1; j < Tk; ++j) ol[j] = T(0);
}

// Rows split over threads (the pragma cannot sit inside ENGRAM_DISPATCH_FLOAT's macro argument).
template <typename T>
static void masked_softmax_typed(Tref x, T scale, bool causal, int64_t window, int64_t prefix,
                                 Tref out) {
  const int64_t last = x.dim() - 1, Tk = x.shape()[last], Tq = x.shape()[last - 1];
  const T* xp = x.data<T>();
  T* o = out.data<T>();
  const int64_t sx = x.strides()[last];
  const LineIndexer li = make_line_indexer(x.shape(), last, {&x.strides()});
  const int64_t rows = li.lines();
#pragma omp parallel for if (rows * Tk > kParallelGrain && rows > 1) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const VisibleKeys v = visible_keys(r % Tq, Tq, Tk, causal, window, prefix);
    if (sx == 1)
      masked_softmax_row<T, 1>(xp + li.offset(0, r), 1, o + r * Tk, Tk, scale, v);
    else
      masked_softmax_row<T, 0>(xp + li.offset(0, r), sx, o + r * Tk, Tk, scale, v);
  }
}

static void masked_softmax(Tref x, double scale, bool causal, int64_t window, int64_t prefix,
                           Tref out) {
  check_masked_softmax_args(x, window, prefix, "masked_softmax");
  ENGRAM_CHECK(out.is_contiguous() && out.shape() == x.shape(),
               "masked_softmax: out must be contiguous {}", shape_str(x.shape()));
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "masked_softmax", [&] {
    masked_softmax_typed<scalar_t>(x, scalar_t(scale), causal, window, prefix, out);
  });
}

template <typename T, int64_t SG>
static void masked_softmax_backward_row(const T* yl, const T* gl, int64_t sg_rt, T* dl, int64_t Tk,
                                        T scale, VisibleKeys v) {
  const int64_t sg = SG ? SG : sg_rt;
  double dot = 0;
#pragma omp simd reduction(+ : dot)
  for (int64_t j = 0; j < v.a; ++j) dot += gl[j * sg] * yl[j];
#pragma omp simd reduction(+ : dot)
  for (int64_t j = v.b0; j < v.b1; ++j) dot += gl[j * sg] * yl[j];
  const T d = T(dot);
  for (int64_t j = 0; j < v.a; ++j) dl[j] = scale * (yl[j] * (gl[j * sg] - d));
  for (int64_t j = v.a; j < v.b0; ++j) dl[j] = T(0);
  for (int64_t j = v.b0; j < v.b1; ++j) dl[j] = scale * (yl[j] * (gl[j * sg] - d));
  for (int64_t j = v.b1; j < Tk; ++j) dl[j] = T(0);
}

template <typename T>
static void masked_softmax_backward_typed(Tref y, Tref dy, T scale, bool causal, int64_t window,
                                          int64_t prefix, Tref dx) {
  const int64_t last = y.dim() - 1, Tk = y.shape()[last], Tq = y.shape()[last - 1];
  const T *yp = y.data<T>(), *gp = dy.data<T>();
  T* o = dx.data<T>();
  const int64_t sg = dy.strides()[last];
  const LineIndexer li = make_line_indexer(dy.shape(), last, {&dy.strides()});
  const int64_t rows = li.lines();
#pragma omp parallel for if (rows * Tk > kParallelGrain && rows > 1) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const VisibleKeys v = visible_keys(r % Tq, Tq, Tk, causal, window, prefix);
    const T* gl = gp + li.offset(0, r);
    if (sg == 1)
      masked_softmax_backward_row<T, 1>(yp + r * Tk, gl, 1, o + r * Tk, Tk, scale, v);
    else
      masked_softmax_backward_row<T, 0>(yp + r * Tk, gl, sg, o + r * Tk, Tk, scale, v);
  }
}

static void masked_softmax_backward(Tref y, Tref dy, double scale, bool causal, int64_t window,
                                    int64_t prefix, Tref dx) {
  check_masked_softmax_args(y, window, prefix, "masked_softmax_backward");
  ENGRAM_CHECK(y.is_contiguous() && dx.is_contiguous() && dy.shape() == y.shape() &&
                   dx.shape() == y.shape(),
               "masked_softmax_backward: y and dx must be contiguous {}, dy that shape",
               shape_str(y.shape()));
  ENGRAM_DISPATCH_FLOAT(y.dtype(), "masked_softmax_backward", [&] {
    masked_softmax_backward_typed<scalar_t>(y, dy, scalar_t(scale), causal, window, prefix, dx);
  });
}

void register_attention(Backend& b) {
  b.masked_softmax = masked_softmax;
  b.masked_softmax_backward = masked_softmax_backward;
}

}  // namespace engram::cpu
