// core/scan_view.h — how the scan kernels (core/cpu/cpu_scan.cpp, cuda/cuda_scan.cu) see an
// operand of linear_scan: [B, T, features...] as three strides (batch, time, flattened features).
//
// Host-side only and device-neutral, so the CPU and CUDA scans accept exactly the same strided
// inputs: a size-1 batch or time dim gets stride 0 (a broadcast), and an operand whose feature
// dims do not flatten to one stride is replaced by a contiguous copy (on its own device).
#pragma once
#include "core/tensor.h"

namespace engram {

struct View3 {
  int64_t b = 0, t = 0, f = 0;  // strides of the batch, time and flattened feature index
};

// The feature dims [first, end) of (shape, strides) flattened to one stride, if possible.
inline bool flat_feature_stride(const Shape& shape, const Shape& st, size_t first, int64_t& sf) {
  bool have = false;
  int64_t run = 1;
  sf = 0;
  for (size_t d = shape.size(); d-- > first;) {
    if (shape[d] == 1) continue;  // a size-1 dim never moves the offset
    if (!have) {
      sf = st[d];
      have = true;
    } else if (st[d] != sf * run) {
      return false;
    }
    run *= shape[d];
  }
  return true;
}

// t as a 3-d view (or its 2-d [B, F] analogue when time_dim is false); a contiguous copy of t
// when its features cannot be flattened.
inline Tensor view3(const Tensor& t, bool time_dim, View3& v) {
  const size_t first = time_dim ? 2 : 1;
  int64_t sf = 0;
  if (!flat_feature_stride(t.shape(), t.strides(), first, sf)) {
    Tensor c = raw::contiguous(t);
    return view3(c, time_dim, v);
  }
  v.b = t.shape()[0] == 1 ? 0 : t.strides()[0];
  v.t = time_dim ? (t.shape()[1] == 1 ? 0 : t.strides()[1]) : 0;
  v.f = sf;
  return t;
}

// An output as a 3-d view: itself, or a contiguous temporary the caller copies back.
inline Tensor out_view3(const Tensor& out, View3& v) {
  int64_t sf = 0;
  if (flat_feature_stride(out.shape(), out.strides(), 2, sf)) return view3(out, true, v);
  return view3(empty(out.shape(), out.dtype(), out.device()), true, v);
}

}  // namespace engram
