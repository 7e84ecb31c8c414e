// autograd/index.cpp — indexing ops (indices are i64 tensors) and their backwards.
//
// The backward of every "read at indices" op is the matching "add at indices" op:
//   index_select <-> index_add,  gather <-> scatter_add,  embedding = index_select on rows.
#include "autograd/ops.h"
#include "autograd/raw_ops.h"

namespace engram {

static void check_index(const Tensor& idx, const char* op) {
  ENGRAM_CHECK(idx.dtype() == DType::i64, "{}: indices must be i64, got {} of shape {}", op,
               dtype_name(idx.dtype()), shape_str(idx.shape()));
}

// y = x[.., idx, ..] along dim; dx[.., idx[i], ..] += dy[.., i, ..]
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  check_index(index, "index_select");
  ENGRAM_CHECK(index.dim() <= 1, "index_select: index must be 1-D, got shape {}",
               shape_str(index.shape()));
  dim = wrap_dim(dim, x.dim(), "index_select");
  Shape s = x.shape();
  s[dim] = index.numel();
  Tensor y = empty(s, x.dtype(), x.device());
  Tensor idx = raw::reshape(index, {index.numel()});
  ENGRAM_KERNEL(x.device(), index_select)(x, dim, idx, y);
  Shape xs = x.shape();
  record1("index_select", {x, index}, y, [xs, dim, idx](const Tensor& dy) {
    Tensor dx = zeros(xs, dy.dtype(), dy.device());
    ENGRAM_KERNEL(dy.device(), index_add)(dx, dim, idx, dy);
    return std::vector<Tensor>{dx, Tensor()};
  });
  return y;
}

// y[i][j] = x[i][idx[i][j]] (for dim = 1); dx[i][idx[i][j]] += dy[i][j]
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  check_index(index, "gather");
  dim = wrap_dim(dim, x.dim(), "gather");
  ENGRAM_CHECK(index.dim() == x.dim(), "gather: index rank {} != input rank {} ({} vs {})",
               index.dim(), x.dim(), shape_str(index.shape()), shape_str(x.shape()));
  for (int64_t d = 0; d < x.dim(); ++d)
    ENGRAM_CHECK(d == dim || index.shape()[d] <= x.shape()[d],
                 "gather: index shape {} exceeds input shape {} at dim {}", shape_str(index.shape()),
                 shape_str(x.shape()), d);
  Tensor y = empty(index.shape(), x.dtype(), x.device());
  ENGRAM_KERNEL(x.device(), gather)(x, dim, index, y);
  Shape xs = x.shape();
  record1("gather", {x, index}, y, [xs, dim, index](const Tensor& dy) {
    Tensor dx = zeros(xs, dy.dtype(), dy.device());
    ENGRAM_KERNEL(dy.device(), scatter_add)(dx, dim, index, dy);
    return std::vector<Tensor>{dx, Tensor()};
  });
  return y;
}

// y = x; y[i][idx[i][j]] += src[i][j] (dim = 1); dx += dy, dsrc[i][j] += dy[i][idx[i][j]]
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  check_index(index, "scatter_add");
  rk::check_same(x, src, "scatter_add");
  dim = wrap_dim(dim, x.dim(), "scatter_add");
  ENGRAM_CHECK(index.shape() == src.shape(), "scatter_add: index shape {} != src shape {}",
               shape_str(index.shape()), shape_str(src.shape()));
  Tensor y = raw::clone(x);
  ENGRAM_KERNEL(x.device(), scatter_add)(y, dim, index, src);
  record1("scatter_add", {x, index, src}, y, [dim, index](const Tensor& dy) {
    Tensor dsrc = empty(index.shape(), dy.dtype(), dy.device());
    ENGRAM_KERNEL(dy.device(), gather)(dy, dim, index, dsrc);
    return std::vector<Tensor>{dy, Tensor(), dsrc};
  });
  return y;
}

// y[.., :] = weight[ids[..], :]; dweight[ids[..]] += dy (rows equal to padding_idx skipped)
Tensor embedding(const Tensor& weight, const Tensor& ids, int64_t padding_idx) {
  check_index(ids, "embedding");
  ENGRAM_CHECK(weight.dim() == 2, "embedding: weight must be [V, D], got {}",
               shape_str(weight.shape()));
  Tensor flat = raw::reshape(ids, {ids.numel()});
  Shape s = ids.shape();
  s.push_back(weight.shape()[1]);
  Tensor rows = empty({ids.numel(), weight.shape()[1]}, weight.dtype(), weight.device());
  ENGRAM_KERNEL(weight.device(), index_select)(weight, 0, flat, rows);
  Tensor y = raw::view(rows, s);
  Shape ws = weight.shape();
  record1("embedding", {weight, ids}, y, [ws, flat, padding_idx](const Tensor& dy) {
    Tensor dw = zeros(ws, dy.dtype(), dy.device());
    ENGRAM_KERNEL(dy.device(), index_add)(dw, 0, flat, raw::reshape(dy, {flat.numel(), ws[1]}));
    if (padding_idx >= 0 && padding_idx < ws[0]) backend(dw.device()).fill(raw::narrow(dw, 0, padding_idx, 1), 0);
    return std::vector<Tensor>{dw, Tensor()};
  });
  return y;
}

}  // namespace engram
