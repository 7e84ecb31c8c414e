// cuda/cuda_elementwise.cu — pointwise math on the GPU: unary (and its backward), binary, where.
//
// The formulas are core/elementwise_math.h, the same inline functions the CPU backend
// (core/cpu/cpu_elementwise.cpp) calls, so the two backends compute each element identically up
// to the device's libm (CUDA's exp/erf/tanh are within 1-2 ulp of glibc's).
//   unary:           out = f(x; p0, p1)                        any strides on x and out
//   unary_backward:  dx = dy * f'(x, y; p0, p1)                any strides on x, y, dy, dx
//   binary:          out = a (op) b, equal shapes              (broadcasts arrive as stride-0 views)
//   where:           out = cond != 0 ? a : b                   cond of any dtype
// As on the CPU, the op is a template argument, so each kernel's switch folds away. All-contiguous
// operands take a flat loop (no index arithmetic); the rest go through Strided<N>'s offsets.
#include "core/elementwise_math.h"
#include "cuda/common.cuh"

namespace engram::cuda {

static bool all_contiguous(std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (!t->is_contiguous()) return false;
  return true;
}

static void check_same_shape(Tref t, Tref out, const char* op, const char* what) {
  ENGRAM_CHECK(t.shape() == out.shape(), "{}: {} is {} but the output is {}", op, what,
               shape_str(t.shape()), shape_str(out.shape()));
}

static void check_dtype(Tref t, DType dt, const char* op, const char* what) {
  ENGRAM_CHECK(t.dtype() == dt, "{}: {} is {} but the output is {}", op, what,
               dtype_name(t.dtype()), dtype_name(dt));
}

// ---------------------------------------------------------------- unary
template <typename T, UnaryOp OP> static void unary_launch(Tref x, T a, T b, Tref out) {
  const T* xp = x.data<T>();
  T* o = out.data<T>();
  const int64_t n = out.numel();
  if (all_contiguous({&x, &out})) {
    for_each_index(n, [=] __device__(int64_t i) { o[i] = unary_f<T>(OP, xp[i], a, b); }, "unary");
    return;
  }
  for_each_strided<2>(
      n, make_strided(out.shape(), out.strides(), x.strides(), "unary"),
      [=] __device__(const int64_t(&off)[2]) { o[off[0]] = unary_f<T>(OP, xp[off[1]], a, b); },
      "unary");
}

template <typename T> static void unary_typed(UnaryOp op, Tref x, T a, T b, Tref out) {
  switch (op) {
#define ENGRAM_UNARY_CASE(NAME) \
  case UnaryOp::NAME: return unary_launch<T, UnaryOp::NAME>(x, a, b, out);
    ENGRAM_FOR_EACH_UNARY_OP(ENGRAM_UNARY_CASE)
#undef ENGRAM_UNARY_CASE
  }
}

static void unary(UnaryOp op, Tref x, double p0, double p1, Tref out) {
  require_cuda(x, "unary", "x");
  require_cuda(out, "unary", "out");
  check_same_shape(x, out, "unary", "x");
  check_dtype(x, out.dtype(), "unary", "x");
  if (out.numel() == 0) return;
  ENGRAM_DISPATCH_FLOAT(out.dtype(), "unary", [&] {
    unary_typed<scalar_t>(op, x, scalar_t(p0), scalar_t(p1), out);
  });
}

template <typename T, UnaryOp OP>
static void unary_backward_launch(Tref x, Tref y, Tref dy, T a, T b, Tref dx) {
  const T *xp = x.data<T>(), *yp = y.data<T>(), *gp = dy.data<T>();
  T* o = dx.data<T>();
  const int64_t n = dx.numel();
  if (all_contiguous({&x, &y, &dy, &dx})) {
    for_each_index(
        n, [=] __device__(int64_t i) { o[i] = gp[i] * unary_df<T>(OP, xp[i], yp[i], a, b); },
        "unary_backward");
    return;
  }
  for_each_strided<4>(
      n, make_strided(dx.shape(), dx.strides(), x.strides(), y.strides(), dy.strides(),
                      "unary_backward"),
      [=] __device__(const int64_t(&off)[4]) {
        o[off[0]] = gp[off[3]] * unary_df<T>(OP, xp[off[1]], yp[off[2]], a, b);
      },
      "unary_backward");
}

template <typename T>
static void unary_backward_typed(UnaryOp op, Tref x, Tref y, Tref dy, T a, T b, Tref dx) {
  switch (op) {
#define ENGRAM_UNARY_CASE(NAME) \
  case UnaryOp::NAME: return unary_backward_launch<T, UnaryOp::NAME>(x, y, dy, a, b, dx);
    ENGRAM_FOR_EACH_UNARY_OP(ENGRAM_UNARY_CASE)
#undef ENGRAM_UNARY_CASE
  }
}

static void unary_backward(UnaryOp op, Tref x, Tref y, Tref dy, double p0, double p1, Tref dx) {
  const char* name = "unary_backward";
  require_cuda(dx, name, "dx");
  // x and y are each read only by some ops (exp's derivative is y, sin's is cos x), but the
  // callers always pass both, as the CPU kernel requires.
  for (const auto& [t, what] : {std::pair<Tref, const char*>{x, "x"}, {y, "y"}, {dy, "dy"}}) {
    require_cuda(t, name, what);
    check_same_shape(t, dx, name, what);
    check_dtype(t, dx.dtype(), name, what);
  }
  if (dx.numel() == 0) return;
  ENGRAM_DISPATCH_FLOAT(dx.dtype(), name, [&] {
    unary_backward_typed<scalar_t>(op, x, y, dy, scalar_t(p0), scalar_t(p1), dx);
  });
}

// ---------------------------------------------------------------- binary
template <typename T, BinaryOp OP> static void binary_launch(Tref a, Tref b, Tref out) {
  const T *ap = a.data<T>(), *bp = b.data<T>();
  T* o = out.data<T>();
  const int64_t n = out.numel();
  if (all_contiguous({&a, &b, &out})) {
    for_each_index(n, [=] __device__(int64_t i) { o[i] = binary_f<T>(OP, ap[i], bp[i]); },
                   "binary");
    return;
  }
  for_each_strided<3>(
      n, make_strided(out.shape(), out.strides(), a.strides(), b.strides(), "binary"),
      [=] __device__(const int64_t(&off)[3]) {
        o[off[0]] = binary_f<T>(OP, ap[off[1]], bp[off[2]]);
      },
      "binary");
}

template <typename T> static void binary_typed(BinaryOp op, Tref a, Tref b, Tref out) {
  switch (op) {
#define ENGRAM_BINARY_CASE(NAME) \
  case BinaryOp::NAME: return binary_launch<T, BinaryOp::NAME>(a, b, out);
    ENGRAM_FOR_EACH_BINARY_OP(ENGRAM_BINARY_CASE)
#undef ENGRAM_BINARY_CASE
  }
}

static void binary(BinaryOp op, Tref a, Tref b, Tref out) {
  for (const auto& [t, what] : {std::pair<Tref, const char*>{a, "a"}, {b, "b"}}) {
    require_cuda(t, "binary", what);
    check_same_shape(t, out, "binary", what);
    check_dtype(t, out.dtype(), "binary", what);
  }
  require_cuda(out, "binary", "out");
  if (out.numel() == 0) return;
  ENGRAM_DISPATCH_FLOAT(out.dtype(), "binary", [&] { binary_typed<scalar_t>(op, a, b, out); });
}

// ---------------------------------------------------------------- where
template <typename T, typename C> static void where_launch(Tref cond, Tref a, Tref b, Tref out) {
  const C* c = cond.data<C>();
  const T *ap = a.data<T>(), *bp = b.data<T>();
  T* o = out.data<T>();
  for_each_strided<4>(
      out.numel(),
      make_strided(out.shape(), out.strides(), cond.strides(), a.strides(), b.strides(), "where"),
      [=] __device__(const int64_t(&off)[4]) {
        o[off[0]] = c[off[1]] != C(0) ? ap[off[2]] : bp[off[3]];
      },
      "where");
}

template <typename T> static void where_typed(Tref cond, Tref a, Tref b, Tref out) {
  ENGRAM_DISPATCH_ALL(cond.dtype(), "where(cond)",
                      [&] { where_launch<T, scalar_t>(cond, a, b, out); });
}

static void where(Tref cond, Tref a, Tref b, Tref out) {
  require_cuda(out, "where", "out");
  require_cuda(cond, "where", "cond");
  check_same_shape(cond, out, "where", "cond");
  for (const auto& [t, what] : {std::pair<Tref, const char*>{a, "a"}, {b, "b"}}) {
    require_cuda(t, "where", what);
    check_same_shape(t, out, "where", what);
    check_dtype(t, out.dtype(), "where", what);
  }
  if (out.numel() == 0) return;
  ENGRAM_DISPATCH_FLOAT(out.dtype(), "where", [&] { where_typed<scalar_t>(cond, a, b, out); });
}

void register_elementwise(Backend& b) {
  b.unary = unary;
  b.unary_backward = unary_backward;
  b.binary = binary;
  b.where = where;
}

}  // namespace engram::cuda
