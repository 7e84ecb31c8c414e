// core/cpu/cpu_reduce.cpp — reductions, scans along a dim, softmax and top-k on the CPU.
//
// reduce: out keeps x's rank with reduced dims of size 1. We walk x with out's strides set to 0
// on reduced dims; to stay race-free under OpenMP the walk is split over *output* elements, each
// summing (in double) over its own reduced sub-block.
// Line kernels (arg_reduce, cumsum, softmax, topk) work on lines along one dim: x[..., :, ...].
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "core/backend.h"
#include "core/cpu/strided.h"

namespace engram::cpu {

// Each output element i folds its reduced block; outputs are split over threads (no races).
template <typename T>
static void reduce_typed(ReduceOp op, const T* xp, T* o, const Shape& kept_shape, const Shape& kept_x,
                         const Shape& kept_o, const Shape& red_shape, const Shape& red_x) {
  int64_t n_out = shape_numel(kept_shape), n_red = shape_numel(red_shape);
  // Reduced-block offsets are the same for every output: compute them once.
  std::vector<int64_t> red_off;
  red_off.reserve(n_red);
  for_each_strided<1>(red_shape, {red_x}, [&](auto off, int64_t n, auto st) {
    for (int64_t j = 0; j < n; ++j) red_off.push_back(off[0] + j * st[0]);
  });
  if (red_shape.empty()) red_off.assign(1, 0);
  auto base_of = [&](int64_t i, const Shape& st) {
    int64_t off = 0;
    for (int64_t d = (int64_t)kept_shape.size() - 1; d >= 0; --d) {
      off += (i % kept_shape[d]) * st[d];
      i /= kept_shape[d];
    }
    return off;
  };
#pragma omp parallel for if (n_out * n_red > kParallelGrain && n_out > 1) schedule(static)
  for (int64_t i = 0; i < n_out; ++i) {
    const T* xb = xp + base_of(i, kept_x);
    double acc = op == ReduceOp::sum ? 0.0
                 : op == ReduceOp::max ? -std::numeric_limits<double>::infinity()
                                       : std::numeric_limits<double>::infinity();
    for (int64_t r : red_off) {
      double v = xb[r];
      if (op == ReduceOp::sum) acc += v;
      else if (op == ReduceOp::max) acc = (v > acc || std::isnan(v)) ? v : acc;
      else acc = (v < acc || std::isnan(v)) ? v : acc;
    }
    o[base_of(i, kept_o)] = T(acc);
  }
}

// out[j] = sum_i x[i * cols + j], accumulated in double, columns split over threads.
template <typename T> static void sum_leading_rows(const T* x, T* out, int64_t rows, int64_t cols) {
  constexpr int64_t kBlock = 256;  // columns per accumulator block (fits in L1 as doubles)
  int64_t blocks = (cols + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (rows * cols > kParallelGrain && blocks > 1)
  for (int64_t b = 0; b < blocks; ++b) {
    int64_t c0 = b * kBlock, n = std::min(kBlock, cols - c0);
    double acc[kBlock] = {0};
    for (int64_t i = 0; i < rows; ++i) {
      const T* row = x + i * cols + c0;
      for (int64_t j = 0; j < n; ++j) acc[j] += row[j];
    }
    for (int64_t j = 0; j < n; ++j) out[c0 + j] = T(acc[j]);
  }
}

// out[o] = sum_j x[o * len + j] for each of `outer` contiguous rows, in double with vector lanes.
template <typename T> static void sum_rows(const T* x, T* out, int64_t outer, int64_t len) {
#pragma omp parallel for schedule(static) if (outer * len > kParallelGrain && outer > 1)
  for (int64_t o = 0; o < outer; ++o) {
    const T* row = x + o * len;
    double acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t j = 0; j < len; ++j) acc += row[j];
    out[o] = T(acc);
  }
}

static void reduce(ReduceOp op, Tref x, Tref out) {
  ENGRAM_CHECK(out.dim() == x.dim(), "reduce: out rank {} != input rank {}", out.dim(), x.dim());
  // Split dims into kept (out size == x size) and reduced (out size 1, x size > 1).
  Shape kept_shape, red_shape, kept_x, kept_o, red_x;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (out.shape()[d] == x.shape()[d]) {
      kept_shape.push_back(x.shape()[d]);
      kept_x.push_back(x.strides()[d]);
      kept_o.push_back(out.strides()[d]);
    } else {
      ENGRAM_CHECK(out.shape()[d] == 1, "reduce: out shape {} does not match input {}",
                   shape_str(out.shape()), shape_str(x.shape()));
      red_shape.push_back(x.shape()[d]);
      red_x.push_back(x.strides()[d]);
    }
  }
  // Fast path for the sums training does most: a contiguous x whose reduced dims form one block,
  // [outer..., rows..., cols...] -> [outer..., 1, cols...] (a bias gradient: outer = 1; a
  // broadcast gradient summed over a middle dim; a row sum: cols = 1). Whole rows are added into
  // a contiguous accumulator (or a row summed with vector lanes), so the inner loops run over
  // contiguous memory and vectorise; the generic walk below goes one output at a time.
  bool block = op == ReduceOp::sum && x.is_contiguous() && out.is_contiguous() && !red_shape.empty();
  int64_t outer = 1, rows = 1, cols = 1;
  for (int64_t d = 0, phase = 0; block && d < x.dim(); ++d) {  // phase 0: outer, 1: rows, 2: cols
    if (x.shape()[d] == 1) continue;
    const bool kept = out.shape()[d] == x.shape()[d];
    if (!kept && phase == 2) block = false;  // a second reduced block
    else if (!kept) phase = 1, rows *= x.shape()[d];
    else if (phase == 0) outer *= x.shape()[d];
    else phase = 2, cols *= x.shape()[d];
  }
  if (block) {
    ENGRAM_DISPATCH_FLOAT(x.dtype(), "reduce", [&] {
      using T = scalar_t;
      const T* xp = x.data<T>();
      T* op_ = out.data<T>();
      if (cols == 1) {
        sum_rows<T>(xp, op_, outer, rows);
      } else {
        for (int64_t o = 0; o < outer; ++o)
          sum_leading_rows<T>(xp + o * rows * cols, op_ + o * cols, rows, cols);
      }
    });
    return;
  }
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "reduce", [&] {
    reduce_typed<scalar_t>(op, x.data<scalar_t>(), out.data<scalar_t>(), kept_shape, kept_x, kept_o,
                           red_shape, red_x);
  });
}

template <class Fn> static void for_each_line(Tref x, int64_t dim, std::initializer_list<const Shape*> st,
                                              Fn fn) {
  LineIndexer li = make_line_indexer(x.shape(), dim, st);
  int64_t lines = li.lines(), len = x.shape()[dim];
#pragma omp parallel for if (lines * len > kParallelGrain && lines > 1) schedule(static)
  for (int64_t l = 0; l < lines; ++l) fn(li, l);
}

static void arg_reduce(ReduceOp op, Tref x, int64_t dim, Tref values, Tref indices) {
  int64_t len = x.shape()[dim];
  ENGRAM_CHECK(len > 0, "max/min: reduction over an empty dim {} of shape {}", dim,
               shape_str(x.shape()));
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "arg_reduce", [&] {
    using T = scalar_t;
    const T* xp = x.data<T>();
    T* vp = values.data<T>();
    int64_t* ip = indices.data<int64_t>();
    int64_t sx = x.strides()[dim];
    for_each_line(x, dim, {&x.strides(), &values.strides(), &indices.strides()},
                  [&](const LineIndexer& li, int64_t l) {
                    const T* xl = xp + li.offset(0, l);
                    int64_t best = 0;
                    T bv = xl[0];
                    for (int64_t j = 1; j < len; ++j) {
                      T v = xl[j * sx];
                      if (std::isnan(bv)) break;
                      if (op == ReduceOp::max ? (v > bv || std::isnan(v)) : (v < bv || std::isnan(v))) {
                        bv = v;
                        best = j;
                      }
                    }
                    vp[li.offset(1, l)] = bv;
                    ip[li.offset(2, l)] = best;
                  });
  });
}

static void cumsum(Tref x, int64_t dim, bool reverse, Tref out) {
  int64_t len = x.shape()[dim];
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "cumsum", [&] {
    using T = scalar_t;
    const T* xp = x.data<T>();
    T* o = out.data<T>();
    int64_t sx = x.strides()[dim], so = out.strides()[dim];
    for_each_line(x, dim, {&x.strides(), &out.strides()}, [&](const LineIndexer& li, int64_t l) {
      const T* xl = xp + li.offset(0, l);
      T* ol = o + li.offset(1, l);
      double acc = 0;
      for (int64_t k = 0; k < len; ++k) {
        int64_t j = reverse ? len - 1 - k : k;
        acc += xl[j * sx];
        ol[j * so] = T(acc);
      }
    });
  });
}

// y = softmax(x) = exp(x - max) / sum exp(x - max);  log variant: y = x - max - log(sum)
static void softmax(Tref x, int64_t dim, bool log, Tref out) {
  int64_t len = x.shape()[dim];
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "softmax", [&] {
    using T = scalar_t;
    const T* xp = x.data<T>();
    T* o = out.data<T>();
    int64_t sx = x.strides()[dim], so = out.strides()[dim];
    for_each_line(x, dim, {&x.strides(), &out.strides()}, [&](const LineIndexer& li, int64_t l) {
      const T* xl = xp + li.offset(0, l);
      T* ol = o + li.offset(1, l);
      T mx = -std::numeric_limits<T>::infinity();
      for (int64_t j = 0; j < len; ++j) mx = std::max(mx, xl[j * sx]);
      if (std::isinf(mx) && mx < 0) mx = 0;  // an all -inf row gives NaN-free 0/uniform output
      double sum = 0;
      for (int64_t j = 0; j < len; ++j) {
        T e = std::exp(xl[j * sx] - mx);
        sum += e;
        if (!log) ol[j * so] = e;
      }
      if (log) {
        T lse = mx + T(std::log(sum));
        for (int64_t j = 0; j < len; ++j) ol[j * so] = xl[j * sx] - lse;
      } else {
        T inv = T(1.0 / sum);
        for (int64_t j = 0; j < len; ++j) ol[j * so] *= inv;
      }
    });
  });
}

// softmax: dx = y * (dy - sum(dy * y));  log_softmax: dx = dy - exp(y) * sum(dy)
static void softmax_backward(Tref y, Tref dy, int64_t dim, bool log, Tref dx) {
  int64_t len = y.shape()[dim];
  ENGRAM_DISPATCH_FLOAT(y.dtype(), "softmax_backward", [&] {
    using T = scalar_t;
    const T *yp = y.data<T>(), *gp = dy.data<T>();
    T* o = dx.data<T>();
    int64_t sy = y.strides()[dim], sg = dy.strides()[dim], so = dx.strides()[dim];
    for_each_line(y, dim, {&y.strides(), &dy.strides(), &dx.strides()},
                  [&](const LineIndexer& li, int64_t l) {
                    const T* yl = yp + li.offset(0, l);
                    const T* gl = gp + li.offset(1, l);
                    T* ol = o + li.offset(2, l);
                    double dot = 0;
                    for (int64_t j = 0; j < len; ++j) dot += log ? gl[j * sg] : gl[j * sg] * yl[j * sy];
                    for (int64_t j = 0; j < len; ++j)
                      ol[j * so] = log ? gl[j * sg] - std::exp(yl[j * sy]) * T(dot)
                                       : yl[j * sy] * (gl[j * sg] - T(dot));
                  });
  });
}

static void topk(Tref x, int64_t k, int64_t dim, bool largest, Tref values, Tref indices) {
  int64_t len = x.shape()[dim];
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "topk", [&] {
    using T = scalar_t;
    const T* xp = x.data<T>();
    T* vp = values.data<T>();
    int64_t* ip = indices.data<int64_t>();
    int64_t sx = x.strides()[dim], sv = values.strides()[dim], si = indices.strides()[dim];
    for_each_line(x, dim, {&x.strides(), &values.strides(), &indices.strides()},
                  [&](const LineIndexer& li, int64_t l) {
                    const T* xl = xp + li.offset(0, l);
                    std::vector<int64_t> order(len);
                    std::iota(order.begin(), order.end(), 0);
                    // NaN ranks above every number, as in PyTorch: first when largest, last
                    // otherwise. Comparing through this key keeps a strict weak order (a plain
                    // `<` with NaN is not one, and std::partial_sort is then undefined).
                    auto better = [&](int64_t a, int64_t b) {
                      T va = xl[a * sx], vb = xl[b * sx];
                      bool na = std::isnan(va), nb = std::isnan(vb);
                      if (na != nb) return largest ? na : nb;
                      if (!na && va != vb) return largest ? va > vb : va < vb;
                      return a < b;  // stable: lower index first on ties (NaNs among themselves too)
                    };
                    std::partial_sort(order.begin(), order.begin() + k, order.end(), better);
                    T* vl = vp + li.offset(1, l);
                    int64_t* il = ip + li.offset(2, l);
                    for (int64_t j = 0; j < k; ++j) {
                      vl[j * sv] = xl[order[j] * sx];
                      il[j * si] = order[j];
                    }
                  });
  });
}

void register_reduce(Backend& b) {
  b.reduce = reduce;
  b.arg_reduce = arg_reduce;
  b.cumsum = cumsum;
  b.softmax = softmax;
  b.softmax_backward = softmax_backward;
  b.topk = topk;
}

}  // namespace engram::cpu
