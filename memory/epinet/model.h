// memory/epinet/model.h — EpiNetModel: encode -> recall -> decode, and memorize after each step.
//
//   z = encoder(x)                       [B, d]        (memory/epinet/encoder.h)
//   r = recall(z, memory)                [B, d]        (memory/epinet/recall.h)
//   logits = MoE([z; r])                 [B, K]        (nn/moe.h: gate softmax(G h), E experts
//                                                       Linear(2d -> hidden)-ReLU-Linear(-> K))
// memorize(x, z, y, salience) is called after each optimizer step with one salience per sample;
// salience_of() computes the configurable kinds: the per-sample loss (the notebook's default), a
// constant, or novelty = 1 - max cos(z, stored latents).
#pragma once
#include "memory/epinet/encoder.h"
#include "memory/epinet/episodic_memory.h"
#include "memory/epinet/recall.h"
#include "nn/moe.h"

namespace engram::epinet {

enum class SalienceKind { loss, constant, novelty };

struct EpiNetConfig {
  int64_t d = 128, classes = 10, experts = 4, expert_hidden = 128, capacity = 1000;
  double alpha = 0.01;  // salience decay per training step
  RecallOptions recall;
  bool use_recall = true;  // false: the recall input is zeros (the replay-only baseline)
  SalienceKind salience = SalienceKind::loss;
  void validate() const;
};

struct EpiNetOutput {
  Tensor logits, z, r, gate_probs;
};

class EpiNetModel : public nn::Module {
 public:
  explicit EpiNetModel(const EpiNetConfig& cfg, Generator* gen = nullptr);
  EpiNetOutput forward(const Tensor& x);
  // The per-sample salience for memorize(): loss_per_sample [B] is used for SalienceKind::loss.
  Tensor salience_of(const Tensor& z, const Tensor& loss_per_sample) const;
  int64_t memorize(const Tensor& x, const Tensor& z, const Tensor& y, const Tensor& salience);
  std::string type_name() const override { return "EpiNetModel"; }

  EpiNetConfig cfg;
  std::shared_ptr<ConvEncoder> encoder;
  std::shared_ptr<nn::MixtureOfExperts> decoder;
  EpisodicMemory memory;
};

}  // namespace engram::epinet
