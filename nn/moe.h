// nn/moe.h — a softly gated mixture of expert MLPs (EpiNet's decoder).
//
// For x [..., C] and E experts f_e(x) = W2_e act(W1_e x + b1_e) + b2_e ([..., C] -> [..., O]):
//   p = softmax(x W_g^T + b_g)                 gate probabilities [..., E]
//   dense gating:  g = p
//   top-k gating:  g_e = p_e / sum_{j in topk(p)} p_j for the k most probable experts, else 0
//                  (= a softmax over the k largest gate logits)
//   y = sum_e g_e * f_e(x)                     [..., O]
// forward() returns y, the gate probabilities p (for load-balancing / entropy losses) and the
// combine weights g that were used (equal to p under dense gating). Under top-k gating the
// gradient reaches the gate only through the selected experts, as in Shazeer et al. (2017)
// without the noise; experts that no row selected are not run at all.
// Names: gate.weight/bias, experts.{e}.fc1.weight/bias, experts.{e}.fc2.weight/bias.
#pragma once
#include "nn/layers.h"

namespace engram::nn {

// One expert: fc2(act(fc1(x))).
class ExpertMLP : public UnaryModule {
 public:
  ExpertMLP(int64_t in_features, int64_t hidden, int64_t out_features, ActivationKind act,
            Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "ExpertMLP"; }
  std::shared_ptr<Linear> fc1, fc2;

 private:
  ActivationKind act_;
};

struct MoEOutput {
  Tensor output;      // [..., out_features]
  Tensor gate_probs;  // [..., E]: softmax of the gate over all experts
  Tensor gates;       // [..., E]: the combine weights used (renormalised top-k, or gate_probs)
};

class MixtureOfExperts : public Module {
 public:
  // top_k = 0 means dense gating (every expert weighted by its gate probability).
  MixtureOfExperts(int64_t in_features, int64_t hidden, int64_t out_features, int64_t num_experts,
                   int64_t top_k = 0, ActivationKind act = ActivationKind::gelu,
                   Generator* gen = nullptr);
  MoEOutput forward(const Tensor& x);
  MoEOutput operator()(const Tensor& x) { return forward(x); }
  std::string type_name() const override { return "MixtureOfExperts"; }
  std::string extra_repr() const override;

  int64_t in_features, hidden, out_features, num_experts, top_k;
  std::shared_ptr<Linear> gate;
  std::vector<std::shared_ptr<ExpertMLP>> experts;
};

}  // namespace engram::nn
