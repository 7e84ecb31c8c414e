// nn/init.h — parameter initialisation, matching torch.nn.init and PyTorch's layer defaults.
//
// fan_in/fan_out of a weight [out, in, k...] are in*prod(k) and out*prod(k).
//   uniform_(lo, hi), normal_(mean, std)
//   xavier_uniform_: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))
//   xavier_normal_:  N(0, gain^2 * 2 / (fan_in + fan_out))
//   kaiming_uniform_(a): U(-b, b), b = gain(a) * sqrt(3 / fan), gain(a) = sqrt(2 / (1 + a^2))
//   kaiming_normal_(a):  N(0, gain(a)^2 / fan)
//   orthogonal_(gain): Q of the QR decomposition (LAPACK dgeqrf/dorgqr from OpenBLAS) of a normal
//     matrix, with signs fixed by diag(R) so the result is uniformly distributed
// PyTorch's default for Linear and Conv is kaiming_uniform_(a = sqrt(5)) on the weight, i.e.
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
// All draws come from the given Generator (default: the global seeded one), in element order.
#pragma once
#include "core/rng.h"
#include "core/tensor.h"

namespace engram::nn::init {

struct Fans {
  int64_t fan_in, fan_out;
};
Fans fans(const Tensor& weight);

void uniform_(const Tensor& t, double lo, double hi, Generator* gen = nullptr);
void normal_(const Tensor& t, double mean, double std, Generator* gen = nullptr);
void constant_(const Tensor& t, double value);
void xavier_uniform_(const Tensor& t, double gain = 1.0, Generator* gen = nullptr);
void xavier_normal_(const Tensor& t, double gain = 1.0, Generator* gen = nullptr);
void kaiming_uniform_(const Tensor& t, double a = 0.0, bool fan_in_mode = true,
                      Generator* gen = nullptr);
void kaiming_normal_(const Tensor& t, double a = 0.0, bool fan_in_mode = true,
                     Generator* gen = nullptr);
void orthogonal_(const Tensor& t, double gain = 1.0, Generator* gen = nullptr);

}  // namespace engram::nn::init
