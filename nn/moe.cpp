// nn/moe.cpp — see moe.h. Tokens are not routed: every used expert runs on all N rows and its
// output is weighted by its gate column (zero for rows that did not pick it). That keeps the code
// a handful of ops, and is what a small decoder with few experts wants.
#include "nn/moe.h"

namespace engram::nn {

ExpertMLP::ExpertMLP(int64_t in, int64_t hidden, int64_t out, ActivationKind act, Generator* gen)
    : act_(act) {
  fc1 = register_module("fc1", std::make_shared<Linear>(in, hidden, true, gen));
  fc2 = register_module("fc2", std::make_shared<Linear>(hidden, out, true, gen));
}

Tensor ExpertMLP::forward(const Tensor& x) {
  return note_output(fc2->forward(apply_activation(act_, fc1->forward(x))));
}

MixtureOfExperts::MixtureOfExperts(int64_t in, int64_t hid, int64_t out, int64_t E, int64_t k,
                                   ActivationKind act, Generator* gen)
    : in_features(in), hidden(hid), out_features(out), num_experts(E), top_k(k) {
  ENGRAM_CHECK(in > 0 && hid > 0 && out > 0 && E > 0,
               "MixtureOfExperts: sizes must be positive, got in={} hidden={} out={} experts={}",
               in, hid, out, E);
  ENGRAM_CHECK(k >= 0 && k <= E, "MixtureOfExperts: top_k={} must be in [0, num_experts={}]", k, E);
  gate = register_module("gate", std::make_shared<Linear>(in, E, true, gen));
  for (int64_t e = 0; e < E; ++e)
    experts.push_back(register_module(fmt::format("experts.{}", e),
                                      std::make_shared<ExpertMLP>(in, hid, out, act, gen)));
}

MoEOutput MixtureOfExperts::forward(const Tensor& x) {
  ENGRAM_CHECK(x.dim() >= 1 && x.shape().back() == in_features,
               "MixtureOfExperts: expected input [..., {}], got {}", in_features,
               shape_str(x.shape()));
  ENGRAM_CHECK(x.numel() > 0, "MixtureOfExperts: empty input {}", shape_str(x.shape()));
  Shape lead(x.shape().begin(), x.shape().end() - 1);
  Tensor xf = reshape(x, {-1, in_features});  // [N, C]
  int64_t N = xf.shape()[0], E = num_experts;

  Tensor logits = gate->forward(xf);  // [N, E]
  Tensor probs = softmax(logits, -1);
  Tensor gates = probs;
  std::vector<bool> used(E, true);
  if (top_k > 0 && top_k < E) {
    // softmax over the k largest logits == the top-k probabilities renormalised to sum 1
    TopK best = topk(logits, top_k, -1);
    Tensor w = softmax(best.values, -1);  // [N, k]
    gates = scatter_add(zeros({N, E}, w.dtype(), w.device()), 1, best.indices, w);
    used.assign(E, false);
    for (int64_t e : best.indices.to_vector<int64_t>()) used[e] = true;
  }

  Tensor y;
  for (int64_t e = 0; e < E; ++e) {
    if (!used[e]) continue;
    Tensor term = mul(slice(gates, 1, e, e + 1), experts[e]->forward(xf));  // [N, 1] * [N, O]
    y = y.defined() ? add(y, term) : term;
  }
  Shape out_shape = lead, gate_shape = lead;
  out_shape.push_back(out_features);
  gate_shape.push_back(E);
  MoEOutput res{reshape(y, out_shape), reshape(probs, gate_shape), reshape(gates, gate_shape)};
  note_output(res.output);
  return res;
}

std::string MixtureOfExperts::extra_repr() const {
  return fmt::format("in={}, hidden={}, out={}, num_experts={}, top_k={}", in_features, hidden,
                     out_features, num_experts, top_k == 0 ? num_experts : top_k);
}

}  // namespace engram::nn
