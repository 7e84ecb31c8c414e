// nn/norm_conv_layers.cpp — LayerNorm, RMSNorm, Dropout, Conv2d (declared in layers.h).
#include <cmath>

#include "nn/init.h"
#include "nn/layers.h"

namespace engram::nn {

LayerNorm::LayerNorm(int64_t d, double e, bool affine) : dim(d), eps(e) {
  if (affine) {
    weight = register_parameter("weight", ones({d}));
    bias = register_parameter("bias", zeros({d}));
  }
}
Tensor LayerNorm::forward(const Tensor& x) {
  ENGRAM_CHECK(x.dim() >= 1 && x.shape().back() == dim, "LayerNorm: expected input [..., {}], got {}",
               dim, shape_str(x.shape()));
  return note_output(layer_norm(x, weight, bias, eps));
}
std::string LayerNorm::extra_repr() const { return fmt::format("{}, eps={}", dim, eps); }

RMSNorm::RMSNorm(int64_t d, double e) : weight(register_parameter("weight", ones({d}))), dim(d), eps(e) {}
Tensor RMSNorm::forward(const Tensor& x) {
  ENGRAM_CHECK(x.dim() >= 1 && x.shape().back() == dim, "RMSNorm: expected input [..., {}], got {}",
               dim, shape_str(x.shape()));
  return note_output(rms_norm(x, weight, eps));
}
std::string RMSNorm::extra_repr() const { return fmt::format("{}, eps={}", dim, eps); }

Dropout::Dropout(double p_, Generator* gen) : p(p_), gen_(gen) {
  ENGRAM_CHECK(p >= 0 && p < 1, "Dropout: p must be in [0, 1), got {}", p);
}
Tensor Dropout::forward(const Tensor& x) { return note_output(dropout(x, p, is_training(), gen_)); }
std::string Dropout::extra_repr() const { return fmt::format("p={}", p); }

Conv2d::Conv2d(int64_t in, int64_t out, int64_t k, int64_t s, int64_t p, int64_t d, bool has_bias,
               Generator* gen)
    : weight(register_parameter("weight", empty({out, in, k, k}))), in_channels(in),
      out_channels(out), kernel(k), stride(s), padding(p), dilation(d) {
  double bound = 1.0 / std::sqrt(double(in * k * k));  // PyTorch's default, as for Linear
  init::uniform_(weight, -bound, bound, gen);
  if (has_bias) {
    bias = register_parameter("bias", empty({out}));
    init::uniform_(bias, -bound, bound, gen);
  }
}
Tensor Conv2d::forward(const Tensor& x) {
  return note_output(conv2d(x, weight, bias, stride, padding, dilation));
}
std::string Conv2d::extra_repr() const {
  return fmt::format("{}, {}, kernel_size={}, stride={}, padding={}", in_channels, out_channels,
                     kernel, stride, padding);
}

}  // namespace engram::nn
