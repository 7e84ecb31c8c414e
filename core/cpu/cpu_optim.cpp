// core/cpu/cpu_optim.cpp — the fused optimizer steps on the CPU: one pass over p, g and the state.
//
// nn/optim.cpp computes the step's scalars (bias corrections, decay) in double, as PyTorch's
// Python code does, and calls these through the kernel table, so every device runs the same
// statements (cuda/cuda_optim.cu is the GPU's twin). Each line below is the PyTorch 1.13
// statement beside it. The loops are templates on the variant flags, so the body has no branches
// and vectorises (-O3 -fno-math-errno: std::sqrt is then one vector instruction).
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/backend.h"

namespace engram::cpu {

// Below this many elements a parameter is updated by one thread (thread start-up costs more).
static constexpr int64_t kParallelMin = 1 << 15;

static void check_state(Tref p, Tref t, const char* op, const char* what) {
  ENGRAM_CHECK(t.is_contiguous() && t.numel() == p.numel() && t.dtype() == p.dtype() &&
                   t.device() == p.device(),
               "{}: {} must be a contiguous {} tensor of {} elements on {} like the parameter "
               "(got {} {} on {})",
               op, what, dtype_name(p.dtype()), p.numel(), device_name(p.device()),
               dtype_name(t.dtype()), shape_str(t.shape()), device_name(t.device()));
}

// ---------------------------------------------------------------- SGD
// buf is null without momentum; `first` marks the step that initialises buf (buf = d).
template <typename T>
static void sgd_loop(int64_t n, T* p, const T* g, T* buf, const SgdStepArgs& a) {
  const T wd = T(a.weight_decay), mom = T(a.momentum), keep = T(1 - a.dampening);
  const T neg_lr = T(-a.lr);
  const bool nesterov = a.nesterov, first = a.first;
#pragma omp parallel for if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    T d = g[i];
    if (wd != 0) d = d + wd * p[i];  // d_p.add(param, alpha=weight_decay)
    if (buf) {
      buf[i] = first ? d : buf[i] * mom + keep * d;  // buf.mul_(momentum).add_(d_p, alpha=1-damp)
      d = nesterov ? d + mom * buf[i] : buf[i];
    }
    p[i] = p[i] + neg_lr * d;  // param.add_(d_p, alpha=-lr)
  }
}

static void sgd_step(Tref p, Tref g, Tref buf, const SgdStepArgs& a) {
  ENGRAM_CHECK(p.is_contiguous(), "SGD step: the parameter must be contiguous");
  check_state(p, g, "SGD step", "the gradient");
  if (buf.defined()) check_state(p, buf, "SGD step", "momentum_buffer");
  ENGRAM_DISPATCH_FLOAT(p.dtype(), "SGD", [&] {
    sgd_loop<scalar_t>(p.numel(), p.data<scalar_t>(), g.data<scalar_t>(),
                       buf.defined() ? buf.data<scalar_t>() : nullptr, a);
  });
}

// ---------------------------------------------------------------- Adam, AdamW
template <typename T, bool kDecoupled, bool kL2, bool kAmsgrad>
static void adam_loop(int64_t n, T* __restrict p, const T* __restrict g, T* __restrict m,
                      T* __restrict v, T* __restrict vmax, T b1, T one_minus_b1, T b2, T one_minus_b2,
                      T eps, T wd, T decay, T neg_step_size, T bias_correction2_sqrt) {
#pragma omp parallel for simd if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    T gi = g[i];
    if constexpr (kDecoupled) p[i] = p[i] * decay;  // AdamW: param.mul_(1 - lr * weight_decay)
    if constexpr (kL2) gi = gi + wd * p[i];         // Adam: grad = grad.add(param, alpha=weight_decay)
    m[i] = m[i] * b1 + one_minus_b1 * gi;         // exp_avg.mul_(beta1).add_(grad, alpha=1-beta1)
    v[i] = v[i] * b2 + one_minus_b2 * gi * gi;    // exp_avg_sq.mul_(beta2).addcmul_(g, g, 1-beta2)
    T second = v[i];
    if constexpr (kAmsgrad) second = vmax[i] = std::max(vmax[i], v[i]);  // torch.maximum(max_exp_avg_sq, v)
    T denom = std::sqrt(second) / bias_correction2_sqrt + eps;
    p[i] = p[i] + neg_step_size * (m[i] / denom);  // param.addcdiv_(exp_avg, denom, -step_size)
  }
}

template <typename T>
static void adam_typed(int64_t n, T* p, const T* g, T* m, T* v, T* vmax, const AdamStepArgs& a) {
  const T b1 = T(a.beta1), one_minus_b1 = T(1 - a.beta1);
  const T b2 = T(a.beta2), one_minus_b2 = T(1 - a.beta2);
  const T eps = T(a.eps), wd = T(a.weight_decay), decay = T(a.decay);
  const T neg_step_size = T(a.neg_step_size), bias_correction2_sqrt = T(a.bias_correction2_sqrt);
  auto run = [&](auto decoupled_c, auto l2_c, auto amsgrad_c) {
    adam_loop<T, decltype(decoupled_c)::value, decltype(l2_c)::value, decltype(amsgrad_c)::value>(
        n, p, g, m, v, vmax, b1, one_minus_b1, b2, one_minus_b2, eps, wd, decay, neg_step_size,
        bias_correction2_sqrt);
  };
  auto with_amsgrad = [&](auto d, auto l2) {
    if (vmax) run(d, l2, std::true_type{});
    else run(d, l2, std::false_type{});
  };
  if (a.decoupled) with_amsgrad(std::true_type{}, std::false_type{});
  else if (wd != 0) with_amsgrad(std::false_type{}, std::true_type{});
  else with_amsgrad(std::false_type{}, std::false_type{});
}

static void adam_step(Tref p, Tref g, Tref m, Tref v, Tref vmax, const AdamStepArgs& a) {
  const char* op = a.decoupled ? "AdamW step" : "Adam step";
  ENGRAM_CHECK(p.is_contiguous(), "{}: the parameter must be contiguous", op);
  check_state(p, g, op, "the gradient");
  check_state(p, m, op, "exp_avg");
  check_state(p, v, op, "exp_avg_sq");
  if (vmax.defined()) check_state(p, vmax, op, "max_exp_avg_sq");
  ENGRAM_DISPATCH_FLOAT(p.dtype(), op, [&] {
    adam_typed<scalar_t>(p.numel(), p.data<scalar_t>(), g.data<scalar_t>(), m.data<scalar_t>(),
                         v.data<scalar_t>(), vmax.defined() ? vmax.data<scalar_t>() : nullptr, a);
  });
}

void register_optim(Backend& b) {
  b.adam_step = adam_step;
  b.sgd_step = sgd_step;
}

}  // namespace engram::cpu
