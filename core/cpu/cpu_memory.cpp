// core/cpu/cpu_memory.cpp — fused kernels for the memory modules (memory/).
//
// Hebbian scan, per batch element b (all loops over the dk x dv state are row-wise so the inner
// j-loop runs over contiguous dv and vectorises):
//   forward   H_t = gamma H_{t-1} + eta k_t v_t^T ;  r_t = H_t^T q_t
//   backward  with dH the gradient reaching H_t (dH_T = dh_last):
//             dH   += q_t dr_t^T            (from r_t)
//             dq_t  = H_t dr_t
//             dk_t  = eta dH v_t ,  dv_t = eta dH^T k_t
//             dgamma += <dH, H_{t-1}> ,  deta += k_t^T dH v_t
//             dH    <- gamma dH             (into H_{t-1}; 0 when the memory is detached)
// The backward needs H_{t-1} at every step. Storing all T states would cost T*dk*dv per batch
// element; instead the forward saves the state entering each chunk of `chunk` steps and the
// backward recomputes one chunk at a time: memory (T/chunk + chunk) * dk * dv per element.
// (Running the recurrence backwards, H_{t-1} = (H_t - eta k v^T)/gamma, would need no storage but
// divides by gamma at every step and loses all precision for small gamma.)
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/backend.h"
#include "core/cpu/kernel_checks.h"
#include "core/cpu/vmath.h"

namespace engram::cpu {

// One batch element's forward (the loops below run over its dk x dv state). Compiled for SSE2 and
// AVX2 + FMA (ENGRAM_SIMD_CLONES, core/cpu/vmath.h), as is the backward.
template <typename T>
ENGRAM_SIMD_CLONES static void hebbian_forward_one(const T* q, const T* k, const T* v, T gamma, T eta,
                                                   const T* h0, int64_t b, int64_t Tn, int64_t dk,
                                                   int64_t dv, int64_t chunk, T* r, T* h_last, T* ckpt) {
  const int64_t S = dk * dv, n_chunks = (Tn + chunk - 1) / chunk;
  T* H = h_last + b * S;  // the running state lives in the output buffer
  std::memcpy(H, h0 + b * S, S * sizeof(T));
  for (int64_t t = 0; t < Tn; ++t) {
    if (t % chunk == 0) std::memcpy(ckpt + (b * n_chunks + t / chunk) * S, H, S * sizeof(T));
    const T* kt = k + (b * Tn + t) * dk;
    const T* qt = q + (b * Tn + t) * dk;
    const T* vt = v + (b * Tn + t) * dv;
    T* rt = r + (b * Tn + t) * dv;
    std::fill(rt, rt + dv, T(0));
    for (int64_t i = 0; i < dk; ++i) {
      T* row = H + i * dv;
      const T ek = eta * kt[i], qi = qt[i];
#pragma omp simd
      for (int64_t j = 0; j < dv; ++j) {
        row[j] = gamma * row[j] + ek * vt[j];
        rt[j] += qi * row[j];
      }
    }
  }
}

template <typename T>
static void hebbian_forward_typed(const T* q, const T* k, const T* v, T gamma, T eta, const T* h0,
                                  int64_t B, int64_t Tn, int64_t dk, int64_t dv, int64_t chunk,
                                  T* r, T* h_last, T* ckpt) {
#pragma omp parallel for schedule(static) if (B * Tn * dk * dv > (1 << 15))
  for (int64_t b = 0; b < B; ++b)
    hebbian_forward_one<T>(q, k, v, gamma, eta, h0, b, Tn, dk, dv, chunk, r, h_last, ckpt);
}

template <typename T>
ENGRAM_SIMD_CLONES static void hebbian_backward_one(const T* q, const T* k, const T* v, T gamma, T eta,
                                                    const T* ckpt, int64_t b, int64_t Tn, int64_t dk,
                                                    int64_t dv, int64_t chunk, const T* dr,
                                                    const T* dh_last, bool detach, T* dq, T* dkk,
                                                    T* dvv, T* dh0, double& dgamma, double& deta) {
  const int64_t S = dk * dv, n_chunks = (Tn + chunk - 1) / chunk;
  std::vector<T> states((chunk + 1) * S);
  T* dH = dh0 + b * S;  // the running gradient lives in the dh0 output buffer
  if (dh_last) std::memcpy(dH, dh_last + b * S, S * sizeof(T));
  else std::fill(dH, dH + S, T(0));
  for (int64_t c = n_chunks - 1; c >= 0; --c) {
    const int64_t start = c * chunk, len = std::min(chunk, Tn - start);
    // Recompute H_{start-1} .. H_{start+len-1} into states[0..len].
    std::memcpy(states.data(), ckpt + (b * n_chunks + c) * S, S * sizeof(T));
    for (int64_t s = 0; s < len; ++s) {
      const T* kt = k + (b * Tn + start + s) * dk;
      const T* vt = v + (b * Tn + start + s) * dv;
      const T* prev = states.data() + s * S;
      T* next = states.data() + (s + 1) * S;
      for (int64_t i = 0; i < dk; ++i)
        for (int64_t j = 0; j < dv; ++j)
          next[i * dv + j] = gamma * prev[i * dv + j] + eta * kt[i] * vt[j];
    }
    for (int64_t s = len - 1; s >= 0; --s) {
      const int64_t t = start + s;
      const T* qt = q + (b * Tn + t) * dk;
      const T* kt = k + (b * Tn + t) * dk;
      const T* vt = v + (b * Tn + t) * dv;
      const T* drt = dr + (b * Tn + t) * dv;
      const T* Ht = states.data() + (s + 1) * S;
      const T* Hp = states.data() + s * S;
      T* dqt = dq + (b * Tn + t) * dk;
      T* dkt = dkk + (b * Tn + t) * dk;
      T* dvt = dvv + (b * Tn + t) * dv;
      std::fill(dvt, dvt + dv, T(0));
      for (int64_t i = 0; i < dk; ++i) {
        T* dh = dH + i * dv;
        const T* h = Ht + i * dv;
        const T* hp = Hp + i * dv;
        const T qi = qt[i], eki = eta * kt[i];
        const T carry = detach ? T(0) : gamma;  // what of dH flows on into H_{t-1}
        T dq_i = 0, dHv = 0, g_acc = 0;
        // simd reduction: lets the three dot products run in vector lanes (without it the
        // compiler keeps their left-to-right order and this loop, 60% of the bench's
        // hebbian step, runs one element at a time)
#pragma omp simd reduction(+ : dq_i, dHv, g_acc)
        for (int64_t j = 0; j < dv; ++j) {
          dh[j] += qi * drt[j];
          dq_i += h[j] * drt[j];
          dHv += dh[j] * vt[j];
          dvt[j] += eki * dh[j];
          g_acc += dh[j] * hp[j];
          dh[j] = carry * dh[j];
        }
        dqt[i] = dq_i;
        dkt[i] = eta * dHv;
        dgamma += g_acc;
        deta += kt[i] * dHv;
      }
    }
  }
}

template <typename T>
static void hebbian_backward_typed(const T* q, const T* k, const T* v, T gamma, T eta, const T* ckpt,
                                   int64_t B, int64_t Tn, int64_t dk, int64_t dv, int64_t chunk,
                                   const T* dr, const T* dh_last, bool detach, T* dq, T* dkk, T* dvv,
                                   T* dh0, double* dgamma_out, double* deta_out) {
  double dgamma = 0, deta = 0;
#pragma omp parallel for schedule(static) reduction(+ : dgamma, deta) if (B * Tn * dk * dv > (1 << 15))
  for (int64_t b = 0; b < B; ++b)
    hebbian_backward_one<T>(q, k, v, gamma, eta, ckpt, b, Tn, dk, dv, chunk, dr, dh_last, detach, dq,
                            dkk, dvv, dh0, dgamma, deta);
  *dgamma_out += dgamma;
  *deta_out += deta;
}

static void hebbian_scan(Tref q, Tref k, Tref v, double gamma, double eta, Tref h0, int64_t chunk,
                         Tref r, Tref h_last, Tref ckpt) {
  check_contiguous({&q, &k, &v, &h0, &r, &h_last, &ckpt}, "hebbian_scan");
  int64_t B = q.shape()[0], Tn = q.shape()[1], dk = q.shape()[2], dv = v.shape()[2];
  ENGRAM_DISPATCH_FLOAT(q.dtype(), "hebbian_scan", [&] {
    using T = scalar_t;
    hebbian_forward_typed<T>(q.data<T>(), k.data<T>(), v.data<T>(), T(gamma), T(eta), h0.data<T>(),
                             B, Tn, dk, dv, chunk, r.data<T>(), h_last.data<T>(), ckpt.data<T>());
  });
}

static void hebbian_scan_backward(Tref q, Tref k, Tref v, double gamma, double eta, Tref ckpt,
                                  int64_t chunk, Tref dr, Tref dh_last, bool detach, Tref dq,
                                  Tref dk, Tref dv, Tref dh0, Tref grads) {
  check_contiguous({&q, &k, &v, &ckpt, &dr, &dh_last, &dq, &dk, &dv, &dh0}, "hebbian_scan_backward");
  int64_t B = q.shape()[0], Tn = q.shape()[1], dkn = q.shape()[2], dvn = v.shape()[2];
  double* g = grads.data<double>();
  ENGRAM_DISPATCH_FLOAT(q.dtype(), "hebbian_scan_backward", [&] {
    using T = scalar_t;
    hebbian_backward_typed<T>(q.data<T>(), k.data<T>(), v.data<T>(), T(gamma), T(eta), ckpt.data<T>(),
                              B, Tn, dkn, dvn, chunk, dr.data<T>(),
                              dh_last.defined() ? dh_last.data<T>() : nullptr, detach, dq.data<T>(),
                              dk.data<T>(), dv.data<T>(), dh0.data<T>(), g, g + 1);
  });
}

void register_memory(Backend& b) {
  b.hebbian_scan = hebbian_scan;
  b.hebbian_scan_backward = hebbian_scan_backward;
}

}  // namespace engram::cpu
