// core/cpu/strided.h — the loop every CPU elementwise kernel is built on.
//
// for_each_strided(shape, {strides of operand 0, operand 1, ...}, body) walks every index of
// `shape` and calls body(offsets, n, inner_strides) for runs of n elements along the last dim,
// where offsets[k] is operand k's element offset at the start of the run. Before walking, adjacent
// dims that are contiguous in every operand are merged, so contiguous tensors become one flat run
// and the body's inner loop vectorises. Large loops are split over OpenMP threads by flat index.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <omp.h>
#include <stdexcept>

#include "core/shape.h"

namespace engram::cpu {

constexpr int64_t kParallelGrain = 1 << 15;  // below this many elements, stay single-threaded

template <size_t N> struct StridedPlan {
  Shape shape;
  std::array<Shape, N> strides;
};

template <size_t N>
StridedPlan<N> coalesce(const Shape& shape, const std::array<Shape, N>& strides) {
  StridedPlan<N> p;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;  // size-1 dims never move the offsets
    bool merge = !p.shape.empty();
    for (size_t k = 0; k < N && merge; ++k)
      merge = p.strides[k].back() == strides[k][d] * shape[d];
    if (merge) {
      p.shape.back() *= shape[d];
      for (size_t k = 0; k < N; ++k) p.strides[k].back() = strides[k][d];
    } else {
      p.shape.push_back(shape[d]);
      for (size_t k = 0; k < N; ++k) p.strides[k].push_back(strides[k][d]);
    }
  }
  if (p.shape.empty()) {  // a scalar (or all size-1 dims): one run of length 1
    p.shape.push_back(1);
    for (size_t k = 0; k < N; ++k) p.strides[k].push_back(0);
  }
  return p;
}

template <size_t N, class Body>
void run_range(const StridedPlan<N>& p, int64_t begin, int64_t end, Body& body) {
  const int64_t nd = (int64_t)p.shape.size();
  int64_t idx[16] = {0};
  std::array<int64_t, N> off{}, inner{};
  int64_t rem = begin;
  for (int64_t d = nd - 1; d >= 0; --d) {
    idx[d] = rem % p.shape[d];
    rem /= p.shape[d];
    for (size_t k = 0; k < N; ++k) off[k] += idx[d] * p.strides[k][d];
  }
  for (size_t k = 0; k < N; ++k) inner[k] = p.strides[k][nd - 1];
  int64_t i = begin;
  while (i < end) {
    int64_t n = std::min(p.shape[nd - 1] - idx[nd - 1], end - i);
    body(off, n, inner);
    i += n;
    idx[nd - 1] += n;
    for (size_t k = 0; k < N; ++k) off[k] += n * inner[k];
    for (int64_t d = nd - 1; d > 0 && idx[d] == p.shape[d]; --d) {
      idx[d] = 0;
      ++idx[d - 1];
      for (size_t k = 0; k < N; ++k) off[k] += p.strides[k][d - 1] - p.shape[d] * p.strides[k][d];
    }
  }
}

template <size_t N, class Body>
void for_each_strided(const Shape& shape, const std::array<Shape, N>& strides, Body body) {
  StridedPlan<N> p = coalesce<N>(shape, strides);
  if (p.shape.size() > 16) throw std::runtime_error("for_each_strided: more than 16 dims");
  int64_t total = shape_numel(p.shape);
  if (total == 0) return;
  if (total < kParallelGrain) {
    run_range(p, 0, total, body);
    return;
  }
#pragma omp parallel
  {
    int nt = omp_get_num_threads(), t = omp_get_thread_num();
    int64_t chunk = (total + nt - 1) / nt;
    int64_t b = std::min<int64_t>(total, t * chunk), e = std::min<int64_t>(total, b + chunk);
    Body local = body;
    if (b < e) run_range(p, b, e, local);
  }
}

// Offsets of line `l` when iterating all lines along `dim` (every index with dim fixed to 0).
struct LineIndexer {
  Shape outer_shape;                  // shape without `dim`
  std::array<Shape, 4> outer_strides; // per operand, strides without `dim`
  int64_t offset(int k, int64_t l) const {
    int64_t off = 0;
    for (int64_t d = (int64_t)outer_shape.size() - 1; d >= 0; --d) {
      off += (l % outer_shape[d]) * outer_strides[k][d];
      l /= outer_shape[d];
    }
    return off;
  }
  int64_t lines() const { return shape_numel(outer_shape); }
};

inline LineIndexer make_line_indexer(const Shape& shape, int64_t dim,
                                     std::initializer_list<const Shape*> strides) {
  LineIndexer li;
  for (int64_t d = 0; d < (int64_t)shape.size(); ++d)
    if (d != dim) li.outer_shape.push_back(shape[d]);
  int k = 0;
  for (const Shape* st : strides) {
    for (int64_t d = 0; d < (int64_t)shape.size(); ++d)
      if (d != dim) li.outer_strides[k].push_back((*st)[d]);
    ++k;
  }
  return li;
}

}  // namespace engram::cpu
