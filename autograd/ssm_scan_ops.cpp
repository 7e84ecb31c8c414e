// autograd/ssm_scan_ops.cpp — linear_scan_2x2, cauchy_kernel and vandermonde: the state-space
// primitives of LinOSS, S5 (the 2x2-block scan), S4 (the Cauchy kernel) and S4D (the Vandermonde
// powers), with their backwards. Kernels in
// core/cpu/cpu_ssm_scan.cpp.
//
// linear_scan_2x2: h_t = M_t h_{t-1} + f_t along dim 1, f [B, T, F..., 2], M [.., 2, 2]
// broadcasting to [B, T, F..., 2, 2], h0 [B, F..., 2] (broadcasting; undefined = zeros). The
// F... dims are flattened to one for the kernel; M's broadcasts over B and T stay stride-0 views
// (no copy), a broadcast inside F... is materialised over F only. Backward, upstream dh:
//   g_t = dh_t + M_{t+1}^T g_{t+1}, g_{T-1} = dh_{T-1}     (kernel linear_scan_2x2_reverse)
//   df_t = g_t,  dM_t = g_t h_{t-1}^T (h_{-1} = h0 or 0),  dh0 = M_0^T g_0
// When M is shared over time (LinOSS, S5: one M per mode) the sum over t is taken right here, by
// batched [2, T-1] @ [T-1, 2] products per (b, f), and dM comes back as [B, 1, F..., 2, 2];
// otherwise in the full [B, T, F..., 2, 2] shape. The tape sums it over M's other broadcast dims.
//
// cauchy_kernel: k[.., l] = sum_n v[.., n] / (z[.., l] - w[.., n]), complex as [re, im] last;
// v, w [.., N, 2], z [.., L, 2], their leading dims broadcast to [..] and are flattened to rows
// R for the kernel. Backward (real-pair convention, conj(f') times the upstream pair):
//   dv_n = sum_l conj(c_ln) g_l,  dw_n = conj(v_n) sum_l conj(c_ln^2) g_l,
//   dz_l = -conj(sum_n v_n c_ln^2) g_l,   c_ln = 1 / (z_l - w_n).
//
// vandermonde: V[.., j] = exp(a[..] p_j), p_j = start + j step, a [.., 2] -> [.., count, 2]; every
// complex entry of a is one row R of the kernel. Backward (exp(a p) is holomorphic in a, so the
// real-pair gradient is conj(f') times the upstream pair, f' = p V):
//   da = sum_j p_j conj(V_j) dV_j                 (from the saved output; no exp recomputed)
#include <cmath>

#include "autograd/ops.h"
#include "autograd/raw_ops.h"

namespace engram {

// ---- linear_scan_2x2 ----

Tensor linear_scan_2x2(const Tensor& M, const Tensor& f, const Tensor& h0) {
  ENGRAM_CHECK(M.defined() && f.defined(), "linear_scan_2x2: M and f must be defined");
  rk::check_same(M, f, "linear_scan_2x2");
  ENGRAM_CHECK(is_floating(f.dtype()), "linear_scan_2x2: expected floating M and f, got {}",
               dtype_name(f.dtype()));
  const Shape& fs = f.shape();
  ENGRAM_CHECK(f.dim() >= 3 && fs.back() == 2,
               "linear_scan_2x2: expected f of shape [B, T, F..., 2], got {}", shape_str(fs));
  const Shape lead(fs.begin(), fs.end() - 1);  // [B, T, F...]
  const int64_t B = lead[0], T = lead[1], F = shape_numel(Shape(lead.begin() + 2, lead.end()));
  // M [.., 2, 2], its leading dims broadcasting to [B, T, F...]
  bool m_ok = M.dim() >= 2 && M.shape()[M.dim() - 1] == 2 && M.shape()[M.dim() - 2] == 2 &&
              M.dim() - 2 <= (int64_t)lead.size();
  Shape mpad(lead.size(), 1);
  for (int64_t d = 0; m_ok && d < M.dim() - 2; ++d) {
    int64_t s = M.shape()[M.dim() - 3 - d];
    mpad[lead.size() - 1 - d] = s;
    m_ok = s == lead[lead.size() - 1 - d] || s == 1;
  }
  ENGRAM_CHECK(m_ok, "linear_scan_2x2: M of shape {} does not broadcast to [B, T, F..., 2, 2] = {} "
                     "+ [2, 2] (f {})",
               shape_str(M.shape()), shape_str(lead), shape_str(fs));
  const bool has_h0 = h0.defined();
  Shape hs = lead;  // [B, F..., 2]
  hs.erase(hs.begin() + 1);
  hs.push_back(2);
  if (has_h0) {
    rk::check_same(f, h0, "linear_scan_2x2 (h0)");
    bool ok = h0.dim() <= (int64_t)hs.size();
    for (int64_t d = 0; ok && d < h0.dim(); ++d) {
      int64_t s = h0.shape()[h0.dim() - 1 - d], want = hs[hs.size() - 1 - d];
      ok = s == want || (s == 1 && d > 0);
    }
    ENGRAM_CHECK(ok, "linear_scan_2x2: h0 of shape {} does not broadcast to [B, F..., 2] = {} (f {})",
                 shape_str(h0.shape()), shape_str(hs), shape_str(fs));
  }

  // M as [B, T, F, 2, 2]: its own B and T sizes (1 = shared), F... expanded and flattened
  Shape mown{mpad[0], mpad[1]};
  mown.insert(mown.end(), lead.begin() + 2, lead.end());
  mown.push_back(2);
  mown.push_back(2);
  mpad.push_back(2);
  mpad.push_back(2);
  Tensor Mown = raw::expand(raw::reshape(M, mpad), mown);
  Tensor Me = raw::expand(raw::reshape(Mown, {mpad[0], mpad[1], F, 2, 2}), {B, T, F, 2, 2});
  Tensor f4 = raw::reshape(f, {B, T, F, 2});
  Tensor h0e = has_h0 ? raw::reshape(raw::expand(h0, hs), {B, F, 2}) : Tensor();
  Tensor h4 = empty({B, T, F, 2}, f.dtype(), f.device());
  ENGRAM_KERNEL(f.device(), linear_scan_2x2)(Me, f4, h0e, h4);
  Tensor h = raw::view(h4, fs);

  std::vector<Tensor> inputs{M, f};
  if (has_h0) inputs.push_back(h0);
  // h_t = M_t h_{t-1} + f_t; g_t = dh_t + M_{t+1}^T g_{t+1}; df = g, dM_t = g_t h_{t-1}^T,
  // dh0 = M_0^T g_0
  const bool m_shared_over_t = mpad[1] == 1;
  record1("linear_scan_2x2", inputs, h,
          [Me, h0e, h4, lead, hs, has_h0, m_shared_over_t](const Tensor& dh) {
    const Device dev = dh.device();
    const Shape& s4 = h4.shape();  // [B, T, F, 2]
    const int64_t B = s4[0], T = s4[1], F = s4[2];
    Tensor g = empty(s4, dh.dtype(), dev);
    ENGRAM_KERNEL(dev, linear_scan_2x2_reverse)(Me, raw::reshape(dh, s4), g);
    auto outer = [&](const Tensor& gi, const Tensor& hj, const Tensor& out) {  // out = gi hj^T
      const Shape& os = out.shape();
      ENGRAM_KERNEL(dev, binary)(BinaryOp::mul, raw::expand(raw::unsqueeze(gi, -1), os),
                                 raw::expand(raw::unsqueeze(hj, -2), os), out);
    };
    Tensor dM;
    Shape ms = lead;  // the shape dM is returned in: [B, T or 1, F..., 2, 2]
    ms.push_back(2);
    ms.push_back(2);
    if (m_shared_over_t) {
      // dM = sum_t g_t h_{t-1}^T per (b, f) directly: [B, F, 2, T-1] @ [B, F, T-1, 2] batched
      // products, so the [B, T, F, 2, 2] per-step gradient is never materialised
      ms[1] = 1;
      dM = zeros({B, F, 2, 2}, dh.dtype(), dev);
      if (T > 1)
        ENGRAM_KERNEL(dev, matmul)(raw::permute(raw::narrow(g, 1, 1, T - 1), {0, 2, 3, 1}),
                                   raw::permute(raw::narrow(h4, 1, 0, T - 1), {0, 2, 1, 3}), dM,
                                   1.0, 0.0);
      if (T > 0 && has_h0) {
        Tensor first = empty({B, F, 2, 2}, dh.dtype(), dev);
        outer(raw::squeeze(raw::narrow(g, 1, 0, 1), 1), h0e, first);
        ENGRAM_KERNEL(dev, binary)(BinaryOp::add, dM, first, dM);
      }
    } else {
      dM = empty({B, T, F, 2, 2}, dh.dtype(), dev);
      if (T > 1)
        outer(raw::narrow(g, 1, 1, T - 1), raw::narrow(h4, 1, 0, T - 1), raw::narrow(dM, 1, 1, T - 1));
      if (T > 0) {
        Tensor dM0 = raw::narrow(dM, 1, 0, 1);
        if (has_h0) outer(raw::narrow(g, 1, 0, 1), raw::unsqueeze(h0e, 1), dM0);
        else ENGRAM_KERNEL(dev, fill)(dM0, 0.0);
      }
    }
    Shape fs = lead;
    fs.push_back(2);
    std::vector<Tensor> grads{raw::reshape(dM, ms), raw::view(g, fs)};
    if (has_h0) {
      Tensor dh0 = zeros({B, F, 2}, dh.dtype(), dev);
      if (T > 0) {  // dh0_i = sum_j M_0[j, i] g_0[j]
        Tensor M0 = raw::squeeze(raw::narrow(Me, 1, 0, 1), 1), g0 = raw::squeeze(raw::narrow(g, 1, 0, 1), 1);
        dh0 = rk::add(rk::mul(raw::squeeze(raw::narrow(M0, 2, 0, 1), 2), raw::narrow(g0, 2, 0, 1)),
                      rk::mul(raw::squeeze(raw::narrow(M0, 2, 1, 1), 2), raw::narrow(g0, 2, 1, 1)));
      }
      grads.push_back(raw::view(dh0, hs));
    }
    return grads;
  });
  return h;
}

// ---- cauchy_kernel ----

Tensor cauchy_kernel(const Tensor& v, const Tensor& z, const Tensor& w) {
  ENGRAM_CHECK(v.defined() && z.defined() && w.defined(),
               "cauchy_kernel: v, z and w must be defined");
  rk::check_same(v, z, "cauchy_kernel");
  rk::check_same(v, w, "cauchy_kernel");
  ENGRAM_CHECK(is_floating(v.dtype()), "cauchy_kernel: expected floating inputs, got {}",
               dtype_name(v.dtype()));
  auto complex_vector = [](const Tensor& x) { return x.dim() >= 2 && x.shape().back() == 2; };
  ENGRAM_CHECK(complex_vector(v) && complex_vector(z) && complex_vector(w) &&
                   v.shape()[v.dim() - 2] == w.shape()[w.dim() - 2],
               "cauchy_kernel: expected v, w [.., N, 2] (same N) and z [.., L, 2], got v {}, z {}, "
               "w {}",
               shape_str(v.shape()), shape_str(z.shape()), shape_str(w.shape()));
  const int64_t N = v.shape()[v.dim() - 2], L = z.shape()[z.dim() - 2];
  auto leading = [](const Tensor& x) { return Shape(x.shape().begin(), x.shape().end() - 2); };
  Shape lead;
  try {
    lead = broadcast_shapes(broadcast_shapes(leading(v), leading(w), "cauchy_kernel"), leading(z),
                            "cauchy_kernel");
  } catch (const std::exception&) {
    ENGRAM_CHECK(false, "cauchy_kernel: the leading dims of v {}, z {}, w {} do not broadcast",
                 shape_str(v.shape()), shape_str(z.shape()), shape_str(w.shape()));
  }
  const int64_t R = shape_numel(lead);
  auto rows = [&](const Tensor& x, int64_t n) {  // x expanded to lead + [n, 2], as [R, n, 2]
    Shape s = lead;
    s.push_back(n);
    s.push_back(2);
    return raw::reshape(raw::contiguous(raw::expand(x, s)), {R, n, 2});
  };
  Tensor vr = rows(v, N), zr = rows(z, L), wr = rows(w, N);
  Tensor k = empty({R, L, 2}, v.dtype(), v.device());
  ENGRAM_KERNEL(v.device(), cauchy_kernel)(vr, zr, wr, k);
  Shape ks = lead;
  ks.push_back(L);
  ks.push_back(2);
  Tensor out = raw::view(k, ks);
  // k_l = sum_n v_n / (z_l - w_n); dv, dz, dw from the kernel (formulas above)
  record1("cauchy_kernel", {v, z, w}, out, [vr, zr, wr, lead](const Tensor& dk) {
    Tensor dv = empty_like(vr), dz = empty_like(zr), dw = empty_like(wr);
    ENGRAM_KERNEL(dk.device(), cauchy_kernel_backward)(
        vr, zr, wr, raw::reshape(raw::contiguous(dk), zr.shape()), dv, dz, dw);
    auto unflatten = [&](const Tensor& x) {  // [R, n, 2] -> lead + [n, 2]
      Shape s = lead;
      s.push_back(x.shape()[1]);
      s.push_back(2);
      return raw::view(x, s);
    };
    return std::vector<Tensor>{unflatten(dv), unflatten(dz), unflatten(dw)};
  });
  return out;
}

// ---- vandermonde ----

Tensor vandermonde(const Tensor& a, int64_t count, double start, double step) {
  ENGRAM_CHECK(a.defined(), "vandermonde: a must be defined");
  ENGRAM_CHECK(is_floating(a.dtype()), "vandermonde: expected a floating a, got {}",
               dtype_name(a.dtype()));
  ENGRAM_CHECK(a.dim() >= 1 && a.shape().back() == 2,
               "vandermonde: expected complex a [.., 2] (trailing re, im), got {}",
               shape_str(a.shape()));
  ENGRAM_CHECK(count >= 1, "vandermonde: count must be >= 1, got {}", count);
  ENGRAM_CHECK(std::isfinite(start) && std::isfinite(step),
               "vandermonde: start and step must be finite, got {} and {}", start, step);
  const int64_t R = a.numel() / 2;
  Tensor ar = raw::reshape(raw::contiguous(a), {R, 2});
  Tensor V = empty({R, count, 2}, a.dtype(), a.device());
  ENGRAM_KERNEL(a.device(), vandermonde)(ar, start, step, V);
  Shape vs(a.shape().begin(), a.shape().end() - 1);
  vs.push_back(count);
  vs.push_back(2);
  Tensor out = raw::view(V, vs);
  record1("vandermonde", {a}, out, [V, start, step, as = a.shape()](const Tensor& dV) {
    Tensor da = empty({V.shape()[0], 2}, V.dtype(), V.device());
    ENGRAM_KERNEL(dV.device(), vandermonde_backward)(
        V, raw::reshape(raw::contiguous(dV), V.shape()), start, step, da);
    return std::vector<Tensor>{raw::view(da, as)};
  });
  return out;
}

}  // namespace engram
