// autograd/raw_ops.cpp — see raw_ops.h.
#include "autograd/raw_ops.h"

namespace engram::rk {

void check_same(const Tensor& a, const Tensor& b, const char* op) {
  ENGRAM_CHECK(a.dtype() == b.dtype(), "{}: dtype mismatch: {} {} vs {} {}", op,
               dtype_name(a.dtype()), shape_str(a.shape()), dtype_name(b.dtype()),
               shape_str(b.shape()));
  ENGRAM_CHECK(a.device() == b.device(), "{}: device mismatch: {} vs {}", op,
               device_name(a.device()), device_name(b.device()));
}

Tensor unary(UnaryOp op, const Tensor& x, double p0, double p1) {
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  ENGRAM_KERNEL(x.device(), unary)(op, x, p0, p1, out);
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  check_same(a, b, name);
  Shape s = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = empty(s, a.dtype(), a.device());
  ENGRAM_KERNEL(a.device(), binary)(op, raw::expand(a, s), raw::expand(b, s), out);
  return out;
}

Tensor reduce_keepdim(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims) {
  Shape s = x.shape();
  if (dims.empty()) std::fill(s.begin(), s.end(), 1);
  for (int64_t d : dims) {
    int64_t w = wrap_dim(d, x.dim(), "reduce");
    if (x.dim() > 0) s[w] = 1;
  }
  Tensor out = empty(s, x.dtype(), x.device());
  ENGRAM_KERNEL(x.device(), reduce)(op, x, out);
  return out;
}

Tensor sum_all(const Tensor& x) { return raw::view(reduce_keepdim(ReduceOp::sum, x, {}), {}); }

Tensor matmul(const Tensor& a, const Tensor& b) {
  Shape s = a.shape();
  s.back() = b.shape().back();
  Tensor out = empty(s, a.dtype(), a.device());
  ENGRAM_KERNEL(a.device(), matmul)(a, b, out, 1.0, 0.0);
  return out;
}

}  // namespace engram::rk
