// nn/layers.cpp — see layers.h. Initialisation follows PyTorch's defaults per layer.
#include "nn/layers.h"

#include <cmath>

#include "nn/init.h"

namespace engram::nn {

// ---------------------------------------------------------------- Linear
Linear::Linear(int64_t in, int64_t out, bool has_bias, Generator* gen)
    : weight(register_parameter("weight", empty({out, in}))), in_features(in), out_features(out) {
  ENGRAM_CHECK(in > 0 && out > 0, "Linear: sizes must be positive, got in={} out={}", in, out);
  double bound = 1.0 / std::sqrt(double(in));  // kaiming_uniform_(a = sqrt(5)) == U(-1/sqrt(in), ..)
  init::uniform_(weight, -bound, bound, gen);
  if (has_bias) {
    bias = register_parameter("bias", empty({out}));
    init::uniform_(bias, -bound, bound, gen);
  }
}

Tensor Linear::forward(const Tensor& x) {
  ENGRAM_CHECK(x.dim() >= 1 && x.shape().back() == in_features,
               "Linear: expected input [..., {}], got {}", in_features, shape_str(x.shape()));
  Tensor y = matmul(x, transpose(weight, 0, 1));
  if (bias.defined()) y = add(y, bias);
  return note_output(y);
}

std::string Linear::extra_repr() const {
  return fmt::format("in_features={}, out_features={}, bias={}", in_features, out_features,
                     bias.defined());
}

// ---------------------------------------------------------------- Embedding
Embedding::Embedding(int64_t n, int64_t d, int64_t pad, Generator* gen)
    : weight(register_parameter("weight", empty({n, d}))), num_embeddings(n), dim(d), padding_idx(pad) {
  ENGRAM_CHECK(pad < n, "Embedding: padding_idx {} out of range for {} embeddings", pad, n);
  init::normal_(weight, 0.0, 1.0, gen);
  if (pad >= 0) {
    NoGradGuard ng;
    backend(weight.device()).fill(raw::narrow(weight, 0, pad, 1), 0.0);
  }
}

Tensor Embedding::forward(const Tensor& ids) { return note_output(embedding(weight, ids, padding_idx)); }

std::string Embedding::extra_repr() const {
  return padding_idx >= 0 ? fmt::format("{}, {}, padding_idx={}", num_embeddings, dim, padding_idx)
                          : fmt::format("{}, {}", num_embeddings, dim);
}

// ---------------------------------------------------------------- activations
Tensor apply_activation(ActivationKind kind, const Tensor& x, double param) {
  switch (kind) {
    case ActivationKind::relu: return relu(x);
    case ActivationKind::gelu: return gelu(x, false);
    case ActivationKind::gelu_tanh: return gelu(x, true);
    case ActivationKind::tanh: return tanh(x);
    case ActivationKind::sigmoid: return sigmoid(x);
    case ActivationKind::silu: return silu(x);
    case ActivationKind::leaky_relu: return leaky_relu(x, param);
    case ActivationKind::softplus: return softplus(x);
  }
  return x;
}

ActivationKind activation_from_name(const std::string& name) {
  static const std::pair<const char*, ActivationKind> table[] = {
      {"relu", ActivationKind::relu},         {"gelu", ActivationKind::gelu},
      {"gelu_tanh", ActivationKind::gelu_tanh}, {"tanh", ActivationKind::tanh},
      {"sigmoid", ActivationKind::sigmoid},   {"silu", ActivationKind::silu},
      {"leaky_relu", ActivationKind::leaky_relu}, {"softplus", ActivationKind::softplus}};
  for (auto& [n, k] : table)
    if (name == n) return k;
  ENGRAM_FAIL("unknown activation '{}' (expected relu, gelu, gelu_tanh, tanh, sigmoid, silu, "
              "leaky_relu or softplus)", name);
}

Tensor Activation::forward(const Tensor& x) { return note_output(apply_activation(kind_, x, param_)); }

std::string Activation::type_name() const {
  switch (kind_) {
    case ActivationKind::relu: return "ReLU";
    case ActivationKind::gelu: return "GELU";
    case ActivationKind::gelu_tanh: return "GELU(tanh)";
    case ActivationKind::tanh: return "Tanh";
    case ActivationKind::sigmoid: return "Sigmoid";
    case ActivationKind::silu: return "SiLU";
    case ActivationKind::leaky_relu: return "LeakyReLU";
    case ActivationKind::softplus: return "Softplus";
  }
  return "Activation";
}

std::shared_ptr<Activation> ReLU() { return std::make_shared<Activation>(ActivationKind::relu); }
std::shared_ptr<Activation> GELU(bool t) {
  return std::make_shared<Activation>(t ? ActivationKind::gelu_tanh : ActivationKind::gelu);
}
std::shared_ptr<Activation> Tanh() { return std::make_shared<Activation>(ActivationKind::tanh); }
std::shared_ptr<Activation> Sigmoid() { return std::make_shared<Activation>(ActivationKind::sigmoid); }
std::shared_ptr<Activation> SiLU() { return std::make_shared<Activation>(ActivationKind::silu); }

}  // namespace engram::nn
