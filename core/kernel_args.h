// core/kernel_args.h — argument checks that a kernel's CPU and CUDA versions share word for word
// (the shapes and dtypes a backend entry expects; where the data lives is each backend's own
// check). A caller that breaks the contract gets an error naming the kernel, not wrong numbers.
#pragma once
#include <utility>

#include "core/error.h"
#include "core/tensor.h"

namespace engram {

// All dims but the last: a complex tensor's element shape (or strides) without its [re, im] dim.
inline Shape without_last(const Shape& s) { return Shape(s.begin(), s.end() - 1); }

// vandermonde: a [R, 2] and V [R, P, 2], one dtype (the backward passes da as a).
inline void check_vandermonde_args(const char* op, const Tensor& a, const Tensor& V) {
  ENGRAM_CHECK(a.dim() == 2 && a.shape()[1] == 2 && V.dim() == 3 && V.shape()[0] == a.shape()[0] &&
                   V.shape()[2] == 2,
               "{}: expected a [R, 2] and V [R, P, 2], got a {}, V {}", op, shape_str(a.shape()),
               shape_str(V.shape()));
  ENGRAM_CHECK(V.dtype() == a.dtype(), "{}: dtypes differ: a {}, V {}", op, dtype_name(a.dtype()),
               dtype_name(V.dtype()));
}

// complex_mul: a, b of out's shape [.., 2], one dtype.
inline void check_complex_mul_args(const Tensor& a, const Tensor& b, const Tensor& out) {
  ENGRAM_CHECK(out.dim() >= 1 && out.shape().back() == 2 && a.shape() == out.shape() &&
                   b.shape() == out.shape(),
               "complex_mul: expected a, b of the output's shape [.., 2], got a {}, b {}, out {}",
               shape_str(a.shape()), shape_str(b.shape()), shape_str(out.shape()));
  ENGRAM_CHECK(a.dtype() == out.dtype() && b.dtype() == out.dtype(),
               "complex_mul: dtypes differ: a {}, b {}, out {}", dtype_name(a.dtype()),
               dtype_name(b.dtype()), dtype_name(out.dtype()));
}

// True when t's last three dims [rows, cols, 2] are laid out densely (row-major, complex pairs
// adjacent), as complex BLAS reads them; the stride of a size-1 dim does not matter.
inline bool dense_complex_matrices(const Tensor& t) {
  const int64_t n = t.dim();
  return t.strides()[n - 1] == 1 && (t.shape()[n - 2] == 1 || t.strides()[n - 2] == 2) &&
         (t.shape()[n - 3] == 1 || t.strides()[n - 3] == 2 * t.shape()[n - 2]);
}

// complex_matmul: out [.., M, N, 2] = op(a) op(b) with op(a) [.., M, K], op(b) [.., K, N] (op the
// conjugate transpose where adjoint); equal ranks, batch dims equal to out's or 1, one dtype, the
// last three dims of a and b dense. Returns K.
inline int64_t check_complex_matmul_args(const Tensor& a, const Tensor& b, bool adjoint_a,
                                         bool adjoint_b, const Tensor& out) {
  const int64_t nd = out.dim();
  ENGRAM_CHECK(nd >= 3 && a.dim() == nd && b.dim() == nd && out.shape().back() == 2 &&
                   a.shape().back() == 2 && b.shape().back() == 2,
               "complex_matmul kernel: expects equal-rank complex operands [.., r, c, 2], got {} {} "
               "{}",
               shape_str(a.shape()), shape_str(b.shape()), shape_str(out.shape()));
  const int64_t M = out.shape()[nd - 3], N = out.shape()[nd - 2];
  const int64_t a_rows = a.shape()[nd - 3], a_cols = a.shape()[nd - 2];
  const int64_t b_rows = b.shape()[nd - 3], b_cols = b.shape()[nd - 2];
  const int64_t K = adjoint_a ? a_rows : a_cols;
  ENGRAM_CHECK((adjoint_a ? a_cols : a_rows) == M && (adjoint_b ? b_cols : b_rows) == K &&
                   (adjoint_b ? b_rows : b_cols) == N,
               "complex_matmul kernel: shapes {}{} @ {}{} do not give {}", shape_str(a.shape()),
               adjoint_a ? "^H" : "", shape_str(b.shape()), adjoint_b ? "^H" : "",
               shape_str(out.shape()));
  for (int64_t d = 0; d < nd - 3; ++d)
    ENGRAM_CHECK((a.shape()[d] == out.shape()[d] || a.shape()[d] == 1) &&
                     (b.shape()[d] == out.shape()[d] || b.shape()[d] == 1),
                 "complex_matmul kernel: batch shapes of {} and {} do not match out {}",
                 shape_str(a.shape()), shape_str(b.shape()), shape_str(out.shape()));
  ENGRAM_CHECK(dense_complex_matrices(a) && dense_complex_matrices(b) && out.is_contiguous(),
               "complex_matmul kernel: expects dense matrices (strides {} and {}) and a contiguous "
               "out",
               shape_str(a.strides()), shape_str(b.strides()));
  ENGRAM_CHECK(a.dtype() == out.dtype() && b.dtype() == out.dtype(),
               "complex_matmul kernel: dtypes differ: a {}, b {}, out {}", dtype_name(a.dtype()),
               dtype_name(b.dtype()), dtype_name(out.dtype()));
  return K;
}

// Element offsets into a and b of batch element bi of out (row-major over out's batch dims, the
// last `matrix_dims` dims excluded); a size-1 batch dim of an operand is a broadcast.
inline std::pair<int64_t, int64_t> batch_offsets(const Tensor& out, const Tensor& a,
                                                 const Tensor& b, int64_t bi, int matrix_dims) {
  int64_t oa = 0, ob = 0, rem = bi;
  for (int64_t d = out.dim() - matrix_dims - 1; d >= 0; --d) {
    const int64_t i = rem % out.shape()[d];
    rem /= out.shape()[d];
    if (a.shape()[d] != 1) oa += i * a.strides()[d];
    if (b.shape()[d] != 1) ob += i * b.strides()[d];
  }
  return {oa, ob};
}

}  // namespace engram
