// autograd/raw_ops.h — allocate-and-dispatch helpers used inside forwards and backwards.
//
// These call core's kernels on the right device and return fresh tensors; they never record on
// the tape. Backward formulas are written with them, e.g. dx = rk::mul(dy, rk::unary(...)).
#pragma once
#include "core/backend.h"

namespace engram::rk {

// Fails naming `op` unless a and b share dtype and device.
void check_same(const Tensor& a, const Tensor& b, const char* op);
Tensor unary(UnaryOp op, const Tensor& x, double p0 = 0, double p1 = 0);
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b, const char* name = "binary");
inline Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::add, a, b, "add"); }
inline Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::sub, a, b, "sub"); }
inline Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::mul, a, b, "mul"); }
inline Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::div, a, b, "div"); }
inline Tensor scale(const Tensor& x, double s) { return unary(UnaryOp::mul_scalar, x, s); }
// Reduce with keepdim-shaped output (reduced dims of size 1).
Tensor reduce_keepdim(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims);
Tensor sum_all(const Tensor& x);  // shape []
// out = a @ b with out [.., M, N]; a, b already expanded to the same batch shape
Tensor matmul(const Tensor& a, const Tensor& b);

}  // namespace engram::rk
