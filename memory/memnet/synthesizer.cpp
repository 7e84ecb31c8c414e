// memory/memnet/synthesizer.cpp — see synthesizer.h.
#include "memory/memnet/synthesizer.h"

#include <cmath>

#include "autograd/ops.h"
#include "autograd/tape.h"

namespace engram::memnet {

MemorySynthesizer::MemorySynthesizer(int64_t width, int64_t heads, double gate_init, Generator* gen)
    : gamma(register_parameter("gamma", full({1}, std::atanh(gate_init)))) {
  ENGRAM_CHECK(heads >= 1 && width % heads == 0, "memnet: the synthesizer's heads ({}) must divide "
               "the slot width ({})", heads, width);
  ENGRAM_CHECK(gate_init > -1 && gate_init < 1, "memnet: dream_gate must be in (-1, 1), got {}",
               gate_init);
  norm = register_module("norm", std::make_shared<nn::LayerNorm>(width));
  attn = register_module("attn", std::make_shared<nn::MultiHeadAttention>(width, heads, true, 0.0, gen));
}

double MemorySynthesizer::gate() const { return std::tanh(to_dtype(gamma, DType::f64).item()); }

Tensor MemorySynthesizer::forward(const Tensor& slots, double* relative_change) {
  Tensor n = norm->forward(slots);
  Tensor delta = mul(tanh(gamma), attn->forward(n, n, n).output);
  Tensor out = add(slots, delta);
  if (relative_change) {
    NoGradGuard ng;
    Tensor num = sqrt(sum(square(delta), {1, 2})), den = sqrt(sum(square(slots), {1, 2}));
    *relative_change = to_dtype(mean(div(num, add(den, 1e-12))), DType::f64).item();
  }
  return out;
}

}  // namespace engram::memnet
