// core/cpu/cpu_conv.cpp — CPU kernels for convolution (im2col/col2im) and 2-D pooling, NCHW.
//
// im2col unrolls every receptive field of x [B, C, H, W] into a column, so that a convolution
// becomes one matrix product per image (autograd/conv.cpp does the products through BLAS):
//     cols[b, (c*kh + i)*kw + j, oh*Wo + ow] = x[b, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]
// (0 where that position falls in the padding). The row order matches weight [O, C, kh, kw]
// flattened to [O, C*kh*kw]. col2im is its adjoint: every column entry is added back at the
// input position it was read from.
//
// Pools use PyTorch's defaults (dilation 1, ceil_mode false; max pool pads with -inf, average
// pool counts the padding, so each window divides by k*k). The max pool saves, per output, the
// flat index h*W + w of the chosen element inside its [H, W] plane (PyTorch's convention).
//
// Every kernel works on whole (b, c) planes, split over OpenMP threads: each plane of an
// output (cols rows, dx, y) is written by exactly one thread, so there are no races.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/backend.h"
#include "core/cpu/strided.h"

namespace engram::cpu {

// Output positions o in [lo, hi) whose input position o*s - p + off lies inside [0, n).
struct Span {
  int64_t lo, hi;
};
static Span valid_span(int64_t n, int64_t out, int64_t s, int64_t p, int64_t off) {
  int64_t a = p - off;          // need o*s >= a
  int64_t b = n - 1 + p - off;  // need o*s <= b
  int64_t lo = a <= 0 ? 0 : (a + s - 1) / s;
  int64_t hi = b < 0 ? 0 : b / s + 1;
  lo = std::min(lo, out);
  hi = std::clamp(hi, lo, out);
  return {lo, hi};
}

struct ConvGeom {
  int64_t B, C, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw;
};

static ConvGeom conv_geom(Tref x, Tref cols, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                          int64_t ph, int64_t pw, int64_t dh, int64_t dw, const char* op) {
  ENGRAM_CHECK(x.dim() == 4 && cols.dim() == 3, "{}: expects x [B, C, H, W] and cols [B, C*kh*kw, "
               "Ho*Wo], got {} and {}", op, shape_str(x.shape()), shape_str(cols.shape()));
  ConvGeom g{x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3], 0, 0, kh, kw, sh, sw, ph, pw,
             dh, dw};
  g.Ho = (g.H + 2 * ph - dh * (kh - 1) - 1) / sh + 1;
  g.Wo = (g.W + 2 * pw - dw * (kw - 1) - 1) / sw + 1;
  const Shape want = {g.B, g.C * kh * kw, g.Ho * g.Wo};
  ENGRAM_CHECK(cols.shape() == want && cols.strides()[2] == 1 && cols.strides()[1] == want[2],
               "{}: cols must be {} with contiguous rows (any batch stride) for x {}, got {} "
               "strides {}", op, shape_str(want), shape_str(x.shape()), shape_str(cols.shape()),
               shape_str(cols.strides()));
  return g;
}

// x may be any strided view; cols [B, C*kh*kw, L] has rows of L contiguous, image stride cb.
template <typename T>
static void im2col_typed(const T* x, const Shape& xs, T* cols, int64_t cb, const ConvGeom& g) {
  const int64_t K = g.kh * g.kw, L = g.Ho * g.Wo, planes = g.B * g.C;
#pragma omp parallel for if (planes * K * L > kParallelGrain && planes > 1) schedule(static)
  for (int64_t bc = 0; bc < planes; ++bc) {
    const T* xp = x + (bc / g.C) * xs[0] + (bc % g.C) * xs[1];
    for (int64_t i = 0; i < g.kh; ++i) {
      Span rows = valid_span(g.H, g.Ho, g.sh, g.ph, i * g.dh);
      for (int64_t j = 0; j < g.kw; ++j) {
        Span span = valid_span(g.W, g.Wo, g.sw, g.pw, j * g.dw);
        const int64_t n = span.hi - span.lo, step = g.sw * xs[3];
        const int64_t iw0 = span.lo * g.sw - g.pw + j * g.dw;  // input column of output span.lo
        T* dst = cols + (bc / g.C) * cb + ((bc % g.C) * K + i * g.kw + j) * L;
        for (int64_t oh = 0; oh < g.Ho; ++oh) {
          T* d = dst + oh * g.Wo;
          if (oh < rows.lo || oh >= rows.hi) {
            std::fill(d, d + g.Wo, T(0));
            continue;
          }
          const T* src = xp + (oh * g.sh - g.ph + i * g.dh) * xs[2] + iw0 * xs[3];
          // plain loops, not memset/memcpy calls: rows are short (often 10-30 elements)
          for (int64_t q = 0; q < span.lo; ++q) d[q] = T(0);
          if (step == 1) {
#pragma omp simd
            for (int64_t q = 0; q < n; ++q) d[span.lo + q] = src[q];
          } else {
            for (int64_t q = 0; q < n; ++q) d[span.lo + q] = src[q * step];
          }
          for (int64_t q = span.hi; q < g.Wo; ++q) d[q] = T(0);
        }
      }
    }
  }
}

static void im2col(Tref x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                   int64_t dh, int64_t dw, Tref cols) {
  ConvGeom g = conv_geom(x, cols, kh, kw, sh, sw, ph, pw, dh, dw, "im2col");
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "im2col", [&] {
    im2col_typed<scalar_t>(x.data<scalar_t>(), x.strides(), cols.data<scalar_t>(), cols.strides()[0],
                           g);
  });
}

// dx (contiguous) = the adjoint of im2col applied to cols; overwrites dx.
template <typename T>
static void col2im_typed(const T* cols, int64_t cb, T* dx, const ConvGeom& g) {
  const int64_t K = g.kh * g.kw, L = g.Ho * g.Wo, planes = g.B * g.C;
#pragma omp parallel for if (planes * K * L > kParallelGrain && planes > 1) schedule(static)
  for (int64_t bc = 0; bc < planes; ++bc) {
    T* xp = dx + bc * g.H * g.W;
    std::fill(xp, xp + g.H * g.W, T(0));
    for (int64_t i = 0; i < g.kh; ++i) {
      Span rows = valid_span(g.H, g.Ho, g.sh, g.ph, i * g.dh);
      for (int64_t j = 0; j < g.kw; ++j) {
        Span span = valid_span(g.W, g.Wo, g.sw, g.pw, j * g.dw);
        const int64_t n = span.hi - span.lo, iw0 = span.lo * g.sw - g.pw + j * g.dw;
        const T* src = cols + (bc / g.C) * cb + ((bc % g.C) * K + i * g.kw + j) * L + span.lo;
        for (int64_t oh = rows.lo; oh < rows.hi; ++oh) {
          T* d = xp + (oh * g.sh - g.ph + i * g.dh) * g.W + iw0;
          const T* s = src + oh * g.Wo;
          if (g.sw == 1)
            for (int64_t q = 0; q < n; ++q) d[q] += s[q];
          else
            for (int64_t q = 0; q < n; ++q) d[q * g.sw] += s[q];
        }
      }
    }
  }
}

static void col2im(Tref cols, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                   int64_t dh, int64_t dw, Tref dx) {
  ENGRAM_CHECK(dx.is_contiguous(), "col2im: dx must be contiguous, got strides {}",
               shape_str(dx.strides()));
  ConvGeom g = conv_geom(dx, cols, kh, kw, sh, sw, ph, pw, dh, dw, "col2im");
  ENGRAM_DISPATCH_FLOAT(dx.dtype(), "col2im", [&] {
    col2im_typed<scalar_t>(cols.data<scalar_t>(), cols.strides()[0], dx.data<scalar_t>(), g);
  });
}

// ---- pooling ----

struct PoolGeom {
  int64_t B, C, H, W, Ho, Wo, k, s, p;
};
static PoolGeom pool_geom(Tref x, Tref y, int64_t k, int64_t s, int64_t p, const char* op) {
  ENGRAM_CHECK(x.dim() == 4 && y.dim() == 4, "{}: expects 4-D x and y, got {} and {}", op,
               shape_str(x.shape()), shape_str(y.shape()));
  PoolGeom g{x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3], y.shape()[2], y.shape()[3], k,
             s, p};
  ENGRAM_CHECK(y.shape()[0] == g.B && y.shape()[1] == g.C && g.Ho == (g.H + 2 * p - k) / s + 1 &&
                   g.Wo == (g.W + 2 * p - k) / s + 1,
               "{}: output {} does not match input {} with kernel {}, stride {}, padding {}", op,
               shape_str(y.shape()), shape_str(x.shape()), k, s, p);
  return g;
}

// One step of a running max: take v when it is larger or NaN (PyTorch's rule, so NaN propagates).
template <typename T> static inline void take_max(T v, int64_t i, T& best, int64_t& bi) {
  const bool take = (v > best) | (v != v);
  best = take ? v : best;
  bi = take ? i : bi;
}

// One output row of the 2x2 stride-2 unpadded pool (the common case), from input rows r0, r1.
// Branch-free so that it vectorises (with random data a branch on each comparison mispredicts
// every other time): first the maxima and which of the four won (0..3), then the flat indices. base is the flat index of r0[0]; W the plane's width.
template <typename T>
static void max2x2_row(const T* r0, const T* r1, int64_t Wo, int64_t base, int64_t W, T* y,
                       int64_t* am) {
  constexpr int64_t kBlock = 64;
  int32_t which[kBlock];
  for (int64_t o0 = 0; o0 < Wo; o0 += kBlock) {
    const int64_t n = std::min(kBlock, Wo - o0);
    const T *p0 = r0 + 2 * o0, *p1 = r1 + 2 * o0;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      T m = p0[2 * j], v = p0[2 * j + 1];
      int32_t w = 0;
      bool take = (v > m) | (v != v);
      m = take ? v : m, w = take ? 1 : w;
      v = p1[2 * j];
      take = (v > m) | (v != v);
      m = take ? v : m, w = take ? 2 : w;
      v = p1[2 * j + 1];
      take = (v > m) | (v != v);
      m = take ? v : m, w = take ? 3 : w;
      y[o0 + j] = m;
      which[j] = w;
    }
    for (int64_t j = 0; j < n; ++j)
      am[o0 + j] = base + 2 * (o0 + j) + (which[j] & 1) + (which[j] >> 1) * W;
  }
}

// y = max over the window (padding counts as -inf, so clipping the window is the same);
// am = flat index in the plane. A NaN wins (and propagates), as in PyTorch.
template <typename T>
static void max_pool_typed(const T* x, const Shape& xs, T* y, int64_t* am, const PoolGeom& g) {
  const int64_t planes = g.B * g.C, Lo = g.Ho * g.Wo;
  const bool fast2 = g.k == 2 && g.s == 2 && g.p == 0 && xs[3] == 1;
#pragma omp parallel for if (planes * Lo * g.k * g.k > kParallelGrain && planes > 1) schedule(static)
  for (int64_t bc = 0; bc < planes; ++bc) {
    const T* xp = x + (bc / g.C) * xs[0] + (bc % g.C) * xs[1];
    T* yp = y + bc * Lo;
    int64_t* ap = am + bc * Lo;
    for (int64_t oh = 0; oh < g.Ho; ++oh) {
      if (fast2) {
        max2x2_row(xp + 2 * oh * xs[2], xp + (2 * oh + 1) * xs[2], g.Wo, 2 * oh * g.W, g.W,
                   yp + oh * g.Wo, ap + oh * g.Wo);
        continue;
      }
      const int64_t h0 = std::max<int64_t>(oh * g.s - g.p, 0);
      const int64_t h1 = std::min<int64_t>(oh * g.s - g.p + g.k, g.H);
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        const int64_t w0 = std::max<int64_t>(ow * g.s - g.p, 0);
        const int64_t w1 = std::min<int64_t>(ow * g.s - g.p + g.k, g.W);
        T best = -std::numeric_limits<T>::infinity();
        int64_t bi = h0 * g.W + w0;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw)
            take_max(xp[ih * xs[2] + iw * xs[3]], ih * g.W + iw, best, bi);
        yp[oh * g.Wo + ow] = best;
        ap[oh * g.Wo + ow] = bi;
      }
    }
  }
}

static void max_pool2d(Tref x, int64_t k, int64_t s, int64_t p, Tref y, Tref argmax) {
  PoolGeom g = pool_geom(x, y, k, s, p, "max_pool2d");
  ENGRAM_CHECK(y.is_contiguous() && argmax.is_contiguous() && argmax.shape() == y.shape() &&
                   argmax.dtype() == DType::i64,
               "max_pool2d: y and argmax must be contiguous, argmax i64 of y's shape {}",
               shape_str(y.shape()));
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "max_pool2d", [&] {
    max_pool_typed<scalar_t>(x.data<scalar_t>(), x.strides(), y.data<scalar_t>(),
                             argmax.data<int64_t>(), g);
  });
}

// dx (contiguous, overwritten) = 0, then dx[plane][argmax] += dy for every output.
template <typename T>
static void max_pool_backward_typed(const T* dy, const Shape& ds, const int64_t* am, T* dx,
                                    int64_t B, int64_t C, int64_t HW, int64_t Ho, int64_t Wo) {
  const int64_t planes = B * C, Lo = Ho * Wo;
#pragma omp parallel for if (planes * (Lo + HW) > kParallelGrain && planes > 1) schedule(static)
  for (int64_t bc = 0; bc < planes; ++bc) {
    const T* dp = dy + (bc / C) * ds[0] + (bc % C) * ds[1];
    const int64_t* ap = am + bc * Lo;
    T* xp = dx + bc * HW;
    std::fill(xp, xp + HW, T(0));
    for (int64_t oh = 0; oh < Ho; ++oh)
      for (int64_t ow = 0; ow < Wo; ++ow) xp[ap[oh * Wo + ow]] += dp[oh * ds[2] + ow * ds[3]];
  }
}

static void max_pool2d_backward(Tref dy, Tref argmax, Tref dx) {
  ENGRAM_CHECK(dy.dim() == 4 && dx.dim() == 4 && dx.is_contiguous() && argmax.is_contiguous() &&
                   argmax.shape() == dy.shape(),
               "max_pool2d_backward: expects dy {} and argmax {} alike, dx {} contiguous",
               shape_str(dy.shape()), shape_str(argmax.shape()), shape_str(dx.shape()));
  ENGRAM_DISPATCH_FLOAT(dy.dtype(), "max_pool2d_backward", [&] {
    max_pool_backward_typed<scalar_t>(dy.data<scalar_t>(), dy.strides(), argmax.data<int64_t>(),
                                      dx.data<scalar_t>(), dx.shape()[0], dx.shape()[1],
                                      dx.shape()[2] * dx.shape()[3], dy.shape()[2], dy.shape()[3]);
  });
}

// y = sum over the clipped window / (k*k): the padding counts as zeros (count_include_pad).
template <typename T>
static void avg_pool_typed(const T* x, const Shape& xs, T* y, const PoolGeom& g) {
  const int64_t planes = g.B * g.C, Lo = g.Ho * g.Wo;
  const T inv = T(1) / T(g.k * g.k);
#pragma omp parallel for if (planes * Lo * g.k * g.k > kParallelGrain && planes > 1) schedule(static)
  for (int64_t bc = 0; bc < planes; ++bc) {
    const T* xp = x + (bc / g.C) * xs[0] + (bc % g.C) * xs[1];
    T* yp = y + bc * Lo;
    for (int64_t oh = 0; oh < g.Ho; ++oh) {
      const int64_t h0 = std::max<int64_t>(oh * g.s - g.p, 0);
      const int64_t h1 = std::min<int64_t>(oh * g.s - g.p + g.k, g.H);
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        const int64_t w0 = std::max<int64_t>(ow * g.s - g.p, 0);
        const int64_t w1 = std::min<int64_t>(ow * g.s - g.p + g.k, g.W);
        T acc = 0;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) acc += xp[ih * xs[2] + iw * xs[3]];
        yp[oh * g.Wo + ow] = acc * inv;
      }
    }
  }
}

static void avg_pool2d(Tref x, int64_t k, int64_t s, int64_t p, Tref y) {
  PoolGeom g = pool_geom(x, y, k, s, p, "avg_pool2d");
  ENGRAM_CHECK(y.is_contiguous(), "avg_pool2d: y must be contiguous");
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "avg_pool2d", [&] {
    avg_pool_typed<scalar_t>(x.data<scalar_t>(), x.strides(), y.data<scalar_t>(), g);
  });
}

// dx (contiguous, overwritten): each dy / (k*k) spread over its clipped window.
template <typename T>
static void avg_pool_backward_typed(const T* dy, const Shape& ds, T* dx, const PoolGeom& g) {
  const int64_t planes = g.B * g.C, HW = g.H * g.W;
  const T inv = T(1) / T(g.k * g.k);
#pragma omp parallel for if (planes * g.Ho * g.Wo * g.k * g.k > kParallelGrain && planes > 1) \
    schedule(static)
  for (int64_t bc = 0; bc < planes; ++bc) {
    const T* dp = dy + (bc / g.C) * ds[0] + (bc % g.C) * ds[1];
    T* xp = dx + bc * HW;
    std::fill(xp, xp + HW, T(0));
    for (int64_t oh = 0; oh < g.Ho; ++oh) {
      const int64_t h0 = std::max<int64_t>(oh * g.s - g.p, 0);
      const int64_t h1 = std::min<int64_t>(oh * g.s - g.p + g.k, g.H);
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        const int64_t w0 = std::max<int64_t>(ow * g.s - g.p, 0);
        const int64_t w1 = std::min<int64_t>(ow * g.s - g.p + g.k, g.W);
        const T v = dp[oh * ds[2] + ow * ds[3]] * inv;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) xp[ih * g.W + iw] += v;
      }
    }
  }
}

static void avg_pool2d_backward(Tref dy, int64_t k, int64_t s, int64_t p, Tref dx) {
  ENGRAM_CHECK(dx.is_contiguous(), "avg_pool2d_backward: dx must be contiguous");
  PoolGeom g = pool_geom(dx, dy, k, s, p, "avg_pool2d_backward");
  ENGRAM_DISPATCH_FLOAT(dy.dtype(), "avg_pool2d_backward", [&] {
    avg_pool_backward_typed<scalar_t>(dy.data<scalar_t>(), dy.strides(), dx.data<scalar_t>(), g);
  });
}

void register_conv(Backend& b) {
  b.im2col = im2col;
  b.col2im = col2im;
  b.max_pool2d = max_pool2d;
  b.max_pool2d_backward = max_pool2d_backward;
  b.avg_pool2d = avg_pool2d;
  b.avg_pool2d_backward = avg_pool2d_backward;
}

}  // namespace engram::cpu
