// cuda/cuda_conv.cu — convolution (im2col/col2im) and 2-D pooling on the GPU, NCHW; mirrors
// core/cpu/cpu_conv.cpp (same checks, same results).
//
// im2col unrolls every receptive field of x [B, C, H, W] (any strides) into a column:
//     cols[b, (c*kh + i)*kw + j, oh*Wo + ow] = x[b, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]
// (0 in the padding); cols [B, C*kh*kw, Ho*Wo] has contiguous rows and any batch stride. One
// thread per cols element: consecutive threads write consecutive columns (coalesced).
// col2im is the adjoint: dx (contiguous, overwritten) gets every cols entry added back at the
// position it was read from. The CPU scatters; here each dx element GATHERS instead: for kernel
// tap (i, j) the output row oh that reads input row ih satisfies oh*sh = ih + ph - i*dh (so it
// exists when that is >= 0, divisible by sh and oh < Ho), likewise for columns. Summing taps in
// (i, j) order from 0 is the order in which the CPU adds into that element, so the result is
// bitwise the CPU's, deterministic and without atomics.
//
// Pools (PyTorch defaults: dilation 1, floor mode; k, s, p as in the table): one thread per output.
//   max: y = max over the window clipped to the plane (padding is -inf), argmax = flat h*W + w of
//        the winner in its plane (i64); a NaN wins and propagates, ties keep the first (row-major)
//        element, an empty window gives -inf with index h0*W + w0 — all exactly as the CPU.
//   max backward: dx = 0, then dx[plane][argmax] += dy. The window geometry is not passed, so a
//        gather would have to scan the whole plane; this is the one scatter-add, done with
//        atomicAdd. When windows do not overlap (k <= s) each dx element receives at most one
//        value, so the result is exact; with overlap the order of the (few) additions may vary.
//   avg: y = (sum over the clipped window) / (k*k) — count_include_pad: padding counts as zeros.
//   avg backward: dx[ih, iw] = sum of dy[oh, ow] / (k*k) over the outputs whose window covers
//        (ih, iw), i.e. oh*s - p <= ih < oh*s - p + k; gathered in (oh, ow) order like the CPU.
#include <limits>

#include "cuda/common.cuh"

namespace engram::cuda {

// ---------------------------------------------------------------- im2col / col2im

struct ConvGeom {
  int64_t B, C, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw;
};

static ConvGeom conv_geom(Tref x, Tref cols, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                          int64_t ph, int64_t pw, int64_t dh, int64_t dw, const char* op) {
  ENGRAM_CHECK(x.dim() == 4 && cols.dim() == 3, "{}: expects x [B, C, H, W] and cols [B, C*kh*kw, "
               "Ho*Wo], got {} and {}", op, shape_str(x.shape()), shape_str(cols.shape()));
  ENGRAM_CHECK(sh >= 1 && sw >= 1, "{}: strides must be positive, got {}x{}", op, sh, sw);
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

template <typename T> static void im2col_impl(Tref x, Tref cols, const ConvGeom g) {
  const T* xp = x.data<T>();
  T* cp = cols.data<T>();
  const int64_t xs0 = x.strides()[0], xs1 = x.strides()[1], xs2 = x.strides()[2],
                xs3 = x.strides()[3], cb = cols.strides()[0];
  const int64_t K = g.kh * g.kw, L = g.Ho * g.Wo, R = g.C * K;
  for_each_index(
      g.B * R * L,
      [=] __device__(int64_t idx) {
        const int64_t l = idx % L, t = idx / L, r = t % R, b = t / R;  // cols[b, r, l]
        const int64_t c = r / K, i = (r % K) / g.kw, j = r % g.kw, oh = l / g.Wo, ow = l % g.Wo;
        const int64_t ih = oh * g.sh - g.ph + i * g.dh, iw = ow * g.sw - g.pw + j * g.dw;
        T v = T(0);
        if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W)
          v = xp[b * xs0 + c * xs1 + ih * xs2 + iw * xs3];
        cp[b * cb + r * L + l] = v;
      },
      "im2col");
}

static void im2col(Tref x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                   int64_t dh, int64_t dw, Tref cols) {
  require_cuda(x, "im2col", "x");
  require_cuda(cols, "im2col", "cols");
  ConvGeom g = conv_geom(x, cols, kh, kw, sh, sw, ph, pw, dh, dw, "im2col");
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "im2col", [&] { im2col_impl<scalar_t>(x, cols, g); });
}

template <typename T> static void col2im_impl(Tref cols, Tref dx, const ConvGeom g) {
  const T* cp = cols.data<T>();
  T* xp = dx.data<T>();
  const int64_t cb = cols.strides()[0], K = g.kh * g.kw, L = g.Ho * g.Wo;
  for_each_index(
      g.B * g.C * g.H * g.W,
      [=] __device__(int64_t idx) {
        const int64_t iw = idx % g.W, t = idx / g.W, ih = t % g.H, bc = t / g.H;
        const T* base = cp + (bc / g.C) * cb + (bc % g.C) * K * L;  // rows of channel c
        T acc = T(0);
        for (int64_t i = 0; i < g.kh; ++i) {
          const int64_t th = ih + g.ph - i * g.dh;  // = oh * sh for the output row reading ih
          if (th < 0 || th % g.sh != 0 || th / g.sh >= g.Ho) continue;
          const int64_t oh = th / g.sh;
          for (int64_t j = 0; j < g.kw; ++j) {
            const int64_t tw = iw + g.pw - j * g.dw;
            if (tw < 0 || tw % g.sw != 0 || tw / g.sw >= g.Wo) continue;
            acc += base[(i * g.kw + j) * L + oh * g.Wo + tw / g.sw];
          }
        }
        xp[idx] = acc;  // dx is contiguous: idx is its offset
      },
      "col2im");
}

static void col2im(Tref cols, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                   int64_t dh, int64_t dw, Tref dx) {
  require_cuda(cols, "col2im", "cols");
  require_cuda(dx, "col2im", "dx");
  ENGRAM_CHECK(dx.is_contiguous(), "col2im: dx must be contiguous, got strides {}",
               shape_str(dx.strides()));
  ConvGeom g = conv_geom(dx, cols, kh, kw, sh, sw, ph, pw, dh, dw, "col2im");
  ENGRAM_DISPATCH_FLOAT(dx.dtype(), "col2im", [&] { col2im_impl<scalar_t>(cols, dx, g); });
}

// ---------------------------------------------------------------- pooling

struct PoolGeom {
  int64_t B, C, H, W, Ho, Wo, k, s, p;
};
static PoolGeom pool_geom(Tref x, Tref y, int64_t k, int64_t s, int64_t p, const char* op) {
  ENGRAM_CHECK(x.dim() == 4 && y.dim() == 4, "{}: expects 4-D x and y, got {} and {}", op,
               shape_str(x.shape()), shape_str(y.shape()));
  ENGRAM_CHECK(s >= 1, "{}: stride must be positive, got {}", op, s);
  PoolGeom g{x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3], y.shape()[2], y.shape()[3], k,
             s, p};
  ENGRAM_CHECK(y.shape()[0] == g.B && y.shape()[1] == g.C && g.Ho == (g.H + 2 * p - k) / s + 1 &&
                   g.Wo == (g.W + 2 * p - k) / s + 1,
               "{}: output {} does not match input {} with kernel {}, stride {}, padding {}", op,
               shape_str(y.shape()), shape_str(x.shape()), k, s, p);
  return g;
}

// One step of a running max: take v when it is larger or NaN (PyTorch's rule, so NaN propagates).
template <typename T>
__device__ __forceinline__ void take_max(T v, int64_t i, T& best, int64_t& bi) {
  const bool take = (v > best) | (v != v);
  best = take ? v : best;
  bi = take ? i : bi;
}

// Products rounded on their own, never fused into a following add (nvcc contracts a*b + c into
// an FMA by default): the CPU rounds dy / (k*k) before adding it.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

template <typename T> static void max_pool_impl(Tref x, Tref y, Tref argmax, const PoolGeom g) {
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
  int64_t* ap = argmax.data<int64_t>();
  const int64_t xs0 = x.strides()[0], xs1 = x.strides()[1], xs2 = x.strides()[2],
                xs3 = x.strides()[3];
  const T neg_inf = -std::numeric_limits<T>::infinity();
  for_each_index(
      g.B * g.C * g.Ho * g.Wo,
      [=] __device__(int64_t idx) {
        const int64_t ow = idx % g.Wo, t = idx / g.Wo, oh = t % g.Ho, bc = t / g.Ho;
        const T* plane = xp + (bc / g.C) * xs0 + (bc % g.C) * xs1;
        const int64_t h0 = max(oh * g.s - g.p, (int64_t)0), h1 = min(oh * g.s - g.p + g.k, g.H);
        const int64_t w0 = max(ow * g.s - g.p, (int64_t)0), w1 = min(ow * g.s - g.p + g.k, g.W);
        T best = neg_inf;
        int64_t bi = h0 * g.W + w0;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw)
            take_max(plane[ih * xs2 + iw * xs3], ih * g.W + iw, best, bi);
        yp[idx] = best;
        ap[idx] = bi;
      },
      "max_pool2d");
}

static void max_pool2d(Tref x, int64_t k, int64_t s, int64_t p, Tref y, Tref argmax) {
  require_cuda(x, "max_pool2d", "x");
  require_cuda(y, "max_pool2d", "y");
  require_cuda(argmax, "max_pool2d", "argmax");
  PoolGeom g = pool_geom(x, y, k, s, p, "max_pool2d");
  ENGRAM_CHECK(y.is_contiguous() && argmax.is_contiguous() && argmax.shape() == y.shape() &&
                   argmax.dtype() == DType::i64,
               "max_pool2d: y and argmax must be contiguous, argmax i64 of y's shape {}",
               shape_str(y.shape()));
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "max_pool2d", [&] { max_pool_impl<scalar_t>(x, y, argmax, g); });
}

template <typename T> static void max_pool_backward_impl(Tref dy, Tref argmax, Tref dx) {
  const T* dp = dy.data<T>();
  const int64_t* ap = argmax.data<int64_t>();
  T* xp = dx.data<T>();
  const int64_t C = dy.shape()[1], Ho = dy.shape()[2], Wo = dy.shape()[3];
  const int64_t HW = dx.shape()[2] * dx.shape()[3];
  const int64_t ds0 = dy.strides()[0], ds1 = dy.strides()[1], ds2 = dy.strides()[2],
                ds3 = dy.strides()[3];
  if (dx.numel() > 0)
    ENGRAM_CUDA_CHECK(cudaMemsetAsync(xp, 0, dx.numel() * sizeof(T), stream()),
                      "max_pool2d_backward");
  for_each_index(
      dy.numel(),
      [=] __device__(int64_t idx) {  // idx: flat index of the (contiguous) argmax
        const int64_t ow = idx % Wo, t = idx / Wo, oh = t % Ho, bc = t / Ho;
        const int64_t a = ap[idx];
        if (a < 0 || a >= HW) return;  // not a valid argmax: skipped (the CPU would write astray)
        atomicAdd(xp + bc * HW + a, dp[(bc / C) * ds0 + (bc % C) * ds1 + oh * ds2 + ow * ds3]);
      },
      "max_pool2d_backward");
}

static void max_pool2d_backward(Tref dy, Tref argmax, Tref dx) {
  require_cuda(dy, "max_pool2d_backward", "dy");
  require_cuda(argmax, "max_pool2d_backward", "argmax");
  require_cuda(dx, "max_pool2d_backward", "dx");
  ENGRAM_CHECK(dy.dim() == 4 && dx.dim() == 4 && dx.is_contiguous() && argmax.is_contiguous() &&
                   argmax.shape() == dy.shape() && dx.shape()[0] == dy.shape()[0] &&
                   dx.shape()[1] == dy.shape()[1],
               "max_pool2d_backward: expects dy {} and argmax {} alike, dx {} contiguous",
               shape_str(dy.shape()), shape_str(argmax.shape()), shape_str(dx.shape()));
  ENGRAM_DISPATCH_FLOAT(dy.dtype(), "max_pool2d_backward",
                        [&] { max_pool_backward_impl<scalar_t>(dy, argmax, dx); });
}

template <typename T> static void avg_pool_impl(Tref x, Tref y, const PoolGeom g) {
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
  const int64_t xs0 = x.strides()[0], xs1 = x.strides()[1], xs2 = x.strides()[2],
                xs3 = x.strides()[3];
  const T inv = T(1) / T(g.k * g.k);
  for_each_index(
      g.B * g.C * g.Ho * g.Wo,
      [=] __device__(int64_t idx) {
        const int64_t ow = idx % g.Wo, t = idx / g.Wo, oh = t % g.Ho, bc = t / g.Ho;
        const T* plane = xp + (bc / g.C) * xs0 + (bc % g.C) * xs1;
        const int64_t h0 = max(oh * g.s - g.p, (int64_t)0), h1 = min(oh * g.s - g.p + g.k, g.H);
        const int64_t w0 = max(ow * g.s - g.p, (int64_t)0), w1 = min(ow * g.s - g.p + g.k, g.W);
        T acc = T(0);
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) acc += plane[ih * xs2 + iw * xs3];
        yp[idx] = acc * inv;
      },
      "avg_pool2d");
}

static void avg_pool2d(Tref x, int64_t k, int64_t s, int64_t p, Tref y) {
  require_cuda(x, "avg_pool2d", "x");
  require_cuda(y, "avg_pool2d", "y");
  PoolGeom g = pool_geom(x, y, k, s, p, "avg_pool2d");
  ENGRAM_CHECK(y.is_contiguous(), "avg_pool2d: y must be contiguous");
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "avg_pool2d", [&] { avg_pool_impl<scalar_t>(x, y, g); });
}

template <typename T> static void avg_pool_backward_impl(Tref dy, Tref dx, const PoolGeom g) {
  const T* dp = dy.data<T>();
  T* xp = dx.data<T>();
  const int64_t ds0 = dy.strides()[0], ds1 = dy.strides()[1], ds2 = dy.strides()[2],
                ds3 = dy.strides()[3];
  const T inv = T(1) / T(g.k * g.k);
  for_each_index(
      g.B * g.C * g.H * g.W,
      [=] __device__(int64_t idx) {
        const int64_t iw = idx % g.W, t = idx / g.W, ih = t % g.H, bc = t / g.H;
        const T* plane = dp + (bc / g.C) * ds0 + (bc % g.C) * ds1;
        // outputs o with o*s - p <= i < o*s - p + k, i.e. i + p - k + 1 <= o*s <= i + p
        const int64_t ah = ih + g.p - g.k + 1, bh = ih + g.p;
        const int64_t aw = iw + g.p - g.k + 1, bw = iw + g.p;
        const int64_t oh0 = ah <= 0 ? 0 : (ah + g.s - 1) / g.s;
        const int64_t oh1 = bh < 0 ? 0 : min(bh / g.s + 1, g.Ho);  // exclusive
        const int64_t ow0 = aw <= 0 ? 0 : (aw + g.s - 1) / g.s;
        const int64_t ow1 = bw < 0 ? 0 : min(bw / g.s + 1, g.Wo);
        T acc = T(0);
        for (int64_t oh = oh0; oh < oh1; ++oh)
          for (int64_t ow = ow0; ow < ow1; ++ow) acc += mul_rn(plane[oh * ds2 + ow * ds3], inv);
        xp[idx] = acc;
      },
      "avg_pool2d_backward");
}

static void avg_pool2d_backward(Tref dy, int64_t k, int64_t s, int64_t p, Tref dx) {
  require_cuda(dy, "avg_pool2d_backward", "dy");
  require_cuda(dx, "avg_pool2d_backward", "dx");
  ENGRAM_CHECK(dx.is_contiguous(), "avg_pool2d_backward: dx must be contiguous");
  PoolGeom g = pool_geom(dx, dy, k, s, p, "avg_pool2d_backward");
  ENGRAM_DISPATCH_FLOAT(dy.dtype(), "avg_pool2d_backward",
                        [&] { avg_pool_backward_impl<scalar_t>(dy, dx, g); });
}

void register_conv(Backend& b) {
  b.im2col = im2col;
  b.col2im = col2im;
  b.max_pool2d = max_pool2d;
  b.max_pool2d_backward = max_pool2d_backward;
  b.avg_pool2d = avg_pool2d;
  b.avg_pool2d_backward = avg_pool2d_backward;
}

}  // namespace engram::cuda
