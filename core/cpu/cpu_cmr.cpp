// core/cpu/cpu_cmr.cpp — the fused context-drift kernel of episodic CMR (memory/cmr/episodic_cmr.h).
//
// Forward, per row b (a batch element and head) and step t, with D context units:
//   d_t   = c_{t-1} . cin_t
//   s_t   = sqrt(1 + beta_t^2 (d_t^2 - 1))
//   rho_t = s_t - beta_t d_t
//   c_t   = rho_t c_{t-1} + beta_t cin_t                    (unit length if c_{t-1}, cin_t are)
// Backward, walking t downwards with g = the gradient reaching c_t (its own dc_t plus what c_{t+1}
// sent back):
//   drho   = g . c_{t-1}                 dbeta_t = g . cin_t + drho * (beta (d^2 - 1) / s - d)
//   dd     = drho * (beta^2 d / s - beta)
//   dcin_t = beta g + dd c_{t-1}         g_{t-1} += rho g + dd cin_t
// s >= sqrt(1 - beta^2) > 0 for beta < 1, so the division is safe inside the model's (0, 1).
// Every c_t is an output, so the backward needs no recomputation and no checkpoints.
#include <cmath>
#include <cstring>
#include <vector>

#include "core/backend.h"
#include "core/cpu/kernel_checks.h"
#include "core/flops.h"

namespace engram::cpu {

namespace {

template <typename T>
void drift_forward(const T* cin, const T* beta, const T* c0, int64_t B, int64_t Tn, int64_t D,
                   T* c) {
  flops::add(B * Tn * (5 * D + 8));  // per row and step: the loop below (core/flops.h)
#pragma omp parallel for schedule(static) if (B * Tn * D > (1 << 15))
  for (int64_t b = 0; b < B; ++b) {
    const T* prev = c0 + b * D;
    for (int64_t t = 0; t < Tn; ++t) {
      const T* in = cin + (b * Tn + t) * D;
      T* out = c + (b * Tn + t) * D;
      const T be = beta[b * Tn + t];
      T d = 0;
      for (int64_t i = 0; i < D; ++i) d += prev[i] * in[i];
      const T rho = std::sqrt(T(1) + be * be * (d * d - T(1))) - be * d;
      for (int64_t i = 0; i < D; ++i) out[i] = rho * prev[i] + be * in[i];
      prev = out;
    }
  }
}

template <typename T>
void drift_backward(const T* cin, const T* beta, const T* c0, const T* c, const T* dc, int64_t B,
                    int64_t Tn, int64_t D, T* dcin, T* dbeta, T* dc0) {
#pragma omp parallel for schedule(static) if (B * Tn * D > (1 << 15))
  for (int64_t b = 0; b < B; ++b) {
    std::vector<T> g(D, T(0)), g_prev(D);
    for (int64_t t = Tn - 1; t >= 0; --t) {
      const int64_t row = (b * Tn + t) * D;
      const T* prev = t > 0 ? c + row - D : c0 + b * D;
      const T* in = cin + row;
      const T be = beta[b * Tn + t];
      for (int64_t i = 0; i < D; ++i) g[i] += dc[row + i];
      T d = 0, drho = 0, dbe = 0;
      for (int64_t i = 0; i < D; ++i) {
        d += prev[i] * in[i];
        drho += g[i] * prev[i];
        dbe += g[i] * in[i];
      }
      const T s = std::sqrt(T(1) + be * be * (d * d - T(1))), rho = s - be * d;
      const T dd = drho * (be * be * d / s - be);
      dbeta[b * Tn + t] = dbe + drho * (be * (d * d - T(1)) / s - d);
      for (int64_t i = 0; i < D; ++i) {
        dcin[row + i] = be * g[i] + dd * prev[i];
        g_prev[i] = rho * g[i] + dd * in[i];
      }
      g.swap(g_prev);
    }
    std::memcpy(dc0 + b * D, g.data(), D * sizeof(T));
  }
}

void cmr_drift_scan(Tref cin, Tref beta, Tref c0, Tref c) {
  check_contiguous({&cin, &beta, &c0, &c}, "cmr_drift_scan");
  const int64_t B = cin.shape()[0], Tn = cin.shape()[1], D = cin.shape()[2];
  ENGRAM_DISPATCH_FLOAT(cin.dtype(), "cmr_drift_scan", [&] {
    using T = scalar_t;
    drift_forward<T>(cin.data<T>(), beta.data<T>(), c0.data<T>(), B, Tn, D, c.data<T>());
  });
}

void cmr_drift_scan_backward(Tref cin, Tref beta, Tref c0, Tref c, Tref dc, Tref dcin, Tref dbeta,
                             Tref dc0) {
  check_contiguous({&cin, &beta, &c0, &c, &dc, &dcin, &dbeta, &dc0}, "cmr_drift_scan_backward");
  const int64_t B = cin.shape()[0], Tn = cin.shape()[1], D = cin.shape()[2];
  ENGRAM_DISPATCH_FLOAT(cin.dtype(), "cmr_drift_scan_backward", [&] {
    using T = scalar_t;
    drift_backward<T>(cin.data<T>(), beta.data<T>(), c0.data<T>(), c.data<T>(), dc.data<T>(), B, Tn,
                      D, dcin.data<T>(), dbeta.data<T>(), dc0.data<T>());
  });
}

}  // namespace

void register_cmr(Backend& b) {
  b.cmr_drift_scan = cmr_drift_scan;
  b.cmr_drift_scan_backward = cmr_drift_scan_backward;
}

}  // namespace engram::cpu
