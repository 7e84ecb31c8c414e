// autograd/reduce.cpp — reductions, softmax family, cumsum and top-k, and their backwards.
//
// A reduction's backward broadcasts dy back over the reduced dims; for max/min/topk the
// gradient goes only to the selected elements (scatter_add at the saved indices).
#include <cmath>

#include "autograd/ops.h"
#include "autograd/raw_ops.h"

namespace engram {

// Shape with the reduced dims kept as 1 (`keep`) and the caller's output shape (`out`).
struct ReducedShapes {
  Shape keep, out;
  int64_t count = 1;  // elements folded into each output
};
static ReducedShapes reduced_shapes(const Tensor& x, const Dims& dims, bool keepdim, const char* op) {
  ReducedShapes r;
  std::vector<bool> red(x.dim(), dims.empty());
  std::vector<bool> named(std::max<int64_t>(x.dim(), 1), false);
  for (int64_t d : dims) {
    int64_t w = wrap_dim(d, x.dim(), op);
    ENGRAM_CHECK(!named[w], "{}: dim {} appears more than once in the reduction dims {}", op, w,
                 shape_str(dims));
    named[w] = true;
    if (x.dim() > 0) red[w] = true;  // a 0-d tensor accepts dim 0 / -1 and has nothing to reduce
  }
  for (int64_t d = 0; d < x.dim(); ++d) {
    r.keep.push_back(red[d] ? 1 : x.shape()[d]);
    if (red[d]) r.count *= x.shape()[d];
    if (!red[d] || keepdim) r.out.push_back(red[d] ? 1 : x.shape()[d]);
  }
  return r;
}

// y = sum over dims of x; dx += expand(dy)
Tensor sum(const Tensor& x, const Dims& dims, bool keepdim) {
  ReducedShapes r = reduced_shapes(x, dims, keepdim, "sum");
  Tensor y = raw::view(rk::reduce_keepdim(ReduceOp::sum, x, dims), r.out);
  Shape xs = x.shape();
  record1("sum", {x}, y, [r, xs](const Tensor& dy) {
    return std::vector<Tensor>{raw::expand(raw::reshape(dy, r.keep), xs)};
  });
  return y;
}
Tensor sum(const Tensor& x) { return sum(x, {}, false); }

// y = sum(x) / n; dx += expand(dy) / n
Tensor mean(const Tensor& x, const Dims& dims, bool keepdim) {
  ReducedShapes r = reduced_shapes(x, dims, keepdim, "mean");
  ENGRAM_CHECK(r.count > 0, "mean: reduction over an empty tensor of shape {}", shape_str(x.shape()));
  return mul(sum(x, dims, keepdim), 1.0 / (double)r.count);
}
Tensor mean(const Tensor& x) { return mean(x, {}, false); }

// y = sum((x - mean)^2) / (n - correction); composed of recorded ops, so its gradient
// dx = 2 (x - mean) dy / (n - correction) comes from them.
Tensor var(const Tensor& x, const Dims& dims, bool keepdim, int64_t correction) {
  ReducedShapes r = reduced_shapes(x, dims, keepdim, "var");
  ENGRAM_CHECK(r.count - correction > 0, "var: {} elements with correction {} leaves no degrees of "
               "freedom (shape {})", r.count, correction, shape_str(x.shape()));
  Tensor centered = sub(x, mean(x, dims, true));
  return mul(sum(square(centered), dims, keepdim), 1.0 / double(r.count - correction));
}

// y = max/min along dim; dx[argmax] += dy
static Tensor extremum_dim(const Tensor& x, int64_t dim, bool keepdim, ReduceOp op, Tensor* idx_out) {
  const char* name = op == ReduceOp::max ? "max" : "min";
  dim = wrap_dim(dim, x.dim(), name);
  Shape keep = x.shape();
  if (x.dim() > 0) keep[dim] = 1;
  Tensor values = empty(keep, x.dtype(), x.device());
  Tensor indices = empty(keep, DType::i64, x.device());
  Tensor xx = x.dim() == 0 ? raw::reshape(x, {1}) : x;
  ENGRAM_KERNEL(x.device(), arg_reduce)(op, xx, dim, x.dim() == 0 ? raw::reshape(values, {1}) : values,
                                        x.dim() == 0 ? raw::reshape(indices, {1}) : indices);
  Shape out = keep;
  if (!keepdim && x.dim() > 0) out.erase(out.begin() + dim);
  if (idx_out) *idx_out = raw::view(indices, out);
  Tensor y = raw::view(values, out);
  Shape xs = x.shape();
  record1(name, {x}, y, [xs, keep, dim, indices](const Tensor& dy) {
    Tensor dx = zeros(xs, dy.dtype(), dy.device());
    if (xs.empty()) return std::vector<Tensor>{raw::reshape(dy, xs)};
    ENGRAM_KERNEL(dy.device(), scatter_add)(dx, dim, indices, raw::reshape(dy, keep));
    return std::vector<Tensor>{dx};
  });
  return y;
}
Tensor max(const Tensor& x, int64_t dim, bool keepdim) {
  return extremum_dim(x, dim, keepdim, ReduceOp::max, nullptr);
}
Tensor min(const Tensor& x, int64_t dim, bool keepdim) {
  return extremum_dim(x, dim, keepdim, ReduceOp::min, nullptr);
}
// y = max over all of x; the gradient is split evenly over every element equal to y (PyTorch's
// evenly_distribute_backward): dx += dy * [x == y] / count(x == y)
static Tensor extremum_all(const Tensor& x, ReduceOp op) {
  const char* name = op == ReduceOp::max ? "max" : "min";
  ENGRAM_CHECK(x.numel() > 0, "{}: reduction over an empty tensor of shape {}", name, shape_str(x.shape()));
  Tensor y = raw::view(rk::reduce_keepdim(op, x, {}), {});
  record1(name, {x}, y, [x, y](const Tensor& dy) {
    Tensor hits = rk::binary(BinaryOp::eq, x, y);
    Tensor count = rk::reduce_keepdim(ReduceOp::sum, hits, {});
    return std::vector<Tensor>{rk::mul(hits, rk::div(dy, raw::view(count, {})))};
  });
  return y;
}
Tensor max(const Tensor& x) { return extremum_all(x, ReduceOp::max); }
Tensor min(const Tensor& x) { return extremum_all(x, ReduceOp::min); }
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  NoGradGuard ng;
  Tensor idx;
  extremum_dim(x, dim, keepdim, ReduceOp::max, &idx);
  return idx;
}
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) {
  NoGradGuard ng;
  Tensor idx;
  extremum_dim(x, dim, keepdim, ReduceOp::min, &idx);
  return idx;
}

// y = log sum exp(x) = m + log sum exp(x - m), m = max(x) for stability; dx += dy * exp(x - y)
Tensor logsumexp(const Tensor& x, int64_t dim, bool keepdim) {
  dim = wrap_dim(dim, x.dim(), "logsumexp");
  Tensor m = rk::reduce_keepdim(ReduceOp::max, x, {dim});
  // an all -inf line would give (-inf) - (-inf) = NaN; use 0 as its shift instead
  Tensor finite = rk::unary(UnaryOp::step_mask, m, -INFINITY, INFINITY);
  Tensor m_safe = empty(m.shape(), m.dtype(), m.device());
  ENGRAM_KERNEL(x.device(), where)(finite, m, raw::expand(zeros({}, m.dtype(), m.device()), m.shape()),
                                   m_safe);
  m = m_safe;
  Tensor s = rk::reduce_keepdim(ReduceOp::sum, rk::unary(UnaryOp::exp, rk::sub(x, m)), {dim});
  Tensor lse = rk::add(m, rk::unary(UnaryOp::log, s));
  ReducedShapes r = reduced_shapes(x, {dim}, keepdim, "logsumexp");
  Tensor y = raw::view(lse, r.out);
  record1("logsumexp", {x}, y, [x, lse, r](const Tensor& dy) {
    Tensor p = rk::unary(UnaryOp::exp, rk::sub(x, lse));
    return std::vector<Tensor>{rk::mul(p, raw::reshape(dy, r.keep))};
  });
  return y;
}

// softmax: dx = y * (dy - sum(dy * y));  log_softmax: dx = dy - exp(y) * sum(dy)
static Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  dim = wrap_dim(dim, x.dim(), name);
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  Tensor xx = x.dim() == 0 ? raw::reshape(x, {1}) : x;
  ENGRAM_KERNEL(x.device(), softmax)(xx, dim, log, x.dim() == 0 ? raw::reshape(y, {1}) : y);
  record1(name, {x}, y, [y, dim, log](const Tensor& dy) {
    Tensor dx = empty(y.shape(), y.dtype(), y.device());
    if (y.dim() == 0) return std::vector<Tensor>{zeros_like(y)};
    ENGRAM_KERNEL(y.device(), softmax_backward)(y, dy, dim, log, dx);
    return std::vector<Tensor>{dx};
  });
  return y;
}
Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

// y_i = sum_{j<=i} x_j; dx_j = sum_{i>=j} dy_i (a reversed cumsum)
Tensor cumsum(const Tensor& x, int64_t dim) {
  dim = wrap_dim(dim, x.dim(), "cumsum");
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  ENGRAM_KERNEL(x.device(), cumsum)(x, dim, false, y);
  record1("cumsum", {x}, y, [dim](const Tensor& dy) {
    Tensor dx = empty(dy.shape(), dy.dtype(), dy.device());
    ENGRAM_KERNEL(dy.device(), cumsum)(dy, dim, true, dx);
    return std::vector<Tensor>{dx};
  });
  return y;
}

// values = the k largest (or smallest) along dim, sorted; dx[indices] += dvalues
TopK topk(const Tensor& x, int64_t k, int64_t dim, bool largest) {
  dim = wrap_dim(dim, x.dim(), "topk");
  ENGRAM_CHECK(k >= 0 && k <= x.shape()[dim], "topk: k={} out of range for dim {} of shape {}", k,
               dim, shape_str(x.shape()));
  Shape s = x.shape();
  s[dim] = k;
  TopK r{empty(s, x.dtype(), x.device()), empty(s, DType::i64, x.device())};
  ENGRAM_KERNEL(x.device(), topk)(x, k, dim, largest, r.values, r.indices);
  Shape xs = x.shape();
  Tensor idx = r.indices;
  record1("topk", {x}, r.values, [xs, dim, idx](const Tensor& dy) {
    Tensor dx = zeros(xs, dy.dtype(), dy.device());
    ENGRAM_KERNEL(dy.device(), scatter_add)(dx, dim, idx, dy);
    return std::vector<Tensor>{dx};
  });
  return r;
}

}  // namespace engram
