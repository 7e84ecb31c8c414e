// core/cpu/cpu_index.cpp — index_select / index_add / gather / scatter_add on the CPU.
//
// index_select: out[.., i, ..] = x[.., idx[i], ..]      (idx 1-D along `dim`)
// index_add:    out[.., idx[i], ..] += src[.., i, ..]   (its adjoint)
// gather:       out[i][j] = x[i][idx[i][j]] (dim 1 shown); idx has out's shape
// scatter_add:  out[i][idx[i][j]] += src[i][j]          (its adjoint)
// Every index is bounds-checked and a bad one is reported with its position.
#include <cstring>

#include "core/backend.h"
#include "core/cpu/strided.h"

namespace engram::cpu {

static int64_t checked(int64_t v, int64_t n, const char* op, int64_t pos) {
  ENGRAM_CHECK(v >= 0 && v < n, "{}: index {} at position {} is out of range [0, {})", op, v, pos, n);
  return v;
}

static void index_select(Tref x, int64_t dim, Tref idx, Tref out) {
  Tensor ic = raw::contiguous(idx);
  const int64_t* ip = ic.data<int64_t>();
  int64_t n = x.shape()[dim], m = ic.numel();
  for (int64_t i = 0; i < m; ++i) checked(ip[i], n, "index_select", i);
  if (dim == 0 && x.is_contiguous() && out.is_contiguous()) {  // rows: one memcpy each
    size_t row = (size_t)(x.numel() / std::max<int64_t>(n, 1)) * dtype_size(x.dtype());
    const char* xp = static_cast<const char*>(x.raw_data());
    char* op = static_cast<char*>(out.raw_data());
#pragma omp parallel for if (m * row > (size_t)kParallelGrain * 4)
    for (int64_t i = 0; i < m; ++i) std::memcpy(op + i * row, xp + ip[i] * row, row);
    return;
  }
  for (int64_t i = 0; i < m; ++i)
    backend(Device::cpu).copy(raw::narrow(out, dim, i, 1), raw::narrow(x, dim, ip[i], 1));
}

static void index_add(Tref out, int64_t dim, Tref idx, Tref src) {
  Tensor ic = raw::contiguous(idx);
  const int64_t* ip = ic.data<int64_t>();
  int64_t n = out.shape()[dim], m = ic.numel();
  for (int64_t i = 0; i < m; ++i) checked(ip[i], n, "index_add", i);
  if (dim == 0 && out.is_contiguous() && src.is_contiguous()) {  // rows: a plain += per row
    int64_t row = out.numel() / std::max<int64_t>(n, 1);
    ENGRAM_DISPATCH_FLOAT(out.dtype(), "index_add", [&] {
      scalar_t* o = out.data<scalar_t>();
      const scalar_t* s = src.data<scalar_t>();
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < row; ++j) o[ip[i] * row + j] += s[i * row + j];
    });
    return;
  }
  for (int64_t i = 0; i < m; ++i) {  // serial over i: repeated indices accumulate safely
    Tensor o = raw::narrow(out, dim, ip[i], 1);
    backend(Device::cpu).binary(BinaryOp::add, o, raw::narrow(src, dim, i, 1), o);
  }
}

// Walk idx's shape; `fn(xoff, ooff, ioff)` with the index substituted along dim in x/out.
template <class Fn>
static void walk_index(Tref idx, const Shape& strides_a, const Shape& strides_b, Fn fn) {
  Tensor ic = idx;
  for_each_strided<3>(ic.shape(), {ic.strides(), strides_a, strides_b},
                      [&](auto off, int64_t n, auto st) {
                        for (int64_t j = 0; j < n; ++j)
                          fn(off[0] + j * st[0], off[1] + j * st[1], off[2] + j * st[2]);
                      });
}

static void gather(Tref x, int64_t dim, Tref idx, Tref out) {
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "gather", [&] {
    using T = scalar_t;
    const T* xp = x.data<T>();
    T* op = out.data<T>();
    const int64_t* ip = idx.data<int64_t>();
    int64_t n = x.shape()[dim], sx = x.strides()[dim];
    Shape xs = x.strides();
    xs[dim] = 0;  // the index supplies the position along dim
    walk_index(idx, xs, out.strides(), [&](int64_t io, int64_t xo, int64_t oo) {
      op[oo] = xp[xo + checked(ip[io], n, "gather", io) * sx];
    });
  });
}

static void scatter_add(Tref out, int64_t dim, Tref idx, Tref src) {
  ENGRAM_DISPATCH_FLOAT(out.dtype(), "scatter_add", [&] {
    using T = scalar_t;
    const T* sp = src.data<T>();
    T* op = out.data<T>();
    const int64_t* ip = idx.data<int64_t>();
    int64_t n = out.shape()[dim], so = out.strides()[dim];
    Shape os = out.strides();
    os[dim] = 0;
    // for_each_strided may split big loops over threads; collisions need a serial walk
    Shape ss = src.strides();
    Tensor ic = idx;
    StridedPlan<3> p = coalesce<3>(ic.shape(), {ic.strides(), os, ss});
    auto body = [&](auto off, int64_t cnt, auto st) {
      for (int64_t j = 0; j < cnt; ++j) {
        int64_t io = off[0] + j * st[0];
        op[off[1] + j * st[1] + checked(ip[io], n, "scatter_add", io) * so] += sp[off[2] + j * st[2]];
      }
    };
    if (ic.numel() > 0) run_range(p, 0, shape_numel(p.shape), body);
  });
}

void register_index(Backend& b) {
  b.index_select = index_select;
  b.index_add = index_add;
  b.gather = gather;
  b.scatter_add = scatter_add;
}

}  // namespace engram::cpu
