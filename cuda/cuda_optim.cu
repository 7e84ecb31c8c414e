// cuda/cuda_optim.cu — the fused optimizer steps on the GPU: one pass over p, g and the state.
//
// The same statements, in the same order and precision, as nn/optim.cpp's CPU loops (each is the
// PyTorch 1.13 line beside it there):
//   Adam(W):  p *= 1 - lr wd (AdamW) | g += wd p (Adam, wd != 0);  m = b1 m + (1 - b1) g;
//             v = b2 v + (1 - b2) g^2;  v^ = max(vmax, v) (amsgrad);
//             p += -lr / (1 - b1^t) * m / (sqrt(v^) / sqrt(1 - b2^t) + eps)
//   SGD:      d = g + wd p;  buf = d (first) | momentum buf + (1 - dampening) d;
//             d = nesterov ? d + momentum buf : buf;  p += -lr d
// The scalars arrive computed in double (AdamStepArgs, SgdStepArgs) and are cast to the tensor
// type once, as the CPU loop does, so f32 results agree with the CPU to rounding.
#include "cuda/common.cuh"

namespace engram::cuda {

static void check_state(Tref p, Tref t, const char* op, const char* what) {
  require_contiguous(t, op, what);
  ENGRAM_CHECK(t.numel() == p.numel() && t.dtype() == p.dtype(),
               "{}: {} is {} with {} elements, the parameter {} with {}", op, what,
               dtype_name(t.dtype()), t.numel(), dtype_name(p.dtype()), p.numel());
}

template <typename T>
static void adam_typed(Tref p_, Tref g_, Tref m_, Tref v_, Tref vmax_, const AdamStepArgs& a) {
  T* p = static_cast<T*>(p_.raw_data());
  const T* g = static_cast<const T*>(g_.raw_data());
  T* m = static_cast<T*>(m_.raw_data());
  T* v = static_cast<T*>(v_.raw_data());
  T* vmax = vmax_.defined() ? static_cast<T*>(vmax_.raw_data()) : nullptr;
  const T b1 = T(a.beta1), omb1 = T(1 - a.beta1), b2 = T(a.beta2), omb2 = T(1 - a.beta2);
  const T eps = T(a.eps), wd = T(a.weight_decay), decay = T(a.decay);
  const T neg_step = T(a.neg_step_size), bc2_sqrt = T(a.bias_correction2_sqrt);
  const bool decoupled = a.decoupled, l2 = !a.decoupled && a.weight_decay != 0;
  for_each_index(
      p_.numel(),
      [=] __device__(int64_t i) {
        T gi = g[i];
        if (decoupled) p[i] = p[i] * decay;
        if (l2) gi = gi + wd * p[i];
        m[i] = m[i] * b1 + omb1 * gi;
        v[i] = v[i] * b2 + omb2 * gi * gi;
        T second = v[i];
        if (vmax) second = vmax[i] = vmax[i] > v[i] ? vmax[i] : v[i];
        T denom = sqrt(second) / bc2_sqrt + eps;
        p[i] = p[i] + neg_step * (m[i] / denom);
      },
      "adam_step");
}

static void adam_step(Tref p, Tref g, Tref m, Tref v, Tref vmax, const AdamStepArgs& a) {
  const char* op = a.decoupled ? "AdamW step" : "Adam step";
  require_contiguous(p, op, "parameter");
  check_state(p, g, op, "gradient");
  check_state(p, m, op, "exp_avg");
  check_state(p, v, op, "exp_avg_sq");
  if (vmax.defined()) check_state(p, vmax, op, "max_exp_avg_sq");
  ENGRAM_DISPATCH_FLOAT(p.dtype(), op, [&] { adam_typed<scalar_t>(p, g, m, v, vmax, a); });
}

template <typename T> static void sgd_typed(Tref p_, Tref g_, Tref buf_, const SgdStepArgs& a) {
  T* p = static_cast<T*>(p_.raw_data());
  const T* g = static_cast<const T*>(g_.raw_data());
  T* buf = buf_.defined() ? static_cast<T*>(buf_.raw_data()) : nullptr;
  const T wd = T(a.weight_decay), mom = T(a.momentum), keep = T(1 - a.dampening);
  const T neg_lr = T(-a.lr);
  const bool nesterov = a.nesterov, first = a.first;
  for_each_index(
      p_.numel(),
      [=] __device__(int64_t i) {
        T d = g[i];
        if (wd != T(0)) d = d + wd * p[i];
        if (buf) {
          buf[i] = first ? d : buf[i] * mom + keep * d;
          d = nesterov ? d + mom * buf[i] : buf[i];
        }
        p[i] = p[i] + neg_lr * d;
      },
      "sgd_step");
}

static void sgd_step(Tref p, Tref g, Tref buf, const SgdStepArgs& a) {
  require_contiguous(p, "SGD step", "parameter");
  check_state(p, g, "SGD step", "gradient");
  if (buf.defined()) check_state(p, buf, "SGD step", "momentum_buffer");
  ENGRAM_DISPATCH_FLOAT(p.dtype(), "SGD step", [&] { sgd_typed<scalar_t>(p, g, buf, a); });
}

void register_optim(Backend& b) {
  b.adam_step = adam_step;
  b.sgd_step = sgd_step;
}

}  // namespace engram::cuda
