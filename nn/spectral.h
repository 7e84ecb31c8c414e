// nn/spectral.h — SpectralMix: a learnable filter in the Fourier domain of the feature dim
// (CRSD's "spectral dual transform").
//
// For x [..., F] and K = F/2 + 1 frequencies:
//   h = LayerNorm(x)                                   [..., F]
//   X = rfft(h)                                        [..., K, 2]   (complex as [re, im])
//   Y_k = X_k * W_k   (complex product, per frequency; the fused complex_mul op)  [..., K, 2]
//       re = Xr Wr - Xi Wi,   im = Xr Wi + Xi Wr
//   y = Linear(irfft(Y, n = F))                         [..., F]
// The filter W [K, 2] (parameter "filter") starts at 1 + 0i for every frequency, so at
// initialisation irfft(rfft(h)) = h and the module is LayerNorm -> Linear; training then learns
// which frequencies to amplify, damp or phase-shift. With init_noise > 0 both parts get
// N(0, init_noise^2) added (re = 1 + noise, im = noise), to break that symmetry on purpose.
// Note irfft ignores the imaginary part of the DC bin (and of the Nyquist bin for even F), so
// those filter entries get no gradient.
// Names: norm.weight, norm.bias, filter, proj.weight, proj.bias.
#pragma once
#include "nn/layers.h"

namespace engram::nn {

class SpectralMix : public UnaryModule {
 public:
  explicit SpectralMix(int64_t features, double init_noise = 0.0, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;  // [..., F] -> [..., F]
  std::string type_name() const override { return "SpectralMix"; }
  std::string extra_repr() const override;

  int64_t features;
  std::shared_ptr<LayerNorm> norm;
  Tensor& filter;  // [F/2 + 1, 2]
  std::shared_ptr<Linear> proj;
};

}  // namespace engram::nn
