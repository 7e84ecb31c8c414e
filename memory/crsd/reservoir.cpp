// memory/crsd/reservoir.cpp — see reservoir.h.
#include "memory/crsd/reservoir.h"

#include "nn/init.h"

namespace engram::memory {

Reservoir::Reservoir(int64_t in, ReservoirOptions opt, Generator* gen)
    : w_in(register_buffer("w_in", empty({opt.size, in}))),
      w_res(register_buffer("w_res", empty({opt.size, opt.size}))), input_size(in), options(opt) {
  ENGRAM_CHECK(opt.size > 0 && opt.spectral_radius > 0 && opt.spectral_radius < 1 && opt.leak > 0 &&
                   opt.leak <= 1,
               "Reservoir: need size > 0, spectral_radius in (0, 1), leak in (0, 1]; got size={} "
               "spectral_radius={} leak={}", opt.size, opt.spectral_radius, opt.leak);
  nn::init::uniform_(w_in, -opt.input_scale, opt.input_scale, gen);
  nn::init::orthogonal_(w_res, opt.spectral_radius, gen);
}

Tensor Reservoir::forward(const Tensor& u, Tensor& state) const {
  ENGRAM_CHECK(u.dim() == 3 && u.shape()[2] == input_size,
               "Reservoir: expected input [B, T, {}], got {}", input_size, shape_str(u.shape()));
  const int64_t T = u.shape()[1];
  Tensor w_in_t = transpose(to_dtype(w_in, u.dtype()), 0, 1);
  // drive[b, t] = W_in u[b, t] for every step at once: [B, T, C] @ [C, R]
  Tensor drive = matmul(u, w_in_t);
  // The recurrence is one fused op (autograd/recurrent_ops.cpp): one gemm and the leaky update
  // per step on raw kernels, one tape node for all T steps.
  Tensor states = reservoir_scan(drive, to_dtype(w_res, u.dtype()), state, options.leak);
  state = select(states, 1, T - 1);
  return states;
}

std::string Reservoir::extra_repr() const {
  return fmt::format("{} -> {}, spectral_radius={}, leak={}", input_size, options.size,
                     options.spectral_radius, options.leak);
}

}  // namespace engram::memory
