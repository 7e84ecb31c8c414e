// nn/losses.h — loss functions (nn::functional, like torch.nn.functional) and loss modules.
//
//   cross_entropy(logits [..., C], target [...] i64)  = -log softmax(logits)[target]
//                     classes are the LAST dim (LM logits [B, T, V] with targets [B, T])
//   mse_loss(a, b)                                     = (a - b)^2
//   binary_cross_entropy_with_logits(x, y)             = max(x, 0) - x y + log(1 + exp(-|x|))
//                     (the stable form of -[y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))]);
//                     with pos_weight pw:
//                       (1 - y) x + (1 + (pw - 1) y) (log(1 + exp(-|x|)) + max(-x, 0))
//   entropy(p, dim)                                    = -sum_dim p log(p + eps)
//   entropy_from_logits(z, dim)                        = -sum_dim softmax(z) log_softmax(z)
//   kl_div(input, target)                              = target (log target - input), PyTorch's
//                     F.kl_div: input holds log-probabilities, target probabilities (or
//                     log-probabilities with log_target); 0 log 0 = 0. Reductions: none, sum,
//                     mean (over every element, PyTorch's default) and batchmean (sum / size(0),
//                     the true KL averaged over the batch).
// Reduction::mean averages over all elements, sum adds them, none keeps the element shape.
// The modules hold the options and compute the same functions: CrossEntropyLoss, MSELoss,
// BCEWithLogitsLoss, KLDivLoss.
#pragma once
#include "nn/module.h"

namespace engram::nn {

enum class KLReduction { mean, batchmean, sum, none };

namespace functional {

// The same arguments, in the same order, as the op engram::cross_entropy; call it qualified
// (F::cross_entropy with namespace F = engram::nn::functional) since argument-dependent lookup
// also finds the op.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index = -100,
                     double label_smoothing = 0.0, Reduction reduction = Reduction::mean);
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);
// pos_weight (optional) broadcasts against the last dim of x, one weight per class.
Tensor binary_cross_entropy_with_logits(const Tensor& x, const Tensor& y,
                                        Reduction reduction = Reduction::mean,
                                        const Tensor& pos_weight = Tensor());
Tensor entropy(const Tensor& p, int64_t dim = -1, double eps = 1e-12);
Tensor entropy_from_logits(const Tensor& logits, int64_t dim = -1);
Tensor kl_div(const Tensor& input, const Tensor& target, KLReduction reduction = KLReduction::mean,
              bool log_target = false);

}  // namespace functional

class CrossEntropyLoss : public Module {
 public:
  explicit CrossEntropyLoss(int64_t ignore_index = -100, double label_smoothing = 0.0,
                            Reduction reduction = Reduction::mean)
      : reduction(reduction), ignore_index(ignore_index), label_smoothing(label_smoothing) {}
  Tensor forward(const Tensor& logits, const Tensor& target) const;
  Tensor operator()(const Tensor& logits, const Tensor& t) const { return forward(logits, t); }
  std::string type_name() const override { return "CrossEntropyLoss"; }
  std::string extra_repr() const override;
  Reduction reduction;
  int64_t ignore_index;
  double label_smoothing;
};

class MSELoss : public Module {
 public:
  explicit MSELoss(Reduction reduction = Reduction::mean) : reduction(reduction) {}
  Tensor forward(const Tensor& input, const Tensor& target) const;
  Tensor operator()(const Tensor& input, const Tensor& t) const { return forward(input, t); }
  std::string type_name() const override { return "MSELoss"; }
  std::string extra_repr() const override;
  Reduction reduction;
};

class BCEWithLogitsLoss : public Module {
 public:
  explicit BCEWithLogitsLoss(Reduction reduction = Reduction::mean, Tensor pos_weight = Tensor())
      : reduction(reduction), pos_weight(std::move(pos_weight)) {}
  Tensor forward(const Tensor& logits, const Tensor& target) const;
  Tensor operator()(const Tensor& logits, const Tensor& t) const { return forward(logits, t); }
  std::string type_name() const override { return "BCEWithLogitsLoss"; }
  std::string extra_repr() const override;
  Reduction reduction;
  Tensor pos_weight;
};

class KLDivLoss : public Module {
 public:
  explicit KLDivLoss(KLReduction reduction = KLReduction::mean, bool log_target = false)
      : reduction(reduction), log_target(log_target) {}
  Tensor forward(const Tensor& input, const Tensor& target) const;
  Tensor operator()(const Tensor& input, const Tensor& t) const { return forward(input, t); }
  std::string type_name() const override { return "KLDivLoss"; }
  std::string extra_repr() const override;
  KLReduction reduction;
  bool log_target;
};

std::string_view reduction_name(Reduction r);
std::string_view reduction_name(KLReduction r);

}  // namespace engram::nn
