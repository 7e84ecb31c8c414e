// core/kernel_args.h — argument checks that a kernel's CPU and CUDA versions share word for word
// (the shapes and dtypes a backend entry expects; where the data lives is each backend's own
// check). A caller that breaks the contract gets an error naming the kernel, not wrong numbers.
#pragma once
#include <initializer_list>
#include <utility>

#include "core/backend.h"
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

// Each tensor of `want` has its shape and dtype (named in the error with the sizes it came from).
inline void check_shapes(const char* op, std::initializer_list<std::pair<const Tensor*, Shape>> want,
                         DType dtype) {
  for (const auto& [t, shape] : want) {
    ENGRAM_CHECK(t->shape() == shape, "{}: expected a tensor of shape {}, got {}", op,
                 shape_str(shape), shape_str(t->shape()));
    ENGRAM_CHECK(t->dtype() == dtype, "{}: expected {} for the [{}] tensor, got {}", op,
                 dtype_name(dtype), shape_str(shape), dtype_name(t->dtype()));
  }
}

// episodic_scan's tensors: q, k [B, T, dk], v [B, T, dv], slot keys [B, S, dk] and values
// [B, S, dv] (start and end), recall [B, T, dv] and weights [B, T, S] of q's dtype, writes
// [B, T, 2] i64. Returns {B, T, S, dk, dv}.
struct EpisodicSizes { int64_t B, T, S, dk, dv; };
inline EpisodicSizes check_episodic_tensors(const char* op, const Tensor& q, const Tensor& k,
                                            const Tensor& v, const Tensor& keys0,
                                            const Tensor& values0, const Tensor& keys_end,
                                            const Tensor& values_end, const Tensor& recall,
                                            const Tensor& weights, const Tensor& writes) {
  ENGRAM_CHECK(q.dim() == 3 && v.dim() == 3 && keys0.dim() == 3,
               "{}: expected q [B, T, dk], v [B, T, dv] and keys [B, S, dk], got q {}, v {}, keys {}",
               op, shape_str(q.shape()), shape_str(v.shape()), shape_str(keys0.shape()));
  const EpisodicSizes n{q.shape()[0], q.shape()[1], keys0.shape()[1], q.shape()[2], v.shape()[2]};
  check_shapes(op,
               {{&k, {n.B, n.T, n.dk}}, {&v, {n.B, n.T, n.dv}}, {&recall, {n.B, n.T, n.dv}},
                {&weights, {n.B, n.T, n.S}}, {&keys0, {n.B, n.S, n.dk}},
                {&values0, {n.B, n.S, n.dv}}, {&keys_end, {n.B, n.S, n.dk}},
                {&values_end, {n.B, n.S, n.dv}}},
               q.dtype());
  ENGRAM_CHECK(writes.shape() == (Shape{n.B, n.T, 2}) && writes.dtype() == DType::i64,
               "{}: expected writes [{}, {}, 2] i64, got {} {}", op, n.B, n.T,
               shape_str(writes.shape()), dtype_name(writes.dtype()));
  return n;
}

// episodic_scan: the tensors above and importance, age, filled [B, S] at the start and the end.
inline EpisodicSizes check_episodic_scan_args(const Tensor& q, const Tensor& k, const Tensor& v,
                                              const EpisodicSlots& start, const EpisodicSlots& end,
                                              const Tensor& recall, const Tensor& weights,
                                              const Tensor& writes) {
  const char* op = "episodic_scan";
  EpisodicSizes n = check_episodic_tensors(op, q, k, v, start.keys, start.values, end.keys,
                                           end.values, recall, weights, writes);
  check_shapes(op,
               {{&start.importance, {n.B, n.S}}, {&start.age, {n.B, n.S}},
                {&start.filled, {n.B, n.S}}, {&end.importance, {n.B, n.S}},
                {&end.age, {n.B, n.S}}, {&end.filled, {n.B, n.S}}},
               q.dtype());
  return n;
}

// episodic_scan_backward: the forward's tensors, and a gradient of each one's shape and dtype.
inline EpisodicSizes check_episodic_scan_backward_args(
    const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& keys0, const Tensor& values0,
    const Tensor& keys_end, const Tensor& values_end, const Tensor& weights, const Tensor& writes,
    const Tensor& drecall, const Tensor& dkeys_end, const Tensor& dvalues_end, const Tensor& dq,
    const Tensor& dk, const Tensor& dv, const Tensor& dkeys0, const Tensor& dvalues0) {
  const char* op = "episodic_scan_backward";
  EpisodicSizes n = check_episodic_tensors(op, q, k, v, keys0, values0, keys_end, values_end,
                                           drecall, weights, writes);
  check_shapes(op,
               {{&dq, q.shape()}, {&dk, k.shape()}, {&dv, v.shape()}, {&dkeys0, keys0.shape()},
                {&dvalues0, values0.shape()}, {&dkeys_end, keys0.shape()},
                {&dvalues_end, values0.shape()}},
               q.dtype());
  return n;
}

}  // namespace engram
