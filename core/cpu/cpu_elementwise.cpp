// core/cpu/cpu_elementwise.cpp — copies, fills and pointwise math on the CPU.
//
// The formulas (each unary op's forward y = f(x) beside its derivative dy/dx, and the binary
// ops) are core/elementwise_math.h, shared with the CUDA backend (cuda/cuda_elementwise.cu).
// All loops run through for_each_strided (core/cpu/strided.h): any strides, OpenMP for big ones.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "core/backend.h"
#include "core/cpu/strided.h"
#include "core/cpu/vmath.h"
#include "core/elementwise_math.h"

namespace engram::cpu {

// In float, the transcendental activations run on core/cpu/vmath.h's polynomials, so their
// loops vectorise (libm's erff alone was 6% of the transformer step, scalar); the results
// differ from libm's by a few ulp (tanh, sigmoid, silu) or up to 1.5e-7 (erf in GELU). Double
// keeps libm: it is the gradchecks' reference. Every other op is elementwise_math.h's formula.
template <UnaryOp OP> constexpr bool kVectorMath =
    OP == UnaryOp::tanh || OP == UnaryOp::sigmoid || OP == UnaryOp::silu || OP == UnaryOp::gelu ||
    OP == UnaryOp::gelu_tanh;

// GELU's tanh form, tanh(sqrt(2/pi) (x + c x^3)), on vtanh (libm's tanhf, through expm1f, was
// 28% of the s5 step, scalar)
static inline float gelu_tanh_inner(float x) {
  return vtanh(float(kSqrt2OverPi) * (x + float(kGeluC) * x * x * x));
}

template <typename T, UnaryOp OP> static inline T cpu_unary_f(T x, T a, T b) {
  if constexpr (std::is_same_v<T, float> && kVectorMath<OP>) {
    if constexpr (OP == UnaryOp::tanh) return vtanh(x);
    if constexpr (OP == UnaryOp::sigmoid) return vsigmoid(x);
    if constexpr (OP == UnaryOp::silu) return x * vsigmoid(x);
    if constexpr (OP == UnaryOp::gelu) return 0.5f * x * (1.0f + verf(x * float(kInvSqrt2)));
    if constexpr (OP == UnaryOp::gelu_tanh) return 0.5f * x * (1.0f + gelu_tanh_inner(x));
  } else {
    return unary_f<T>(OP, x, a, b);
  }
}

template <typename T, UnaryOp OP> static inline T cpu_unary_df(T x, T y, T a, T b) {
  if constexpr (std::is_same_v<T, float> && OP == UnaryOp::silu) {
    const float sg = vsigmoid(x);
    return sg * (1.0f + x * (1.0f - sg));
  } else if constexpr (std::is_same_v<T, float> && OP == UnaryOp::gelu) {  // Phi(x) + x phi(x)
    return 0.5f * (1.0f + verf(x * float(kInvSqrt2))) +
           x * float(kInvSqrt2Pi) * vexp(-0.5f * x * x);
  } else if constexpr (std::is_same_v<T, float> && OP == UnaryOp::gelu_tanh) {
    const float t = gelu_tanh_inner(x);  // elementwise_math.h's derivative, on vtanh
    return 0.5f * (1.0f + t) +
           0.5f * x * (1.0f - t * t) * float(kSqrt2OverPi) * (1.0f + float(3 * kGeluC) * x * x);
  } else {
    return unary_df<T>(OP, x, y, a, b);  // tanh and sigmoid use y: nothing to evaluate
  }
}

static void copy(Tref dst, Tref src) {
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous()) {
    std::memcpy(dst.raw_data(), src.raw_data(), dst.numel() * dtype_size(dst.dtype()));
    return;
  }
  ENGRAM_DISPATCH_ALL(dst.dtype(), "copy", [&] {
    using D = scalar_t;
    D* o = dst.data<D>();
    ENGRAM_DISPATCH_ALL(src.dtype(), "copy", [&] {
      const scalar_t* s = src.data<scalar_t>();
      for_each_strided<2>(dst.shape(), {dst.strides(), src.strides()},
                          [=](auto off, int64_t n, auto st) {
                            for (int64_t j = 0; j < n; ++j)
                              o[off[0] + j * st[0]] = static_cast<D>(s[off[1] + j * st[1]]);
                          });
    });
  });
}

static void fill(Tref dst, double value) {
  ENGRAM_DISPATCH_ALL(dst.dtype(), "fill", [&] {
    scalar_t* o = dst.data<scalar_t>();
    scalar_t v = static_cast<scalar_t>(value);
    for_each_strided<1>(dst.shape(), {dst.strides()}, [=](auto off, int64_t n, auto st) {
      for (int64_t j = 0; j < n; ++j) o[off[0] + j * st[0]] = v;
    });
  });
}

static void host_copy(Tref dst, Tref src) { copy(dst, src); }

// ---------------------------------------------------------------- unary
// The op is a template argument so the switch in unary_f folds away and the loop vectorises
// (with a runtime op the switch stays inside the loop: relu ran ~30x slower). Contiguous
// operands (the common case) take unary_dense, compiled for SSE2 and for AVX2 + FMA
// (ENGRAM_SIMD_CLONES): the polynomial activations run twice as wide on a CPU that has AVX2
// (GELU's forward on [2048, 512] floats: 2.8 -> 1.0 ms, docs/benchmarks.md).
template <typename T, UnaryOp OP>
ENGRAM_SIMD_CLONES static void unary_dense(const T* x, T* o, int64_t n, T a, T b) {
  for (int64_t j = 0; j < n; ++j) o[j] = cpu_unary_f<T, OP>(x[j], a, b);
}
template <typename T, UnaryOp OP>
ENGRAM_SIMD_CLONES static void unary_backward_dense(const T* x, const T* y, const T* dy, T* dx,
                                                    int64_t n, T a, T b) {
  for (int64_t j = 0; j < n; ++j) dx[j] = dy[j] * cpu_unary_df<T, OP>(x[j], y[j], a, b);
}
// Calls dense(begin, count) over [0, n) in blocks, split over OpenMP threads when n is large.
template <class Dense> static void run_dense(int64_t n, Dense dense) {
  constexpr int64_t kBlock = 1 << 13;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n >= kParallelGrain)
  for (int64_t i = 0; i < blocks; ++i) dense(i * kBlock, std::min(kBlock, n - i * kBlock));
}

// Strided runs are gathered into a small buffer and go through the same dense function, so a
// view and its contiguous copy give bit-identical results (the AVX2 clone's FMAs round
// differently from the SSE2 code a separate strided loop would compile to).
constexpr int64_t kGather = 256;

template <typename T, UnaryOp OP> static void unary_loop(const T* xp, T* o, T a, T b, Tref x, Tref out) {
  if (x.is_contiguous() && out.is_contiguous() && x.shape() == out.shape()) {
    run_dense(out.numel(), [=](int64_t i, int64_t n) { unary_dense<T, OP>(xp + i, o + i, n, a, b); });
    return;
  }
  for_each_strided<2>(out.shape(), {out.strides(), x.strides()}, [=](auto off, int64_t n, auto st) {
    if (st[0] == 1 && st[1] == 1) return unary_dense<T, OP>(xp + off[1], o + off[0], n, a, b);
    T xin[kGather], yout[kGather];
    for (int64_t j0 = 0; j0 < n; j0 += kGather) {
      const int64_t m = std::min(kGather, n - j0);
      for (int64_t j = 0; j < m; ++j) xin[j] = xp[off[1] + (j0 + j) * st[1]];
      unary_dense<T, OP>(xin, yout, m, a, b);
      for (int64_t j = 0; j < m; ++j) o[off[0] + (j0 + j) * st[0]] = yout[j];
    }
  });
}

template <typename T> static void unary_typed(UnaryOp op, Tref x, T a, T b, Tref out) {
  const T* xp = x.data<T>();
  T* o = out.data<T>();
  switch (op) {
#define ENGRAM_UNARY_CASE(NAME) \
  case UnaryOp::NAME: return unary_loop<T, UnaryOp::NAME>(xp, o, a, b, x, out);
    ENGRAM_FOR_EACH_UNARY_OP(ENGRAM_UNARY_CASE)
#undef ENGRAM_UNARY_CASE
  }
}

static void unary(UnaryOp op, Tref x, double p0, double p1, Tref out) {
  ENGRAM_DISPATCH_FLOAT(out.dtype(), "unary", [&] {
    unary_typed<scalar_t>(op, x, scalar_t(p0), scalar_t(p1), out);
  });
}

template <typename T, UnaryOp OP>
static void unary_backward_loop(const T* xp, const T* yp, const T* gp, T* o, T a, T b, Tref x, Tref y,
                                Tref dy, Tref dx) {
  if (x.is_contiguous() && y.is_contiguous() && dy.is_contiguous() && dx.is_contiguous() &&
      x.shape() == dx.shape() && y.shape() == dx.shape() && dy.shape() == dx.shape()) {
    run_dense(dx.numel(), [=](int64_t i, int64_t n) {
      unary_backward_dense<T, OP>(xp + i, yp + i, gp + i, o + i, n, a, b);
    });
    return;
  }
  for_each_strided<4>(dx.shape(), {dx.strides(), x.strides(), y.strides(), dy.strides()},
                      [=](auto off, int64_t n, auto st) {
                        if (st[0] == 1 && st[1] == 1 && st[2] == 1 && st[3] == 1)
                          return unary_backward_dense<T, OP>(xp + off[1], yp + off[2], gp + off[3],
                                                             o + off[0], n, a, b);
                        T xin[kGather], yin[kGather], gin[kGather], dout[kGather];
                        for (int64_t j0 = 0; j0 < n; j0 += kGather) {
                          const int64_t m = std::min(kGather, n - j0);
                          for (int64_t j = 0; j < m; ++j) {
                            xin[j] = xp[off[1] + (j0 + j) * st[1]];
                            yin[j] = yp[off[2] + (j0 + j) * st[2]];
                            gin[j] = gp[off[3] + (j0 + j) * st[3]];
                          }
                          unary_backward_dense<T, OP>(xin, yin, gin, dout, m, a, b);
                          for (int64_t j = 0; j < m; ++j) o[off[0] + (j0 + j) * st[0]] = dout[j];
                        }
                      });
}

template <typename T>
static void unary_backward_typed(UnaryOp op, Tref x, Tref y, Tref dy, T a, T b, Tref dx) {
  const T *xp = x.data<T>(), *yp = y.data<T>(), *gp = dy.data<T>();
  T* o = dx.data<T>();
  switch (op) {
#define ENGRAM_UNARY_CASE(NAME) \
  case UnaryOp::NAME: return unary_backward_loop<T, UnaryOp::NAME>(xp, yp, gp, o, a, b, x, y, dy, dx);
    ENGRAM_FOR_EACH_UNARY_OP(ENGRAM_UNARY_CASE)
#undef ENGRAM_UNARY_CASE
  }
}

static void unary_backward(UnaryOp op, Tref x, Tref y, Tref dy, double p0, double p1, Tref dx) {
  ENGRAM_DISPATCH_FLOAT(dx.dtype(), "unary_backward", [&] {
    unary_backward_typed<scalar_t>(op, x, y, dy, scalar_t(p0), scalar_t(p1), dx);
  });
}

// ---------------------------------------------------------------- binary
template <typename T, BinaryOp OP> static void binary_loop(T* o, const T* a, const T* b, Tref out,
                                                            Tref ta, Tref tb) {
  for_each_strided<3>(out.shape(), {out.strides(), ta.strides(), tb.strides()},
                      [=](auto off, int64_t n, auto st) {
                        if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
                          T* oo = o + off[0];
                          const T *aa = a + off[1], *bb = b + off[2];
                          for (int64_t j = 0; j < n; ++j) oo[j] = binary_f<T>(OP, aa[j], bb[j]);
                        } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {  // tensor (op) scalar-row
                          T* oo = o + off[0];
                          const T* aa = a + off[1];
                          T bv = b[off[2]];
                          for (int64_t j = 0; j < n; ++j) oo[j] = binary_f<T>(OP, aa[j], bv);
                        } else {
                          for (int64_t j = 0; j < n; ++j)
                            o[off[0] + j * st[0]] =
                                binary_f<T>(OP, a[off[1] + j * st[1]], b[off[2] + j * st[2]]);
                        }
                      });
}

// The op is a template argument so each inner loop is specialised and vectorised.
template <typename T>
static void binary_typed(BinaryOp op, const T* ap, const T* bp, T* o, Tref a, Tref b, Tref out) {
  switch (op) {
#define ENGRAM_BINARY_CASE(NAME) \
  case BinaryOp::NAME: return binary_loop<T, BinaryOp::NAME>(o, ap, bp, out, a, b);
    ENGRAM_FOR_EACH_BINARY_OP(ENGRAM_BINARY_CASE)
#undef ENGRAM_BINARY_CASE
  }
}

static void binary(BinaryOp op, Tref a, Tref b, Tref out) {
  ENGRAM_DISPATCH_FLOAT(out.dtype(), "binary", [&] {
    binary_typed<scalar_t>(op, a.data<scalar_t>(), b.data<scalar_t>(), out.data<scalar_t>(), a, b,
                           out);
  });
}

static void where(Tref cond, Tref a, Tref b, Tref out) {
  ENGRAM_DISPATCH_FLOAT(out.dtype(), "where", [&] {
    using T = scalar_t;
    const T *ap = a.data<T>(), *bp = b.data<T>();
    T* o = out.data<T>();
    ENGRAM_DISPATCH_ALL(cond.dtype(), "where(cond)", [&] {
      const scalar_t* c = cond.data<scalar_t>();
      for_each_strided<4>(out.shape(), {out.strides(), cond.strides(), a.strides(), b.strides()},
                          [=](auto off, int64_t n, auto st) {
                            if (st[0] == 1 && st[1] == 0) {
                              // one condition for the whole run (a per-row mask broadcast over
                              // the last dim, as the episodic slot write has): copy a's run or b's
                              const bool take_a = c[off[1]] != scalar_t(0);
                              const T* src = take_a ? ap + off[2] : bp + off[3];
                              const int64_t ss = take_a ? st[2] : st[3];
                              T* oo = o + off[0];
                              if (ss == 1) std::memcpy(oo, src, size_t(n) * sizeof(T));
                              else if (ss == 0) std::fill(oo, oo + n, *src);
                              else for (int64_t j = 0; j < n; ++j) oo[j] = src[j * ss];
                              return;
                            }
                            for (int64_t j = 0; j < n; ++j)
                              o[off[0] + j * st[0]] = c[off[1] + j * st[1]] != scalar_t(0)
                                                          ? ap[off[2] + j * st[2]]
                                                          : bp[off[3] + j * st[3]];
                          });
    });
  });
}

void register_elementwise(Backend& b) {
  b.copy = copy;
  b.fill = fill;
  b.upload = host_copy;
  b.download = host_copy;
  b.unary = unary;
  b.unary_backward = unary_backward;
  b.binary = binary;
  b.where = where;
}

}  // namespace engram::cpu
