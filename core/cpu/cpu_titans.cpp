// core/cpu/cpu_titans.cpp — fused kernels of the Titans neural memory (Behrouz, Zhong & Mirrokni
// 2024, "Titans: Learning to Memorize at Test Time", arXiv:2501.00663), depth 1: the memory is one
// matrix M [dv, dk] that learns the associative loss ||M k_t - v_t||^2 while the sequence is read.
//
// Per batch element, tokens in chunks of `chunk` (the last one may be shorter), M0_c = M entering
// chunk c (the paper's mini-batch gradient descent: every gradient of a chunk is taken at the
// weights the chunk started with, so they can be computed in parallel on a GPU):
//   forward   y_t = M_{t-1} q_t                          (retrieve before writing token t)
//             e_t = 2 (M0_c k_t - v_t)                   (grad of the loss wrt M is e_t k_t^T)
//             S_t = eta_t S_{t-1} - theta_t e_t k_t^T     (momentum = "surprise")
//             M_t = (1 - alpha_t) M_{t-1} + S_t           (weight decay = forgetting)
//   backward  dM = adjoint of M_t, dS = adjoint of S_t (dM_{T-1} = dm_last, dS_{T-1} = ds_last);
//             walking t from last to first in a chunk, with dM0 the chunk's adjoint of M0_c:
//             dS      += dM                   dalpha_t = -<dM, M_{t-1}>
//             deta_t   = <dS, S_{t-1}>        dtheta_t = -e_t^T dS k_t
//             de_t     = -theta_t dS k_t      dk_t     = -theta_t dS^T e_t + 2 M0_c^T de_t
//             dM0     += 2 de_t k_t^T         dv_t     = -2 de_t
//             dq_t     = M_{t-1}^T dy_t
//             dS      <- eta_t dS             dM       <- (1 - alpha_t) dM + dy_t q_t^T
//             and at the chunk's first token dM += dM0 (M0_c is M_{t0-1}, the same tensor).
//   Since e_t depends on M0_c, which depends on every earlier token, the dM0 term carries the
//   second-order path (the gradient of a gradient step) back to earlier chunks; with chunk = 1 it
//   is the exact token-by-token rule and dM0 is folded in every step.
// Memory: like hebbian_scan (cpu_memory.cpp) the forward saves (M, S) entering every chunk and
// the backward recomputes one chunk's states from them: (2 T/chunk + 2 chunk) * dv * dk per
// batch element instead of 2 T dv dk. Every loop over the [dv, dk] matrices runs row by row, so
// the inner loop walks contiguous dk and vectorises.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/backend.h"
#include "core/flops.h"

namespace engram::cpu {

// All pointers contiguous; s0 may be null (zeros). Row i of a [dv, dk] matrix is X + i * dk.
template <typename T>
static void titans_forward_typed(const T* q, const T* k, const T* v, const T* theta, const T* eta,
                                 const T* alpha, const T* m0, const T* s0, int64_t B, int64_t Tn,
                                 int64_t dk, int64_t dv, int64_t chunk, T* y, T* m_last, T* s_last,
                                 T* ckpt_m, T* ckpt_s) {
  const int64_t S = dv * dk, n_chunks = (Tn + chunk - 1) / chunk;
  flops::add(B * Tn * (dv * (9 * dk + 3) + 1));  // per token: the loop below (core/flops.h)
#pragma omp parallel for schedule(static) if (B * Tn * S > (1 << 15))
  for (int64_t b = 0; b < B; ++b) {
    T* M = m_last + b * S;   // the running memory and momentum live in the output buffers
    T* Sm = s_last + b * S;
    std::memcpy(M, m0 + b * S, S * sizeof(T));
    if (s0) std::memcpy(Sm, s0 + b * S, S * sizeof(T));
    else std::fill(Sm, Sm + S, T(0));
    const T* M0 = nullptr;  // the chunk's starting weights: its checkpoint, which stays put
    for (int64_t t = 0; t < Tn; ++t) {
      if (t % chunk == 0) {
        T* cm = ckpt_m + (b * n_chunks + t / chunk) * S;
        std::memcpy(cm, M, S * sizeof(T));
        std::memcpy(ckpt_s + (b * n_chunks + t / chunk) * S, Sm, S * sizeof(T));
        M0 = cm;
      }
      const int64_t bt = b * Tn + t;
      const T* qt = q + bt * dk;
      const T* kt = k + bt * dk;
      const T* vt = v + bt * dv;
      const T th = theta[bt], et = eta[bt], keep = T(1) - alpha[bt];
      T* yt = y + bt * dv;
      // Rows are independent: row i of y_t and e_t needs only row i of M_{t-1} and M0_c, so each
      // row is read and then overwritten with its update in one pass.
      for (int64_t i = 0; i < dv; ++i) {
        T* mrow = M + i * dk;
        T* srow = Sm + i * dk;
        const T* m0row = M0 + i * dk;
        T yi = 0, pred = 0;
        for (int64_t j = 0; j < dk; ++j) {
          yi += mrow[j] * qt[j];
          pred += m0row[j] * kt[j];
        }
        yt[i] = yi;
        const T g = th * T(2) * (pred - vt[i]);  // theta_t e_t[i]
        for (int64_t j = 0; j < dk; ++j) {
          srow[j] = et * srow[j] - g * kt[j];
          mrow[j] = keep * mrow[j] + srow[j];
        }
      }
    }
  }
}

template <typename T>
static void titans_backward_typed(const T* q, const T* k, const T* v, const T* theta, const T* eta,
                                  const T* alpha, const T* ckpt_m, const T* ckpt_s, int64_t B,
                                  int64_t Tn, int64_t dk, int64_t dv, int64_t chunk, const T* dy,
                                  const T* dm_last, const T* ds_last, T* dq, T* dkk, T* dvv,
                                  T* dtheta, T* deta, T* dalpha, T* dm0, T* ds0) {
  const int64_t S = dv * dk, n_chunks = (Tn + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (B * Tn * S > (1 << 15))
  for (int64_t b = 0; b < B; ++b) {
    // Ms[s], Ss[s] = (M, S) entering token start + s; errs[s] = e_{start+s} (a chunk longer
    // than the sequence only ever holds T tokens)
    const int64_t cap = std::min(chunk, Tn);
    std::vector<T> Ms(cap * S), Ss(cap * S), errs(cap * dv), dM0(S);
    T* dM = dm0 + b * S;  // the running adjoints live in the dm0 / ds0 output buffers
    T* dS = ds0 + b * S;
    if (dm_last) std::memcpy(dM, dm_last + b * S, S * sizeof(T));
    else std::fill(dM, dM + S, T(0));
    if (ds_last) std::memcpy(dS, ds_last + b * S, S * sizeof(T));
    else std::fill(dS, dS + S, T(0));
    for (int64_t c = n_chunks - 1; c >= 0; --c) {
      const int64_t start = c * chunk, len = std::min(chunk, Tn - start);
      const T* M0 = ckpt_m + (b * n_chunks + c) * S;
      // Recompute the chunk: M_{t-1}, S_{t-1} and e_t for each of its tokens.
      std::memcpy(Ms.data(), M0, S * sizeof(T));
      std::memcpy(Ss.data(), ckpt_s + (b * n_chunks + c) * S, S * sizeof(T));
      for (int64_t s = 0; s < len; ++s) {
        const int64_t bt = b * Tn + start + s;
        const T* kt = k + bt * dk;
        const T* vt = v + bt * dv;
        T* e = errs.data() + s * dv;
        for (int64_t i = 0; i < dv; ++i) {
          T pred = 0;
          for (int64_t j = 0; j < dk; ++j) pred += M0[i * dk + j] * kt[j];
          e[i] = T(2) * (pred - vt[i]);
        }
        if (s + 1 == len) break;  // the chunk's last state is not needed by its backward
        const T th = theta[bt], et = eta[bt], keep = T(1) - alpha[bt];
        const T *mp = Ms.data() + s * S, *sp = Ss.data() + s * S;
        T *mn = Ms.data() + (s + 1) * S, *sn = Ss.data() + (s + 1) * S;
        for (int64_t i = 0; i < dv; ++i)
          for (int64_t j = 0; j < dk; ++j) {
            sn[i * dk + j] = et * sp[i * dk + j] - th * e[i] * kt[j];
            mn[i * dk + j] = keep * mp[i * dk + j] + sn[i * dk + j];
          }
      }
      std::fill(dM0.begin(), dM0.end(), T(0));
      for (int64_t s = len - 1; s >= 0; --s) {
        const int64_t bt = b * Tn + start + s;
        const T* qt = q + bt * dk;
        const T* kt = k + bt * dk;
        const T* dyt = dy + bt * dv;
        const T* e = errs.data() + s * dv;
        const T *Mp = Ms.data() + s * S, *Sp = Ss.data() + s * S;
        const T th = theta[bt], et = eta[bt], keep = T(1) - alpha[bt];
        T* dqt = dq + bt * dk;
        T* dkt = dkk + bt * dk;
        T* dvt = dvv + bt * dv;
        std::fill(dqt, dqt + dk, T(0));
        std::fill(dkt, dkt + dk, T(0));
        T da = 0, de_ta = 0, dth = 0;
        for (int64_t i = 0; i < dv; ++i) {
          T* dmr = dM + i * dk;
          T* dsr = dS + i * dk;
          T* dm0r = dM0.data() + i * dk;
          const T *mpr = Mp + i * dk, *spr = Sp + i * dk, *m0r = M0 + i * dk;
          // M_t = (1 - alpha) M_{t-1} + S_t, then S_t = eta S_{t-1} - theta e k^T (dS used before
          // its eta scaling, which makes it the adjoint of S_{t-1})
          T dSk = 0;
          for (int64_t j = 0; j < dk; ++j) {
            dsr[j] += dmr[j];
            da -= dmr[j] * mpr[j];
            de_ta += dsr[j] * spr[j];
            dSk += dsr[j] * kt[j];
            dkt[j] -= th * dsr[j] * e[i];
            dsr[j] *= et;
          }
          dth -= e[i] * dSk;
          const T de = -th * dSk;
          dvt[i] = T(-2) * de;
          // e_t = 2 (M0 k - v) and y_t = M_{t-1} q_t; then dM becomes the adjoint of M_{t-1}
          const T dyi = dyt[i];
          for (int64_t j = 0; j < dk; ++j) {
            dm0r[j] += T(2) * de * kt[j];
            dkt[j] += T(2) * m0r[j] * de;
            dqt[j] += mpr[j] * dyi;
            dmr[j] = keep * dmr[j] + dyi * qt[j];
          }
        }
        dalpha[bt] = da;
        deta[bt] = de_ta;
        dtheta[bt] = dth;
      }
      for (int64_t x = 0; x < S; ++x) dM[x] += dM0[x];  // M0_c is M_{start-1}
    }
  }
}

static void check_contig(std::initializer_list<const Tensor*> ts, const char* op) {
  for (const Tensor* t : ts)
    ENGRAM_CHECK(!t->defined() || t->is_contiguous(), "{}: kernel expects contiguous tensors, got {}",
                 op, shape_str(t->shape()));
}

static void titans_linear_memory(Tref q, Tref k, Tref v, Tref theta, Tref eta, Tref alpha, Tref m0,
                                 Tref s0, int64_t chunk, Tref y, Tref m_last, Tref s_last,
                                 Tref ckpt_m, Tref ckpt_s) {
  check_contig({&q, &k, &v, &theta, &eta, &alpha, &m0, &s0, &y, &m_last, &s_last, &ckpt_m, &ckpt_s},
               "titans_linear_memory");
  int64_t B = q.shape()[0], Tn = q.shape()[1], dk = q.shape()[2], dv = v.shape()[2];
  ENGRAM_DISPATCH_FLOAT(q.dtype(), "titans_linear_memory", [&] {
    using T = scalar_t;
    titans_forward_typed<T>(q.data<T>(), k.data<T>(), v.data<T>(), theta.data<T>(), eta.data<T>(),
                            alpha.data<T>(), m0.data<T>(), s0.defined() ? s0.data<T>() : nullptr, B,
                            Tn, dk, dv, chunk, y.data<T>(), m_last.data<T>(), s_last.data<T>(),
                            ckpt_m.data<T>(), ckpt_s.data<T>());
  });
}

static void titans_linear_memory_backward(Tref q, Tref k, Tref v, Tref theta, Tref eta, Tref alpha,
                                          Tref ckpt_m, Tref ckpt_s, int64_t chunk, Tref dy,
                                          Tref dm_last, Tref ds_last, Tref dq, Tref dk, Tref dv,
                                          Tref dtheta, Tref deta, Tref dalpha, Tref dm0, Tref ds0) {
  check_contig({&q, &k, &v, &theta, &eta, &alpha, &ckpt_m, &ckpt_s, &dy, &dm_last, &ds_last, &dq,
                &dk, &dv, &dtheta, &deta, &dalpha, &dm0, &ds0},
               "titans_linear_memory_backward");
  int64_t B = q.shape()[0], Tn = q.shape()[1], dkn = q.shape()[2], dvn = v.shape()[2];
  ENGRAM_DISPATCH_FLOAT(q.dtype(), "titans_linear_memory_backward", [&] {
    using T = scalar_t;
    titans_backward_typed<T>(q.data<T>(), k.data<T>(), v.data<T>(), theta.data<T>(), eta.data<T>(),
                             alpha.data<T>(), ckpt_m.data<T>(), ckpt_s.data<T>(), B, Tn, dkn, dvn,
                             chunk, dy.data<T>(), dm_last.defined() ? dm_last.data<T>() : nullptr,
                             ds_last.defined() ? ds_last.data<T>() : nullptr, dq.data<T>(),
                             dk.data<T>(), dv.data<T>(), dtheta.data<T>(), deta.data<T>(),
                             dalpha.data<T>(), dm0.data<T>(), ds0.data<T>());
  });
}

void register_titans(Backend& b) {
  b.titans_linear_memory = titans_linear_memory;
  b.titans_linear_memory_backward = titans_linear_memory_backward;
}

}  // namespace engram::cpu
