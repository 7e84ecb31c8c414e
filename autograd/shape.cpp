// autograd/shape.cpp — views, concatenation and splitting, and their backwards.
//
// A view's backward undoes the view on the gradient: reshape reshapes back, permute applies the
// inverse permutation, slice writes dy into a zero tensor through the same slice, expand sums the
// broadcast dims away (done by the tape's unbroadcast).
#include "autograd/ops.h"
#include "autograd/raw_ops.h"

namespace engram {

// y = reshape(x); dx += reshape(dy, x.shape)
Tensor reshape(const Tensor& x, const Shape& shape) {
  Tensor y = raw::reshape(x, shape);
  Shape xs = x.shape();
  record1("reshape", {x}, y, [xs](const Tensor& dy) {
    return std::vector<Tensor>{raw::reshape(dy, xs)};
  });
  return y;
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  if (x.dim() == 0) return reshape(x, {1});
  start_dim = wrap_dim(start_dim, x.dim(), "flatten");
  end_dim = wrap_dim(end_dim, x.dim(), "flatten");
  ENGRAM_CHECK(start_dim <= end_dim, "flatten: start_dim {} > end_dim {}", start_dim, end_dim);
  Shape s(x.shape().begin(), x.shape().begin() + start_dim);
  int64_t n = 1;
  for (int64_t d = start_dim; d <= end_dim; ++d) n *= x.shape()[d];
  s.push_back(n);
  s.insert(s.end(), x.shape().begin() + end_dim + 1, x.shape().end());
  return reshape(x, s);
}

// y = permute(x, p); dx += permute(dy, p^-1)
Tensor permute(const Tensor& x, const Dims& dims) {
  Tensor y = raw::permute(x, dims);
  Dims inv(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) inv[wrap_dim(dims[i], x.dim(), "permute")] = (int64_t)i;
  record1("permute", {x}, y, [inv](const Tensor& dy) {
    return std::vector<Tensor>{raw::permute(dy, inv)};
  });
  return y;
}

Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) {
  Dims p(x.dim());
  for (int64_t i = 0; i < x.dim(); ++i) p[i] = i;
  std::swap(p[wrap_dim(d0, x.dim(), "transpose")], p[wrap_dim(d1, x.dim(), "transpose")]);
  return permute(x, p);
}

// y = x[.., start:end:step, ..]; dx[.., start:end:step, ..] += dy
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  dim = wrap_dim(dim, x.dim(), "slice");
  int64_t n = x.shape()[dim];
  ENGRAM_CHECK(step > 0, "slice: step must be positive, got {}", step);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape s = x.shape(), st = x.strides();
  s[dim] = (end - start + step - 1) / step;
  st[dim] *= step;
  Tensor y = raw::as_strided(x, s, st, x.offset() + start * x.strides()[dim]);
  Shape xs = x.shape();
  record1("slice", {x}, y, [xs, dim, start, step, s](const Tensor& dy) {
    Tensor dx = zeros(xs, dy.dtype(), dy.device());
    Shape st = dx.strides();
    int64_t off = start * st[dim];
    st[dim] *= step;
    raw::copy_(raw::as_strided(dx, s, st, off), dy);
    return std::vector<Tensor>{dx};
  });
  return y;
}

Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  dim = wrap_dim(dim, x.dim(), "select");
  int64_t n = x.shape()[dim];
  ENGRAM_CHECK(index >= -n && index < n, "select: index {} out of range for dim {} of size {}",
               index, dim, n);
  if (index < 0) index += n;
  return squeeze(slice(x, dim, index, index + 1), dim);
}

// y = expand(x); dx += sum of dy over the expanded dims (the tape's unbroadcast does it)
Tensor expand(const Tensor& x, const Shape& shape) {
  Tensor y = raw::expand(x, shape);
  record1("expand", {x}, y, [](const Tensor& dy) { return std::vector<Tensor>{dy}; });
  return y;
}

Tensor squeeze(const Tensor& x, int64_t dim) { return reshape(x, raw::squeeze(x, dim).shape()); }
Tensor unsqueeze(const Tensor& x, int64_t dim) { return reshape(x, raw::unsqueeze(x, dim).shape()); }

// y = copy of x laid out contiguously; dx += dy
Tensor contiguous(const Tensor& x) {
  if (x.is_contiguous()) return x;
  Tensor y = raw::clone(x);
  record1("contiguous", {x}, y, [](const Tensor& dy) { return std::vector<Tensor>{dy}; });
  return y;
}

// y = x in another dtype; dx += dy converted back
Tensor to_dtype(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  Tensor y = raw::to_dtype(x, dtype);
  DType from = x.dtype();
  record1("to_dtype", {x}, y, [from](const Tensor& dy) {
    return std::vector<Tensor>{raw::to_dtype(dy, from)};
  });
  return y;
}

// y = [x0, x1, ..] joined along dim; dx_i += dy[.., offset_i : offset_i + n_i, ..]
Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  ENGRAM_CHECK(!xs.empty(), "cat: no tensors given");
  const Tensor& x0 = xs[0];
  dim = wrap_dim(dim, x0.dim(), "cat");
  Shape s = x0.shape();
  s[dim] = 0;
  for (const Tensor& x : xs) {
    rk::check_same(x0, x, "cat");
    bool ok = x.dim() == x0.dim();
    for (int64_t d = 0; ok && d < x.dim(); ++d) ok = d == dim || x.shape()[d] == x0.shape()[d];
    ENGRAM_CHECK(ok, "cat: shapes {} and {} differ outside dim {}", shape_str(x0.shape()),
                 shape_str(x.shape()), dim);
    s[dim] += x.shape()[dim];
  }
  Tensor y = empty(s, x0.dtype(), x0.device());
  std::vector<int64_t> starts;
  int64_t at = 0;
  for (const Tensor& x : xs) {
    starts.push_back(at);
    raw::copy_(raw::narrow(y, dim, at, x.shape()[dim]), x);
    at += x.shape()[dim];
  }
  std::vector<int64_t> sizes;
  for (const Tensor& x : xs) sizes.push_back(x.shape()[dim]);
  record1("cat", xs, y, [starts, sizes, dim](const Tensor& dy) {
    std::vector<Tensor> g;
    for (size_t i = 0; i < starts.size(); ++i) g.push_back(raw::narrow(dy, dim, starts[i], sizes[i]));
    return g;
  });
  return y;
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  ENGRAM_CHECK(!xs.empty(), "stack: no tensors given");
  dim = wrap_dim(dim, xs[0].dim() + 1, "stack");
  std::vector<Tensor> us;
  for (const Tensor& x : xs) {
    ENGRAM_CHECK(x.shape() == xs[0].shape(), "stack: shapes {} and {} differ",
                 shape_str(xs[0].shape()), shape_str(x.shape()));
    us.push_back(unsqueeze(x, dim));
  }
  return cat(us, dim);
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  dim = wrap_dim(dim, x.dim(), "split");
  ENGRAM_CHECK(split_size > 0, "split: split_size must be positive, got {}", split_size);
  std::vector<Tensor> out;
  for (int64_t at = 0; at < x.shape()[dim]; at += split_size)
    out.push_back(slice(x, dim, at, std::min(at + split_size, x.shape()[dim])));
  return out;
}

// ys[i] = x[.., i, ..] (views); dx[.., i, ..] = dys[i] (zeros for slices nobody used)
std::vector<Tensor> unbind(const Tensor& x, int64_t dim) {
  dim = wrap_dim(dim, x.dim(), "unbind");
  std::vector<Tensor> ys;
  for (int64_t i = 0; i < x.shape()[dim]; ++i) ys.push_back(raw::squeeze(raw::narrow(x, dim, i, 1), dim));
  Shape xs = x.shape();
  record("unbind", {x}, ys, [xs, dim](const std::vector<Tensor>& dys) {
    Tensor dx = empty(xs, dys[0].dtype(), dys[0].device());
    for (size_t i = 0; i < dys.size(); ++i)
      raw::copy_(raw::squeeze(raw::narrow(dx, dim, (int64_t)i, 1), dim), dys[i]);
    return std::vector<Tensor>{dx};
  });
  return ys;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  ENGRAM_CHECK(chunks > 0, "chunk: chunks must be positive, got {}", chunks);
  int64_t n = x.shape()[wrap_dim(dim, x.dim(), "chunk")];
  return split(x, std::max<int64_t>(1, (n + chunks - 1) / chunks), dim);
}

}  // namespace engram
