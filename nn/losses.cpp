// nn/losses.cpp — see losses.h. The functions are compositions of recorded ops, so their
// gradients come from the ops' backwards (and are gradchecked in tests/test_layers.cpp).
#include "nn/losses.h"

namespace engram::nn {

std::string_view reduction_name(Reduction r) {
  switch (r) {
    case Reduction::mean:
      return "mean";
    case Reduction::sum:
      return "sum";
    case Reduction::none:
      return "none";
  }
  return "?";
}

std::string_view reduction_name(KLReduction r) {
  switch (r) {
    case KLReduction::mean:
      return "mean";
    case KLReduction::batchmean:
      return "batchmean";
    case KLReduction::sum:
      return "sum";
    case KLReduction::none:
      return "none";
  }
  return "?";
}

namespace functional {

namespace {

Tensor reduce(const Tensor& loss, Reduction r) {
  switch (r) {
    case Reduction::mean:
      return mean(loss);
    case Reduction::sum:
      return sum(loss);
    case Reduction::none:
      return loss;
  }
  return loss;
}

void check_same_shape(const char* fn, const Tensor& a, const Tensor& b) {
  ENGRAM_CHECK(a.shape() == b.shape(), "{}: input {} and target {} must have the same shape", fn,
               shape_str(a.shape()), shape_str(b.shape()));
}

}  // namespace

// The op already takes logits [..., C] with target [...] and checks both.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                     double label_smoothing, Reduction reduction) {
  return engram::cross_entropy(logits, target, ignore_index, label_smoothing, reduction);
}

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_same_shape("mse_loss", input, target);
  return engram::mse_loss(input, target, reduction);
}

// max(x, 0) - x y + log(1 + exp(-|x|)): exp only ever sees -|x| <= 0, so it cannot overflow.
Tensor binary_cross_entropy_with_logits(const Tensor& x, const Tensor& y, Reduction reduction,
                                        const Tensor& pos_weight) {
  check_same_shape("binary_cross_entropy_with_logits", x, y);
  Tensor log1p_exp_neg_abs = log(add(exp(neg(abs(x))), 1.0));
  Tensor loss;
  if (!pos_weight.defined()) {
    loss = add(sub(relu(x), mul(x, y)), log1p_exp_neg_abs);
  } else {
    ENGRAM_CHECK(
        pos_weight.dim() <= 1 &&
            (pos_weight.numel() == 1 || (x.dim() >= 1 && pos_weight.numel() == x.shape().back())),
        "binary_cross_entropy_with_logits: pos_weight {} must have one weight per class "
        "(last dim of {})",
        shape_str(pos_weight.shape()), shape_str(x.shape()));
    // (1 - y) x + (1 + (pw - 1) y) (log(1 + exp(-|x|)) + max(-x, 0))
    Tensor log_weight = add(mul(add(pos_weight, -1.0), y), 1.0);
    loss = add(mul(add(neg(y), 1.0), x), mul(log_weight, add(log1p_exp_neg_abs, relu(neg(x)))));
  }
  return reduce(loss, reduction);
}

Tensor entropy(const Tensor& p, int64_t dim, double eps) {
  ENGRAM_CHECK(p.dim() >= 1, "entropy: expects a distribution along a dim, got {}",
               shape_str(p.shape()));
  return neg(sum(mul(p, log(add(p, eps))), {dim}));
}

Tensor entropy_from_logits(const Tensor& logits, int64_t dim) {
  ENGRAM_CHECK(logits.dim() >= 1, "entropy_from_logits: expects logits along a dim, got {}",
               shape_str(logits.shape()));
  return neg(sum(mul(softmax(logits, dim), log_softmax(logits, dim)), {dim}));
}

Tensor kl_div(const Tensor& input, const Tensor& target, KLReduction reduction, bool log_target) {
  check_same_shape("kl_div", input, target);
  Tensor pointwise;
  if (log_target) {
    pointwise = mul(exp(target), sub(target, input));  // e^t (t - input)
  } else {
    // target log target with 0 log 0 = 0: log is taken of 1 where target is 0
    Tensor positive = gt(target, zeros({}, target.dtype(), target.device()));
    Tensor safe = where(positive, target, ones({}, target.dtype(), target.device()));
    pointwise = mul(target, sub(log(safe), input));
  }
  switch (reduction) {
    case KLReduction::none:
      return pointwise;
    case KLReduction::sum:
      return sum(pointwise);
    case KLReduction::mean:
      return mean(pointwise);
    case KLReduction::batchmean:
      return input.dim() == 0 ? sum(pointwise)
                              : mul(sum(pointwise), 1.0 / double(input.shape()[0]));
  }
  return pointwise;
}

}  // namespace functional

namespace F = functional;

Tensor CrossEntropyLoss::forward(const Tensor& logits, const Tensor& target) const {
  return F::cross_entropy(logits, target, ignore_index, label_smoothing, reduction);
}
std::string CrossEntropyLoss::extra_repr() const {
  return fmt::format("reduction={}, ignore_index={}, label_smoothing={}", reduction_name(reduction),
                     ignore_index, label_smoothing);
}

Tensor MSELoss::forward(const Tensor& input, const Tensor& target) const {
  return F::mse_loss(input, target, reduction);
}
std::string MSELoss::extra_repr() const {
  return fmt::format("reduction={}", reduction_name(reduction));
}

Tensor BCEWithLogitsLoss::forward(const Tensor& logits, const Tensor& target) const {
  return F::binary_cross_entropy_with_logits(logits, target, reduction, pos_weight);
}
std::string BCEWithLogitsLoss::extra_repr() const {
  return fmt::format("reduction={}{}", reduction_name(reduction),
                     pos_weight.defined() ? ", pos_weight" : "");
}

Tensor KLDivLoss::forward(const Tensor& input, const Tensor& target) const {
  return F::kl_div(input, target, reduction, log_target);
}
std::string KLDivLoss::extra_repr() const {
  return fmt::format("reduction={}, log_target={}", reduction_name(reduction), log_target);
}

}  // namespace engram::nn
