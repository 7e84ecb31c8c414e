// autograd/scan.cpp — linear_scan: the first-order linear recurrence along time, and its backward.
//
//   h_t = a_t * h_{t-1} + b_t  along dim 1 of [B, T, ...],  h_{-1} = h0 [B, ...] (undefined = 0)
//
// a and b broadcast against each other (NumPy rules) to the full shape [B, T, ...] — e.g. a per
// step decay a [B, T, 1], a shared a [1, T, D] or [D] — and h0 broadcasts to [B, ...]. They are
// expanded (stride-0 views, no copies) before the kernel; gradients come back in the full shape
// and the tape sums them over the broadcast dims.
//
// Backward, upstream dh = dL/dh [B, T, ...]. h_t feeds h_{t+1} with weight a_{t+1}, so the total
// derivative g_t = dL/dh_t obeys the reverse recurrence
//   g_t = dh_t + a_{t+1} * g_{t+1},  g_{T-1} = dh_{T-1}   (kernel linear_scan_reverse)
// and then db_t = g_t, da_t = g_t * h_{t-1} (h_{-1} = h0, or 0), dh0 = a_0 * g_0.
#include "autograd/ops.h"
#include "autograd/raw_ops.h"

namespace engram {

// x[:, t] of a [B, T, ...] tensor, as a view [B, ...].
static Tensor time_step(const Tensor& x, int64_t t) {
  return raw::squeeze(raw::narrow(x, 1, t, 1), 1);
}

Tensor linear_scan(const Tensor& a, const Tensor& b, const Tensor& h0) {
  ENGRAM_CHECK(a.defined() && b.defined(), "linear_scan: a and b must be defined");
  rk::check_same(a, b, "linear_scan");
  ENGRAM_CHECK(is_floating(a.dtype()), "linear_scan: expected floating a and b, got {}",
               dtype_name(a.dtype()));
  Shape full = broadcast_shapes(a.shape(), b.shape(), "linear_scan");
  ENGRAM_CHECK(full.size() >= 2, "linear_scan: expected a and b of shape [B, T, ...], got {} and {}",
               shape_str(a.shape()), shape_str(b.shape()));
  Shape hs = full;
  hs.erase(hs.begin() + 1);  // [B, ...]
  Tensor ae = raw::expand(a, full), be = raw::expand(b, full), h0e;
  const bool has_h0 = h0.defined();
  if (has_h0) {
    rk::check_same(a, h0, "linear_scan (h0)");
    bool ok = h0.dim() <= (int64_t)hs.size();
    for (int64_t d = 0; ok && d < h0.dim(); ++d) {
      int64_t s = h0.shape()[h0.dim() - 1 - d], want = hs[hs.size() - 1 - d];
      ok = s == want || s == 1;
    }
    ENGRAM_CHECK(ok, "linear_scan: h0 of shape {} does not broadcast to [B, ...] = {} (a {}, b {})",
                 shape_str(h0.shape()), shape_str(hs), shape_str(a.shape()), shape_str(b.shape()));
    h0e = raw::expand(h0, hs);
  }
  Tensor h = empty(full, a.dtype(), a.device());
  ENGRAM_KERNEL(a.device(), linear_scan)(ae, be, h0e, h);

  std::vector<Tensor> inputs{a, b};
  if (has_h0) inputs.push_back(h0);
  // h_t = a_t h_{t-1} + b_t; g_t = dh_t + a_{t+1} g_{t+1}; db = g, da_t = g_t h_{t-1}, dh0 = a_0 g_0
  record1("linear_scan", inputs, h, [ae, h0e, h, hs, has_h0](const Tensor& dh) {
    const Device dev = dh.device();
    const Shape& full = h.shape();
    const int64_t T = full[1];
    Tensor g = empty(full, dh.dtype(), dev);
    ENGRAM_KERNEL(dev, linear_scan_reverse)(ae, dh, g);
    Tensor da = empty(full, dh.dtype(), dev);
    if (T > 1)
      ENGRAM_KERNEL(dev, binary)(BinaryOp::mul, raw::narrow(g, 1, 1, T - 1),
                                 raw::narrow(h, 1, 0, T - 1), raw::narrow(da, 1, 1, T - 1));
    if (T > 0) {
      if (has_h0) ENGRAM_KERNEL(dev, binary)(BinaryOp::mul, time_step(g, 0), h0e, time_step(da, 0));
      else ENGRAM_KERNEL(dev, fill)(time_step(da, 0), 0.0);
    }
    std::vector<Tensor> grads{da, g};
    if (has_h0)
      grads.push_back(T > 0 ? rk::mul(time_step(ae, 0), time_step(g, 0)) : zeros(hs, dh.dtype(), dev));
    return grads;
  });
  return h;
}

}  // namespace engram
