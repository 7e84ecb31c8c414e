// core/cpu/cpu_scan.cpp — first-order linear recurrences along dim 1 of [B, T, F...] on the CPU.
//
//   linear_scan:          h_t = a_t * h_{t-1} + b_t,        t = 0 .. T-1,  h_{-1} = h0 (or 0)
//   linear_scan_reverse:  g_t = dh_t + a_{t+1} * g_{t+1},  t = T-1 .. 0,  g_T = 0
//
// The reverse scan is the adjoint of the forward one (autograd/scan.cpp builds da, db, dh0 from
// g). Every (batch, feature) column is an independent recurrence, sequential over T, so work is
// split over B and blocks of kFeatBlock features (all dims after 1, flattened to F). Within a
// block each time step is one pass over F contiguous-or-strided features, which keeps memory
// access row-wise (cache friendly) and lets the unit-stride inner loop vectorise.
//
// Operands are addressed as t[b*sB + t*sT + f*sF] (a "3-d view"), which covers contiguous
// tensors and the usual broadcasts (stride 0 on B, on T, or on all features: a [B, T, 1],
// [1, T, D], [D] expanded). An operand whose feature dims cannot be flattened to one stride is
// copied contiguous first (and an output like that is written through a temporary).
// Accumulation is in the tensor's dtype, like the naive loop it replaces.
#include <algorithm>

#include "core/backend.h"
#include "core/cpu/strided.h"
#include "core/scan_view.h"

namespace engram::cpu {

constexpr int64_t kFeatBlock = 512;

// One time step of the forward over a block of nf features: h = a * prev + b (prev may be null
// = zeros). Unit-stride and scalar-a (a [B, T, 1]) cases get their own vectorisable loops.
template <typename T>
static inline void step(const T* a, int64_t af, const T* b, int64_t bf, const T* prev, int64_t pf,
                        T* h, int64_t hf, int64_t nf) {
  if (!prev) {
    if (bf == 1 && hf == 1) std::copy(b, b + nf, h);
    else for (int64_t j = 0; j < nf; ++j) h[j * hf] = b[j * bf];
  } else if (af == 1 && bf == 1 && pf == 1 && hf == 1) {
    for (int64_t j = 0; j < nf; ++j) h[j] = a[j] * prev[j] + b[j];
  } else if (af == 0 && bf == 1 && pf == 1 && hf == 1) {
    const T s = a[0];
    for (int64_t j = 0; j < nf; ++j) h[j] = s * prev[j] + b[j];
  } else {
    for (int64_t j = 0; j < nf; ++j) h[j * hf] = a[j * af] * prev[j * pf] + b[j * bf];
  }
}

template <typename T>
static void scan_typed(const T* a, View3 sa, const T* b, View3 sb, const T* h0, View3 s0, T* h,
                       View3 sh, int64_t B, int64_t L, int64_t F) {
  const int64_t nblk = (F + kFeatBlock - 1) / kFeatBlock, work = B * nblk;
#pragma omp parallel for if (B * L * F > kParallelGrain && work > 1) schedule(static)
  for (int64_t w = 0; w < work; ++w) {
    const int64_t bi = w / nblk, f0 = (w % nblk) * kFeatBlock, nf = std::min(kFeatBlock, F - f0);
    const T* ab = a + bi * sa.b + f0 * sa.f;
    const T* bb = b + bi * sb.b + f0 * sb.f;
    T* hb = h + bi * sh.b + f0 * sh.f;
    const T* prev = h0 ? h0 + bi * s0.b + f0 * s0.f : nullptr;
    int64_t pf = s0.f;
    for (int64_t t = 0; t < L; ++t) {
      T* ht = hb + t * sh.t;
      step<T>(ab + t * sa.t, sa.f, bb + t * sb.t, sb.f, prev, pf, ht, sh.f, nf);
      prev = ht;
      pf = sh.f;
    }
  }
}

template <typename T>
static void scan_reverse_typed(const T* a, View3 sa, const T* dh, View3 sd, T* g, View3 sg,
                               int64_t B, int64_t L, int64_t F) {
  const int64_t nblk = (F + kFeatBlock - 1) / kFeatBlock, work = B * nblk;
#pragma omp parallel for if (B * L * F > kParallelGrain && work > 1) schedule(static)
  for (int64_t w = 0; w < work; ++w) {
    const int64_t bi = w / nblk, f0 = (w % nblk) * kFeatBlock, nf = std::min(kFeatBlock, F - f0);
    const T* ab = a + bi * sa.b + f0 * sa.f;
    const T* db = dh + bi * sd.b + f0 * sd.f;
    T* gb = g + bi * sg.b + f0 * sg.f;
    for (int64_t t = L - 1; t >= 0; --t) {
      T* gt = gb + t * sg.t;
      // g_t = a_{t+1} * g_{t+1} + dh_t: the forward step with time reversed and shifted by one
      if (t + 1 < L) step<T>(ab + (t + 1) * sa.t, sa.f, db + t * sd.t, sd.f, gt + sg.t, sg.f, gt,
                             sg.f, nf);
      else step<T>(nullptr, 0, db + t * sd.t, sd.f, nullptr, 0, gt, sg.f, nf);
    }
  }
}

static void check_scan_shapes(const char* op, Tref a, Tref b, Tref h) {
  ENGRAM_CHECK(a.dim() >= 2 && a.shape() == b.shape() && a.shape() == h.shape(),
               "{}: expected equal shapes [B, T, ...], got {}, {} and {}", op, shape_str(a.shape()),
               shape_str(b.shape()), shape_str(h.shape()));
  ENGRAM_CHECK(a.dtype() == b.dtype() && a.dtype() == h.dtype(), "{}: dtypes differ: {}, {}, {}",
               op, dtype_name(a.dtype()), dtype_name(b.dtype()), dtype_name(h.dtype()));
}


static void linear_scan(Tref a, Tref b, Tref h0, Tref h) {
  check_scan_shapes("linear_scan", a, b, h);
  const Shape& s = a.shape();
  Shape hs = s;
  hs.erase(hs.begin() + 1);
  if (h0.defined())
    ENGRAM_CHECK(h0.shape() == hs && h0.dtype() == a.dtype(),
                 "linear_scan: h0 {} {} should be {} {} for a of shape {}", dtype_name(h0.dtype()),
                 shape_str(h0.shape()), dtype_name(a.dtype()), shape_str(hs), shape_str(s));
  if (a.numel() == 0) return;
  const int64_t B = s[0], L = s[1], F = a.numel() / (B * L);
  View3 sa, sb, s0, sh;
  Tensor av = view3(a, true, sa), bv = view3(b, true, sb), hv = out_view3(h, sh);
  Tensor h0v = h0.defined() ? view3(h0, false, s0) : Tensor();
  ENGRAM_DISPATCH_FLOAT(a.dtype(), "linear_scan", [&] {
    using T = scalar_t;
    scan_typed<T>(av.data<T>(), sa, bv.data<T>(), sb, h0.defined() ? h0v.data<T>() : nullptr, s0,
                  hv.data<T>(), sh, B, L, F);
  });
  if (!hv.same(h)) raw::copy_(h, hv);
}

static void linear_scan_reverse(Tref a, Tref dh, Tref g) {
  check_scan_shapes("linear_scan_reverse", a, dh, g);
  const Shape& s = a.shape();
  if (a.numel() == 0) return;
  const int64_t B = s[0], L = s[1], F = a.numel() / (B * L);
  View3 sa, sd, sg;
  Tensor av = view3(a, true, sa), dv = view3(dh, true, sd), gv = out_view3(g, sg);
  ENGRAM_DISPATCH_FLOAT(a.dtype(), "linear_scan_reverse", [&] {
    using T = scalar_t;
    scan_reverse_typed<T>(av.data<T>(), sa, dv.data<T>(), sd, gv.data<T>(), sg, B, L, F);
  });
  if (!gv.same(g)) raw::copy_(g, gv);
}

void register_scan(Backend& b) {
  b.linear_scan = linear_scan;
  b.linear_scan_reverse = linear_scan_reverse;
}

}  // namespace engram::cpu
