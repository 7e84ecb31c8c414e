// autograd/nn_ops.cpp — neural-network ops: normalize, cosine_similarity, the losses
// (cross_entropy, nll_loss, mse_loss), layer_norm, rms_norm and dropout, with their backwards.
//
// Shapes: the class losses take scores [..., C] (e.g. logits [B, T, C]) with an i64 target of
// the leading shape [...] (e.g. [B, T]); the leading dims are flattened to N rows. Note that this
// puts the classes *last*, where PyTorch puts them at dim 1 for inputs above 2-D (so [B, T, C]
// here is PyTorch's cross_entropy(logits.view(-1, C), target.view(-1))). Rows whose target equals
// ignore_index contribute neither loss nor gradient, and the mean divides by the number of
// non-ignored rows (NaN when every row is ignored, as in PyTorch). The count is computed on the
// device, so no target is read back to the host.
//
//   cross_entropy, smoothing e:  loss_i = (1 - e) * (-logp_i[t_i]) + e/C * sum_c (-logp_i[c])
//   (PyTorch's label-smoothing formula); dlogits_i = (softmax(z_i) - q_i) * dy / count,
//   q_i = (1 - e) onehot(t_i) + e/C. The forward kernel computes loss and dlogits together.
//
// layer_norm and rms_norm normalise over the last dim D with fused kernels (core/cpu/cpu_nn.cpp);
// weight/bias [D] may be undefined (Tensor()) for none. cosine_similarity follows PyTorch 2.x:
// sum over dim of (a / max(|a|, eps)) * (b / max(|b|, eps)) after broadcasting a with b (not
// dot / max(|a| |b|, eps) of older releases). Its gradient is the exact derivative of that
// formula; PyTorch's differs only where a norm is below eps (it clamps the norm without grad).
#include <cmath>

#include "autograd/ops.h"
#include "autograd/raw_ops.h"

namespace engram {

static const char* reduction_name(Reduction r) {
  return r == Reduction::mean ? "mean" : r == Reduction::sum ? "sum" : "none";
}

// ---------------------------------------------------------------- normalize, cosine
// y = x / d, d = max(|x|_2, eps) along dim; dx = (dy - y * sum(dy * y) * [|x| > eps]) / d
Tensor normalize(const Tensor& x, int64_t dim, double eps) {
  ENGRAM_CHECK(is_floating(x.dtype()), "normalize: expected a floating tensor, got {} {}",
               dtype_name(x.dtype()), shape_str(x.shape()));
  ENGRAM_CHECK(eps >= 0, "normalize: eps must be >= 0, got {}", eps);
  if (x.dim() == 0) return reshape(normalize(reshape(x, {1}), dim, eps), {});
  dim = wrap_dim(dim, x.dim(), "normalize");
  Tensor n = rk::unary(UnaryOp::sqrt,
                       rk::reduce_keepdim(ReduceOp::sum, rk::unary(UnaryOp::square, x), {dim}));
  Tensor d = rk::unary(UnaryOp::clamp, n, eps, INFINITY);
  Tensor y = rk::div(x, d);
  record1("normalize", {x}, y, [y, n, d, dim, eps](const Tensor& dy) {
    Tensor above = rk::unary(UnaryOp::step_mask, n, eps, INFINITY);  // 1 where |x| > eps
    Tensor proj = rk::mul(rk::reduce_keepdim(ReduceOp::sum, rk::mul(dy, y), {dim}), above);
    return std::vector<Tensor>{rk::div(rk::sub(dy, rk::mul(y, proj)), d)};
  });
  return y;
}

// y = sum over dim of normalize(a) * normalize(b) (after broadcasting); composed of recorded ops
Tensor cosine_similarity(const Tensor& a, const Tensor& b, int64_t dim, double eps) {
  rk::check_same(a, b, "cosine_similarity");
  Shape s = broadcast_shapes(a.shape(), b.shape(), "cosine_similarity");
  ENGRAM_CHECK(!s.empty(), "cosine_similarity: inputs must have at least 1 dim, got {} and {}",
               shape_str(a.shape()), shape_str(b.shape()));
  dim = wrap_dim(dim, (int64_t)s.size(), "cosine_similarity");
  // broadcast first: the norm is taken over the broadcast dim, as in PyTorch
  Tensor ae = a.shape() == s ? a : expand(a, s);
  Tensor be = b.shape() == s ? b : expand(b, s);
  return sum(mul(normalize(ae, dim, eps), normalize(be, dim, eps)), {dim}, false);
}

// ---------------------------------------------------------------- class losses
// Checks scores [..., C] against target [...] and returns (N, C).
static std::pair<int64_t, int64_t> class_rows(const Tensor& x, const Tensor& target,
                                              const char* op, const char* what) {
  ENGRAM_CHECK(is_floating(x.dtype()), "{}: {} must be floating, got {} {}", op, what,
               dtype_name(x.dtype()), shape_str(x.shape()));
  ENGRAM_CHECK(target.dtype() == DType::i64, "{}: target must be i64, got {} {}", op,
               dtype_name(target.dtype()), shape_str(target.shape()));
  ENGRAM_CHECK(x.device() == target.device(), "{}: device mismatch: {} {} vs target {}", op, what,
               device_name(x.device()), device_name(target.device()));
  ENGRAM_CHECK(x.dim() >= 1 && x.shape().back() > 0,
               "{}: {} must be [..., C] with C > 0, got {}", op, what, shape_str(x.shape()));
  Shape lead(x.shape().begin(), x.shape().end() - 1);
  ENGRAM_CHECK(target.shape() == lead,
               "{}: target shape {} does not match {} {} (expected target {})", op,
               shape_str(target.shape()), what, shape_str(x.shape()), shape_str(lead));
  int64_t C = x.shape().back();
  return {x.numel() / C, C};
}

// Number of rows whose target is not ignore_index, as a scalar [] of `dtype` on the device.
static Tensor count_valid(const Tensor& target1d, int64_t ignore_index, DType dtype) {
  Tensor t = raw::to_dtype(target1d, dtype);
  Tensor ign = full({}, (double)ignore_index, dtype, target1d.device());
  Tensor ignored = rk::sum_all(rk::binary(BinaryOp::eq, t, ign, "count_valid"));
  return rk::unary(UnaryOp::add_scalar, rk::scale(ignored, -1.0), (double)target1d.numel());
}

// Reduces per-row losses [N] to the op's output; `scale_of(dy)` gives the per-row factor for the
// backward, [N, 1] for none and [1, 1] otherwise (dy / count for mean).
struct ClassLossOut {
  Tensor y;
  Tensor count;  // for mean
};
static ClassLossOut reduce_rows(const Tensor& rows, const Tensor& target1d, const Shape& lead,
                                int64_t ignore_index, Reduction reduction) {
  ClassLossOut o;
  switch (reduction) {
    case Reduction::none: o.y = raw::view(rows, lead); break;
    case Reduction::sum: o.y = rk::sum_all(rows); break;
    case Reduction::mean:
      o.count = count_valid(target1d, ignore_index, rows.dtype());
      o.y = rk::div(rk::sum_all(rows), o.count);
      break;
  }
  return o;
}
static Tensor row_scale(const Tensor& dy, int64_t N, Reduction reduction, const Tensor& count) {
  switch (reduction) {
    case Reduction::none: return raw::reshape(dy, {N, 1});
    case Reduction::sum: return raw::reshape(dy, {1, 1});
    case Reduction::mean: return raw::reshape(rk::div(dy, count), {1, 1});
  }
  return Tensor();
}

// loss = smoothed softmax cross-entropy per row (see top); dlogits = (softmax - q) * scale
Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                     double label_smoothing, Reduction reduction) {
  auto [N, C] = class_rows(logits, target, "cross_entropy", "logits");
  ENGRAM_CHECK(label_smoothing >= 0 && label_smoothing <= 1,
               "cross_entropy: label_smoothing must be in [0, 1], got {}", label_smoothing);
  Tensor z = raw::reshape(logits, {N, C});
  Tensor t = raw::reshape(target, {N});
  Tensor rows = empty({N}, logits.dtype(), logits.device());
  // the gradient is produced by the same pass; skip it when nothing will be differentiated
  Tensor dz = needs_record({logits}) ? empty({N, C}, logits.dtype(), logits.device()) : Tensor();
  ENGRAM_KERNEL(logits.device(), cross_entropy)(z, t, ignore_index, label_smoothing, rows, dz);
  Shape lead(logits.shape().begin(), logits.shape().end() - 1);
  ClassLossOut o = reduce_rows(rows, t, lead, ignore_index, reduction);
  Shape xs = logits.shape();
  Tensor count = o.count;
  record1("cross_entropy", {logits, target}, o.y, [dz, xs, N, reduction, count](const Tensor& dy) {
    Tensor dx = rk::mul(dz, row_scale(dy, N, reduction, count));
    return std::vector<Tensor>{raw::view(dx, xs), Tensor()};
  });
  return o.y;
}

// loss_i = -log_probs[i, t_i] (0 where ignored); dlog_probs[i, t_i] = -dy_i * scale
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, int64_t ignore_index,
                Reduction reduction) {
  auto [N, C] = class_rows(log_probs, target, "nll_loss", "log_probs");
  Tensor lp = raw::reshape(log_probs, {N, C});
  Tensor t = raw::reshape(target, {N});
  Tensor rows = empty({N}, log_probs.dtype(), log_probs.device());
  ENGRAM_KERNEL(log_probs.device(), nll_loss)(lp, t, ignore_index, rows);
  Shape lead(log_probs.shape().begin(), log_probs.shape().end() - 1);
  ClassLossOut o = reduce_rows(rows, t, lead, ignore_index, reduction);
  Shape xs = log_probs.shape();
  Tensor count = o.count;
  record1("nll_loss", {log_probs, target}, o.y,
          [t, xs, N, C, ignore_index, reduction, count](const Tensor& dy) {
            Tensor s = row_scale(dy, N, reduction, count);
            Tensor drow = raw::expand(raw::reshape(s, {s.numel()}), {N});
            Tensor dx = empty({N, C}, dy.dtype(), dy.device());
            ENGRAM_KERNEL(dy.device(), nll_loss_backward)(t, ignore_index, drow, dx);
            return std::vector<Tensor>{raw::view(dx, xs), Tensor()};
          });
  return o.y;
}

// y = reduce((a - b)^2), a and b broadcast; composed of recorded ops (sub, square, mean/sum)
Tensor mse_loss(const Tensor& a, const Tensor& b, Reduction reduction) {
  ENGRAM_CHECK(is_floating(a.dtype()) && is_floating(b.dtype()),
               "mse_loss: expected floating inputs, got {} {} and {} {}", dtype_name(a.dtype()),
               shape_str(a.shape()), dtype_name(b.dtype()), shape_str(b.shape()));
  Tensor sq = square(sub(a, b));
  switch (reduction) {
    case Reduction::mean: return mean(sq);
    case Reduction::sum: return sum(sq);
    case Reduction::none: return sq;
  }
  ENGRAM_FAIL("mse_loss: unknown reduction {}", reduction_name(reduction));
}

// ---------------------------------------------------------------- normalisation layers
// Checks an optional per-feature parameter [D] against x [..., D].
static void check_param(const Tensor& x, const Tensor& p, const char* op, const char* what) {
  if (!p.defined()) return;
  rk::check_same(x, p, op);
  ENGRAM_CHECK(p.dim() == 1 && p.shape()[0] == x.shape().back(),
               "{}: {} must have shape [{}] to match input {}, got {}", op, what, x.shape().back(),
               shape_str(x.shape()), shape_str(p.shape()));
}
static int64_t norm_rows(const Tensor& x, const char* op) {
  ENGRAM_CHECK(is_floating(x.dtype()), "{}: expected a floating tensor, got {} {}", op,
               dtype_name(x.dtype()), shape_str(x.shape()));
  ENGRAM_CHECK(x.dim() >= 1 && x.shape().back() > 0,
               "{}: input must be [..., D] with D > 0, got {}", op, shape_str(x.shape()));
  return x.numel() / x.shape().back();
}

// y = (x - mean) * rstd * w + b over the last dim; the fused backward gives
// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w; dw = sum dy * xhat; db = sum dy
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  int64_t rows = norm_rows(x, "layer_norm");
  check_param(x, weight, "layer_norm", "weight");
  check_param(x, bias, "layer_norm", "bias");
  ENGRAM_CHECK(eps >= 0, "layer_norm: eps must be >= 0, got {}", eps);
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  Tensor mu = empty({rows}, x.dtype(), x.device()), rstd = empty({rows}, x.dtype(), x.device());
  ENGRAM_KERNEL(x.device(), layer_norm)(x, weight, bias, eps, y, mu, rstd);
  const bool gx = x.requires_grad(), gw = weight.defined() && weight.requires_grad(),
             gb = bias.defined() && bias.requires_grad();
  record1("layer_norm", {x, weight, bias}, y, [x, weight, mu, rstd, gx, gw, gb](const Tensor& dy) {
    Tensor dx = gx ? empty(x.shape(), x.dtype(), x.device()) : Tensor();
    Shape ps{x.shape().back()};
    Tensor dw = gw ? empty(ps, x.dtype(), x.device()) : Tensor();
    Tensor db = gb ? empty(ps, x.dtype(), x.device()) : Tensor();
    ENGRAM_KERNEL(x.device(), layer_norm_backward)(x, weight, mu, rstd, dy, dx, dw, db);
    return std::vector<Tensor>{dx, dw, db};
  });
  return y;
}

// y = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps); dx = rstd * (g - x * rstd^2 * mean(g * x)),
// g = dy * w; dw = sum dy * x * rstd
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) {
  int64_t rows = norm_rows(x, "rms_norm");
  check_param(x, weight, "rms_norm", "weight");
  ENGRAM_CHECK(eps >= 0, "rms_norm: eps must be >= 0, got {}", eps);
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  Tensor rstd = empty({rows}, x.dtype(), x.device());
  ENGRAM_KERNEL(x.device(), rms_norm)(x, weight, eps, y, rstd);
  const bool gx = x.requires_grad(), gw = weight.defined() && weight.requires_grad();
  record1("rms_norm", {x, weight}, y, [x, weight, rstd, gx, gw](const Tensor& dy) {
    Tensor dx = gx ? empty(x.shape(), x.dtype(), x.device()) : Tensor();
    Tensor dw = gw ? empty({x.shape().back()}, x.dtype(), x.device()) : Tensor();
    ENGRAM_KERNEL(x.device(), rms_norm_backward)(x, weight, rstd, dy, dx, dw);
    return std::vector<Tensor>{dx, dw};
  });
  return y;
}

// ---------------------------------------------------------------- dropout
// Training: y = x * m, m_i = 0 with probability p else 1/(1-p) (inverted dropout, so eval is the
// identity); dx = dy * m. The mask is drawn on the host from `gen` (default_generator() when
// null), one uniform per element in element order, so a seed fixes it on every device.
Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  ENGRAM_CHECK(p >= 0 && p < 1, "dropout: p must be in [0, 1), got {}", p);
  ENGRAM_CHECK(is_floating(x.dtype()), "dropout: expected a floating tensor, got {} {}",
               dtype_name(x.dtype()), shape_str(x.shape()));
  if (!training || p == 0) return x;
  Generator& g = gen ? *gen : default_generator();
  const double keep_scale = 1.0 / (1.0 - p);
  std::vector<double> m((size_t)x.numel());
  for (double& v : m) v = g.uniform() < p ? 0.0 : keep_scale;
  Tensor mask = from_vector(m, x.shape(), x.dtype());
  if (x.device() != Device::cpu) mask = raw::to_device(mask, x.device());
  Tensor y = rk::mul(x, mask);
  record1("dropout", {x}, y, [mask](const Tensor& dy) {
    return std::vector<Tensor>{rk::mul(dy, mask)};
  });
  return y;
}

}  // namespace engram
