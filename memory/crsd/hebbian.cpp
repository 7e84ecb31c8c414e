// memory/crsd/hebbian.cpp — see hebbian.h.
#include "memory/crsd/hebbian.h"

#include <cmath>

namespace engram::memory {

HebbianMemory::HebbianMemory(int64_t dk, int64_t dv, HebbianOptions opt)
    : gamma_logit(register_parameter(
          "gamma_logit", full({}, std::log(opt.gamma_init / (1 - opt.gamma_init))))),
      eta_raw(register_parameter("eta_raw", full({}, std::log(std::expm1(opt.eta_init))))),
      d_k(dk), d_v(dv), options(opt) {
  ENGRAM_CHECK(opt.gamma_init > 0 && opt.gamma_init < 1,
               "HebbianMemory: gamma_init must be in (0, 1), got {}", opt.gamma_init);
  ENGRAM_CHECK(opt.eta_init > 0, "HebbianMemory: eta_init must be positive, got {}", opt.eta_init);
  ENGRAM_CHECK(opt.top_k >= 0 && opt.top_k <= dv, "HebbianMemory: top_k {} out of range [0, {}]",
               opt.top_k, dv);
}

Tensor HebbianMemory::gamma() const { return sigmoid(gamma_logit); }
Tensor HebbianMemory::eta() const { return softplus(eta_raw); }

Tensor HebbianMemory::initial_state(int64_t batch, DType dtype) const {
  return zeros({batch, d_k, d_v}, dtype, gamma_logit.device());
}

Tensor keep_top_k_magnitude(const Tensor& x, int64_t k) {
  Tensor idx = topk(detach(abs(x)), k, -1, true).indices;
  Tensor mask;
  {
    NoGradGuard ng;
    mask = scatter_add(zeros_like(x), -1, idx, ones(idx.shape(), x.dtype(), x.device()));
  }
  return mul(x, mask);
}

HebbianMemory::Output HebbianMemory::forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const Tensor& state) {
  ENGRAM_CHECK(q.dim() == 3 && q.shape()[2] == d_k && k.shape() == q.shape() && v.dim() == 3 &&
                   v.shape()[2] == d_v && v.shape()[1] == q.shape()[1],
               "HebbianMemory: expected q, k [B, T, {}] and v [B, T, {}], got q {} k {} v {}", d_k,
               d_v, shape_str(q.shape()), shape_str(k.shape()), shape_str(v.shape()));
  Tensor qn = normalize(q, -1, options.eps), kn = normalize(k, -1, options.eps);
  HebbianScan s = hebbian_scan(qn, kn, v, to_dtype(gamma(), q.dtype()), to_dtype(eta(), q.dtype()),
                               state, options.detach_memory, options.chunk);
  Tensor recall = options.top_k > 0 ? keep_top_k_magnitude(s.recall, options.top_k) : s.recall;
  return {note_output(recall), s.state};
}

std::string HebbianMemory::extra_repr() const {
  return fmt::format("d_k={}, d_v={}, top_k={}, detach_memory={}", d_k, d_v, options.top_k,
                     options.detach_memory);
}

}  // namespace engram::memory
