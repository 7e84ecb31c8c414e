// nn/spectral.cpp — see spectral.h.
#include "nn/spectral.h"

#include "nn/init.h"

namespace engram::nn {

SpectralMix::SpectralMix(int64_t F, double init_noise, Generator* gen)
    : features(F), filter(register_parameter("filter", zeros({F / 2 + 1, 2}))) {
  ENGRAM_CHECK(F > 0, "SpectralMix: features must be positive, got {}", F);
  ENGRAM_CHECK(init_noise >= 0, "SpectralMix: init_noise must be >= 0, got {}", init_noise);
  norm = register_module("norm", std::make_shared<LayerNorm>(F));
  if (init_noise > 0) init::normal_(filter, 0.0, init_noise, gen);
  // filter = (1 + noise) + i noise: add 1 to the real column
  std::vector<double> w = filter.to_vector<double>();
  for (int64_t k = 0; k < F / 2 + 1; ++k) w[2 * k] += 1.0;
  raw::copy_(filter, from_vector(w, filter.shape(), filter.dtype()));
  proj = register_module("proj", std::make_shared<Linear>(F, F, true, gen));
}

Tensor SpectralMix::forward(const Tensor& x) {
  ENGRAM_CHECK(x.dim() >= 1 && x.shape().back() == features,
               "SpectralMix: expected input [..., {}], got {}", features, shape_str(x.shape()));
  Tensor spectrum = rfft(norm->forward(x));         // [..., K, 2]
  Tensor filtered = engram::complex_mul(spectrum, filter);  // filter [K, 2] broadcasts, fused
  return note_output(proj->forward(irfft(filtered, features)));
}

std::string SpectralMix::extra_repr() const {
  return fmt::format("features={}, frequencies={}", features, features / 2 + 1);
}

}  // namespace engram::nn
