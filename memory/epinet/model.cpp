// memory/epinet/model.cpp — see model.h.
#include "memory/epinet/model.h"

#include "autograd/ops.h"

namespace engram::epinet {

void EpiNetConfig::validate() const {
  ENGRAM_CHECK(d > 0 && classes > 1 && experts > 0 && expert_hidden > 0,
               "EpiNet: d, classes, experts and expert_hidden must be positive (classes > 1), got "
               "{}, {}, {}, {}", d, classes, experts, expert_hidden);
  ENGRAM_CHECK(capacity > 0, "EpiNet: memory capacity must be positive, got {}", capacity);
  ENGRAM_CHECK(recall.top_k > 0 && recall.top_k <= capacity,
               "EpiNet: recall top_k {} must be in [1, capacity {}]", recall.top_k, capacity);
  ENGRAM_CHECK(alpha >= 0, "EpiNet: salience decay alpha must be >= 0, got {}", alpha);
  ENGRAM_CHECK(recall.temperature > 0, "EpiNet: recall temperature must be positive, got {}",
               recall.temperature);
}

EpiNetModel::EpiNetModel(const EpiNetConfig& c, Generator* gen)
    : cfg(c), memory(c.capacity, c.d, {1, 28, 28}, c.alpha) {
  cfg.validate();
  encoder = register_module("encoder", std::make_shared<ConvEncoder>(c.d, gen));
  decoder = register_module("decoder", std::make_shared<nn::MixtureOfExperts>(
                                           2 * c.d, c.expert_hidden, c.classes, c.experts, 0,
                                           nn::ActivationKind::relu, gen));
}

EpiNetOutput EpiNetModel::forward(const Tensor& x) {
  EpiNetOutput out;
  out.z = encoder->forward(x);
  out.r = cfg.use_recall ? recall(out.z, memory.latents(), memory.saliences(), cfg.recall)
                         : zeros(out.z.shape(), out.z.dtype(), out.z.device());
  nn::MoEOutput m = decoder->forward(cat({out.z, out.r}, -1));
  out.logits = m.output;
  out.gate_probs = m.gate_probs;
  return out;
}

Tensor EpiNetModel::salience_of(const Tensor& z, const Tensor& loss_per_sample) const {
  NoGradGuard ng;
  const int64_t B = z.size(0);
  switch (cfg.salience) {
    case SalienceKind::loss:
      ENGRAM_CHECK(loss_per_sample.numel() == B, "EpiNet: {} per-sample losses for a batch of {}",
                   loss_per_sample.numel(), B);
      return to_dtype(reshape(detach(loss_per_sample), {B}), DType::f64);
    case SalienceKind::constant:
      return ones({B}, DType::f64, z.device());
    case SalienceKind::novelty: {
      if (memory.size() == 0) return ones({B}, DType::f64, z.device());
      Tensor keys = to_dtype(raw::to_device(memory.latents(), z.device()), z.dtype());  // host memory
      Tensor cos = matmul(normalize(z, -1), transpose(normalize(keys, -1), 0, 1));
      return to_dtype(1.0 - max(cos, 1), DType::f64);
    }
  }
  return Tensor();
}

int64_t EpiNetModel::memorize(const Tensor& x, const Tensor& z, const Tensor& y, const Tensor& salience) {
  return memory.memorize(x, detach(z), y, salience);
}

}  // namespace engram::epinet
