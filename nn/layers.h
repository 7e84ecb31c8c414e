// nn/layers.h — the basic layers: Linear, Embedding, Flatten, activations, LayerNorm, RMSNorm,
// Dropout, Conv2d, MaxPool2d, AvgPool2d. Parameter names and layouts are PyTorch's, so state
// dicts and checkpoints map one to one.
//
//   Linear:     y = x W^T + b,           W [out, in], b [out]; x [..., in] -> [..., out]
//   Embedding:  y = W[ids],               W [V, D]; ids [...] (i64) -> [..., D]
//   LayerNorm:  y = (x - mean) / sqrt(var + eps) * w + b over the last dim
//   RMSNorm:    y = x / sqrt(mean(x^2) + eps) * w over the last dim
//   Dropout:    y = x * mask / (1 - p) in training, x in eval
//   Conv2d:     y = conv(x, W) + b,      x [B, C, H, W], W [O, C, kh, kw]
#pragma once
#include "nn/module.h"

namespace engram::nn {

class Linear : public UnaryModule {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Linear"; }
  std::string extra_repr() const override;
  Tensor& weight;
  Tensor bias;  // undefined when bias = false
  int64_t in_features, out_features;
};

class Embedding : public UnaryModule {
 public:
  Embedding(int64_t num_embeddings, int64_t dim, int64_t padding_idx = -1, Generator* gen = nullptr);
  Tensor forward(const Tensor& ids) override;
  std::string type_name() const override { return "Embedding"; }
  std::string extra_repr() const override;
  Tensor& weight;
  int64_t num_embeddings, dim, padding_idx;
};

class Flatten : public UnaryModule {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1) : start_(start_dim), end_(end_dim) {}
  Tensor forward(const Tensor& x) override { return note_output(flatten(x, start_, end_)); }
  std::string type_name() const override { return "Flatten"; }

 private:
  int64_t start_, end_;
};

enum class ActivationKind { relu, gelu, gelu_tanh, tanh, sigmoid, silu, leaky_relu, softplus };
class Activation : public UnaryModule {
 public:
  explicit Activation(ActivationKind kind, double param = 0.01) : kind_(kind), param_(param) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override;

 private:
  ActivationKind kind_;
  double param_;
};
std::shared_ptr<Activation> ReLU();
std::shared_ptr<Activation> GELU(bool tanh_approximation = false);
std::shared_ptr<Activation> Tanh();
std::shared_ptr<Activation> Sigmoid();
std::shared_ptr<Activation> SiLU();
Tensor apply_activation(ActivationKind kind, const Tensor& x, double param = 0.01);
ActivationKind activation_from_name(const std::string& name);  // "relu", "gelu", ...

class LayerNorm : public UnaryModule {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-5, bool affine = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LayerNorm"; }
  std::string extra_repr() const override;
  Tensor weight, bias;  // undefined when affine = false
  int64_t dim;
  double eps;
};

class RMSNorm : public UnaryModule {
 public:
  explicit RMSNorm(int64_t dim, double eps = 1e-6);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "RMSNorm"; }
  std::string extra_repr() const override;
  Tensor& weight;
  int64_t dim;
  double eps;
};

class Dropout : public UnaryModule {
 public:
  explicit Dropout(double p = 0.5, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Dropout"; }
  std::string extra_repr() const override;
  double p;

 private:
  Generator* gen_;
};

class Conv2d : public UnaryModule {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride = 1,
         int64_t padding = 0, int64_t dilation = 1, bool bias = true, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Conv2d"; }
  std::string extra_repr() const override;
  Tensor& weight;
  Tensor bias;
  int64_t in_channels, out_channels, kernel, stride, padding, dilation;
};

class MaxPool2d : public UnaryModule {
 public:
  explicit MaxPool2d(int64_t kernel, int64_t stride = -1, int64_t padding = 0)
      : kernel(kernel), stride(stride < 0 ? kernel : stride), padding(padding) {}
  Tensor forward(const Tensor& x) override { return note_output(max_pool2d(x, kernel, stride, padding)); }
  std::string type_name() const override { return "MaxPool2d"; }
  int64_t kernel, stride, padding;
};

class AvgPool2d : public UnaryModule {
 public:
  explicit AvgPool2d(int64_t kernel, int64_t stride = -1, int64_t padding = 0)
      : kernel(kernel), stride(stride < 0 ? kernel : stride), padding(padding) {}
  Tensor forward(const Tensor& x) override { return note_output(avg_pool2d(x, kernel, stride, padding)); }
  std::string type_name() const override { return "AvgPool2d"; }
  int64_t kernel, stride, padding;
};

}  // namespace engram::nn
