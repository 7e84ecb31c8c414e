// autograd/fft.cpp — rfft / irfft along the last dim, complex held as trailing [re, im] pairs
// (torch.view_as_real layout), and their backwards.
//
//   y = rfft(x):     x [.., n] -> y [.., n/2+1, 2],  y_k = sum_m x_m e^{-i th_km},  th_km = 2 pi k m / n
//   x = irfft(X, n): X [.., n/2+1, 2] -> x [.., n],
//                    x_m = (1/n) sum_{k=0}^{n-1} X_k e^{+i th_km}  with X_{n-k} = conj(X_k)
//                        = (1/n) [Re X_0 + sum_{k mid} 2 Re(X_k e^{i th_km}) + (n even) Re X_{n/2} (-1)^m]
//   "mid" bins are k = 1 .. ceil(n/2)-1 = 1 .. (n-1)/2: those whose mirror n-k lies outside the
//   half spectrum. DC (k = 0) and, for even n, Nyquist (k = n/2) are their own mirrors.
//
// Backward of rfft, upstream g = [.., n/2+1, 2]. Re y_k = sum_m x_m cos th, Im y_k = -sum_m x_m sin th:
//   dx_m = sum_k (Re g_k cos th_km - Im g_k sin th_km) = Re sum_{k=0}^{n/2} g_k e^{+i th_km}.
//   A c2r transform (unnormalised irfft) computes Re G_0 + 2 sum_mid Re(G_k e^{i th}) + Re G_{n/2}(-1)^m,
//   so dx = c2r(g') with g' = g with its mid bins halved. The imag parts of DC and Nyquist
//   contribute sin(0) = sin(pi m) = 0, matching c2r, which ignores them.
//
// Backward of irfft, upstream g = [.., n]. With c_k = 2 for mid bins and 1 for DC/Nyquist,
//   x_m = (1/n) sum_{k=0}^{n/2} c_k (Re X_k cos th_km - Im X_k sin th_km), so
//   dRe X_k = (c_k/n) sum_m g_m cos th_km,  dIm X_k = -(c_k/n) sum_m g_m sin th_km,
//   i.e. dX = rfft(g) * c_k / n. rfft(g) is real at DC and Nyquist, so the imag parts there get
//   exactly zero gradient, as they should: irfft's output does not depend on them. This is
//   PyTorch's fft_c2r_backward (r2c of the gradient, then the mid bins doubled).
//
// irfft also accepts a half spectrum of another length m, like torch.fft.irfft: it is trimmed
// to (or zero-padded up to) n/2+1 bins first, with recorded slice / cat ops.
//
// complex_mul(a, b) = a b elementwise on [.., 2] pairs, broadcasting like mul. The product is
// holomorphic in each factor, so the real-pair gradients are conj(f') times the upstream pair:
//   da = conj(b) g,   db = conj(a) g        (summed over broadcast dims by the tape)
// One kernel pass each, in place of four real products, a sub, an add, two selects and a stack.
#include "autograd/ops.h"
#include "autograd/raw_ops.h"

namespace engram {

// The mid bins k = 1 .. (n-1)/2 of a half spectrum [.., n/2+1, 2], as a view.
static Tensor mid_bins(const Tensor& spec, int64_t n) {
  return raw::narrow(spec, spec.dim() - 2, 1, (n - 1) / 2);
}

// t *= s in place (t a fresh buffer or a view of one).
static void scale_(const Tensor& t, double s) {
  if (t.numel() > 0) ENGRAM_KERNEL(t.device(), unary)(UnaryOp::mul_scalar, t, s, 0, t);
}

Tensor rfft(const Tensor& x) {
  ENGRAM_CHECK(x.dim() >= 1 && x.shape().back() >= 1,
               "rfft: expected a real signal [.., n] with n >= 1, got shape {}", shape_str(x.shape()));
  ENGRAM_CHECK(is_floating(x.dtype()), "rfft: expected a floating signal, got {} {}",
               dtype_name(x.dtype()), shape_str(x.shape()));
  const int64_t n = x.shape().back();
  Shape ys = x.shape();
  ys.back() = n / 2 + 1;
  ys.push_back(2);
  Tensor y = empty(ys, x.dtype(), x.device());
  ENGRAM_KERNEL(x.device(), rfft)(raw::contiguous(x), y);
  Shape xs = x.shape();
  // y = rfft(x); dx += c2r(g with mid bins halved) (unnormalised; see the top of the file)
  record1("rfft", {x}, y, [xs, n](const Tensor& dy) {
    Tensor g = raw::clone(dy);
    scale_(mid_bins(g, n), 0.5);
    Tensor dx = empty(xs, dy.dtype(), dy.device());
    ENGRAM_KERNEL(dy.device(), irfft)(g, n, dx);
    return std::vector<Tensor>{dx};
  });
  return y;
}

Tensor irfft(const Tensor& X, int64_t n) {
  ENGRAM_CHECK(X.dim() >= 2 && X.shape().back() == 2,
               "irfft: expected a half spectrum [.., n/2+1, 2] ([re, im] pairs), got shape {}",
               shape_str(X.shape()));
  ENGRAM_CHECK(is_floating(X.dtype()), "irfft: expected a floating spectrum, got {} {}",
               dtype_name(X.dtype()), shape_str(X.shape()));
  ENGRAM_CHECK(n >= 1, "irfft: output length n={} must be >= 1 (spectrum {})", n,
               shape_str(X.shape()));
  const int64_t half = n / 2 + 1, m = X.shape()[X.dim() - 2];
  ENGRAM_CHECK(m >= 1, "irfft: empty spectrum {}", shape_str(X.shape()));
  Tensor Xh = X;
  if (m > half) {
    Xh = slice(X, -2, 0, half);
  } else if (m < half) {
    Shape pad = X.shape();
    pad[pad.size() - 2] = half - m;
    Xh = cat({X, zeros(pad, X.dtype(), X.device())}, -2);
  }
  Shape ys = X.shape();
  ys.pop_back();
  ys.back() = n;
  Tensor y = empty(ys, X.dtype(), X.device());
  ENGRAM_KERNEL(X.device(), irfft)(Xh, n, y);
  scale_(y, 1.0 / double(n));
  Shape hs = Xh.shape();
  // x = irfft(X, n); dX += rfft(g) * c_k / n, c_k = 2 on mid bins, 1 on DC/Nyquist
  record1("irfft", {Xh}, y, [hs, n](const Tensor& dy) {
    Tensor dX = empty(hs, dy.dtype(), dy.device());
    ENGRAM_KERNEL(dy.device(), rfft)(raw::contiguous(dy), dX);
    scale_(dX, 1.0 / double(n));
    scale_(mid_bins(dX, n), 2.0);
    return std::vector<Tensor>{dX};
  });
  return y;
}

Tensor complex_mul(const Tensor& a, const Tensor& b) {
  ENGRAM_CHECK(a.defined() && b.defined(), "complex_mul: a and b must be defined");
  rk::check_same(a, b, "complex_mul");
  ENGRAM_CHECK(is_floating(a.dtype()), "complex_mul: expected floating tensors, got {}",
               dtype_name(a.dtype()));
  ENGRAM_CHECK(a.dim() >= 1 && a.shape().back() == 2 && b.dim() >= 1 && b.shape().back() == 2,
               "complex_mul: expects complex tensors [..., 2] (re, im), got {} and {}",
               shape_str(a.shape()), shape_str(b.shape()));
  const Shape os = broadcast_shapes(a.shape(), b.shape(), "complex_mul");
  Tensor ae = raw::expand(a, os), be = raw::expand(b, os);
  Tensor out = empty(os, a.dtype(), a.device());
  ENGRAM_KERNEL(a.device(), complex_mul)(ae, be, false, out);
  const bool need_a = a.requires_grad(), need_b = b.requires_grad();
  record1("complex_mul", {a, b}, out, [ae, be, os, need_a, need_b](const Tensor& g) {
    std::vector<Tensor> grads(2);
    for (int k = 0; k < 2; ++k) {
      if (!(k == 0 ? need_a : need_b)) continue;
      grads[k] = empty(os, g.dtype(), g.device());
      ENGRAM_KERNEL(g.device(), complex_mul)(k == 0 ? be : ae, g, true, grads[k]);
    }
    return grads;  // full-size: the tape sums each over its input's broadcast dims
  });
  return out;
}

}  // namespace engram
