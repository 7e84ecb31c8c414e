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
//
// Depth 2 (titans_mlp_memory, the paper's deep memory): W1 [h, dk], W2 [dv, h], M(x) =
// W2 silu(W1 x), silu(a) = a s(a), s = sigmoid, silu' = s (1 + a (1 - s)),
// silu'' = s (1 - s) (2 + a (1 - 2 s)). W1_0c, W2_0c = the weights entering chunk c:
//   forward   y_t  = W2_{t-1} silu(u_t),  u_t = W1_{t-1} q_t      (retrieve before writing)
//             a_t  = W1_0c k_t ; z_t = silu(a_t) ; p_t = W2_0c z_t ; e_t = 2 (p_t - v_t)
//             g_t  = W2_0c^T e_t ; delta_t = g_t * silu'(a_t)
//             G2_t = e_t z_t^T ;  G1_t = delta_t k_t^T
//             S1_t = eta_t S1_{t-1} - theta_t G1_t ;  W1_t = (1 - alpha_t) W1_{t-1} + S1_t
//             S2_t = eta_t S2_{t-1} - theta_t G2_t ;  W2_t = (1 - alpha_t) W2_{t-1} + S2_t
//   backward  per token, last to first, dW*/dS* the adjoints of W*_t/S*_t, dW*0 the chunk's
//             accumulators of W*_0c (added into dW* at the chunk's first token):
//             dS += dW (both layers)   dalpha_t = -<dW1, W1_{t-1}> - <dW2, W2_{t-1}>
//             deta_t = <dS1, S1_{t-1}> + <dS2, S2_{t-1}>
//             dtheta_t = -delta^T dS1 k - e^T dS2 z
//             ddelta = -theta dS1 k ;  dk = -theta dS1^T delta
//             dg = ddelta * silu'(a) ;  da = ddelta * g * silu''(a)
//             de = -theta dS2 z + W2_0c dg ;  dz = -theta dS2^T e + W2_0c^T dp,  dp = 2 de
//             dv_t = -2 de ;  dW20 += e dg^T + dp z^T
//             da += dz * silu'(a) ;  dW10 += da k^T ;  dk += W1_0c^T da
//             dr = W2_{t-1}^T dy ; du = dr * silu'(u) ; dq = W1_{t-1}^T du
//             dS <- eta dS ;  dW2 <- (1 - alpha) dW2 + dy r^T ;  dW1 <- (1 - alpha) dW1 + du q^T
// Checkpoints: the four matrices entering each chunk; the backward keeps one chunk's states.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/backend.h"
#include "core/cpu/kernel_checks.h"
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

// ---- depth 2: W1 [h, dk], W2 [dv, h], M(x) = W2 silu(W1 x) ----
// silu(a) = a s(a), s = sigmoid; silu'(a) = s (1 + a (1 - s));
// silu''(a) = s (1 - s) (2 + a (1 - 2 s)).
template <typename T>
static inline T sigm(T a) {
  return T(1) / (T(1) + std::exp(-a));
}

// All pointers contiguous; s1/s2 may be null (zeros). Row i of W1 is W1 + i * dk, row o of W2 is
// W2 + o * h.
template <typename T>
static void titans_mlp_forward_typed(const T* q, const T* k, const T* v, const T* theta,
                                     const T* eta, const T* alpha, const T* w1, const T* w2,
                                     const T* s1, const T* s2, int64_t B, int64_t Tn, int64_t dk,
                                     int64_t h, int64_t dv, int64_t chunk, T* y, T* w1_last,
                                     T* w2_last, T* s1_last, T* s2_last, T* ckpt_w1, T* ckpt_w2,
                                     T* ckpt_s1, T* ckpt_s2) {
  const int64_t H1 = h * dk, H2 = dv * h, n_chunks = (Tn + chunk - 1) / chunk;
  // per token (silu counted as 4: exp, add, divide, multiply): read W1 q 2 h dk, silu 4 h,
  // W2 r 2 dv h; a = W1_0 k 2 h dk, z 4 h, silu' 4 h; p = W2_0 z 2 dv h, e 2 dv; g = W2_0^T e
  // 2 dv h, delta 1 h; S1 = eta S1 - (theta delta) k^T 3 h dk + h, W1 = keep W1 + S1 2 h dk; the
  // same for S2 (3 dv h + dv) and W2 (2 dv h); keep = 1 - alpha 1
  flops::add(B * Tn * (9 * H1 + 11 * H2 + 14 * h + 3 * dv + 1));
#pragma omp parallel for schedule(static) if (B * Tn * (H1 + H2) > (1 << 15))
  for (int64_t b = 0; b < B; ++b) {
    T* W1 = w1_last + b * H1;  // the running weights and momenta live in the output buffers
    T* W2 = w2_last + b * H2;
    T* S1 = s1_last + b * H1;
    T* S2 = s2_last + b * H2;
    std::memcpy(W1, w1 + b * H1, H1 * sizeof(T));
    std::memcpy(W2, w2 + b * H2, H2 * sizeof(T));
    if (s1) std::memcpy(S1, s1 + b * H1, H1 * sizeof(T));
    else std::fill(S1, S1 + H1, T(0));
    if (s2) std::memcpy(S2, s2 + b * H2, H2 * sizeof(T));
    else std::fill(S2, S2 + H2, T(0));
    std::vector<T> r(h), z(h), delta(h), e(dv), g(h);
    const T *W10 = nullptr, *W20 = nullptr;  // the chunk's starting weights (its checkpoints)
    for (int64_t t = 0; t < Tn; ++t) {
      if (t % chunk == 0) {
        const int64_t c = b * n_chunks + t / chunk;
        std::memcpy(ckpt_w1 + c * H1, W1, H1 * sizeof(T));
        std::memcpy(ckpt_w2 + c * H2, W2, H2 * sizeof(T));
        std::memcpy(ckpt_s1 + c * H1, S1, H1 * sizeof(T));
        std::memcpy(ckpt_s2 + c * H2, S2, H2 * sizeof(T));
        W10 = ckpt_w1 + c * H1;
        W20 = ckpt_w2 + c * H2;
      }
      const int64_t bt = b * Tn + t;
      const T* qt = q + bt * dk;
      const T* kt = k + bt * dk;
      const T* vt = v + bt * dv;
      const T th = theta[bt], et = eta[bt], keep = T(1) - alpha[bt];
      T* yt = y + bt * dv;
      // retrieval y = W2 silu(W1 q), and the inner loss's pieces at the chunk-start weights
      for (int64_t i = 0; i < h; ++i) {
        T u = 0, a = 0;
        for (int64_t j = 0; j < dk; ++j) {
          u += W1[i * dk + j] * qt[j];
          a += W10[i * dk + j] * kt[j];
        }
        r[i] = u * sigm(u);
        const T sa = sigm(a);
        z[i] = a * sa;
        delta[i] = sa * (T(1) + a * (T(1) - sa));  // silu'(a), times g below
        g[i] = 0;
      }
      for (int64_t o = 0; o < dv; ++o) {
        T yo = 0, p = 0;
        for (int64_t i = 0; i < h; ++i) {
          yo += W2[o * h + i] * r[i];
          p += W20[o * h + i] * z[i];
        }
        yt[o] = yo;
        e[o] = T(2) * (p - vt[o]);
      }
      for (int64_t o = 0; o < dv; ++o)
        for (int64_t i = 0; i < h; ++i) g[i] += W20[o * h + i] * e[o];
      // S1 = eta S1 - theta delta k^T, W1 = keep W1 + S1 (delta = g * silu'(a))
      for (int64_t i = 0; i < h; ++i) {
        const T gd = th * g[i] * delta[i];
        T* s1r = S1 + i * dk;
        T* w1r = W1 + i * dk;
        for (int64_t j = 0; j < dk; ++j) {
          s1r[j] = et * s1r[j] - gd * kt[j];
          w1r[j] = keep * w1r[j] + s1r[j];
        }
      }
      // S2 = eta S2 - theta e z^T, W2 = keep W2 + S2
      for (int64_t o = 0; o < dv; ++o) {
        const T ge = th * e[o];
        T* s2r = S2 + o * h;
        T* w2r = W2 + o * h;
        for (int64_t i = 0; i < h; ++i) {
          s2r[i] = et * s2r[i] - ge * z[i];
          w2r[i] = keep * w2r[i] + s2r[i];
        }
      }
    }
  }
}

template <typename T>
static void titans_mlp_backward_typed(const T* q, const T* k, const T* v, const T* theta,
                                      const T* eta, const T* alpha, const T* ckpt_w1,
                                      const T* ckpt_w2, const T* ckpt_s1, const T* ckpt_s2,
                                      int64_t B, int64_t Tn, int64_t dk, int64_t h, int64_t dv,
                                      int64_t chunk, const T* dy, const T* dw1_last,
                                      const T* dw2_last, const T* ds1_last, const T* ds2_last,
                                      T* dq, T* dkk, T* dvv, T* dtheta, T* deta, T* dalpha, T* dw1,
                                      T* dw2, T* ds1, T* ds2) {
  const int64_t H1 = h * dk, H2 = dv * h, n_chunks = (Tn + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (B * Tn * (H1 + H2) > (1 << 15))
  for (int64_t b = 0; b < B; ++b) {
    // W1s[s], W2s[s], S1s[s], S2s[s] = the state entering token start + s; per token of the chunk
    // its a, sigmoid(a), z, g = W2_0^T e and e
    const int64_t cap = std::min(chunk, Tn);
    std::vector<T> W1s(cap * H1), W2s(cap * H2), S1s(cap * H1), S2s(cap * H2);
    std::vector<T> as(cap * h), sgs(cap * h), zs(cap * h), gs(cap * h), es(cap * dv);
    std::vector<T> dW10(H1), dW20(H2);
    std::vector<T> r(h), du(h), dS1k(h), dz(h), dg(h), da(h), dS2z(dv), de(dv);
    T* dW1 = dw1 + b * H1;  // the running adjoints live in the dw / ds output buffers
    T* dW2 = dw2 + b * H2;
    T* dS1 = ds1 + b * H1;
    T* dS2 = ds2 + b * H2;
    auto init = [](T* dst, const T* src, int64_t n) {
      if (src) std::memcpy(dst, src, n * sizeof(T));
      else std::fill(dst, dst + n, T(0));
    };
    init(dW1, dw1_last ? dw1_last + b * H1 : nullptr, H1);
    init(dW2, dw2_last ? dw2_last + b * H2 : nullptr, H2);
    init(dS1, ds1_last ? ds1_last + b * H1 : nullptr, H1);
    init(dS2, ds2_last ? ds2_last + b * H2 : nullptr, H2);
    for (int64_t c = n_chunks - 1; c >= 0; --c) {
      const int64_t start = c * chunk, len = std::min(chunk, Tn - start);
      const T* W10 = ckpt_w1 + (b * n_chunks + c) * H1;
      const T* W20 = ckpt_w2 + (b * n_chunks + c) * H2;
      // Recompute the chunk: the states entering each token and the inner loss's pieces.
      std::memcpy(W1s.data(), W10, H1 * sizeof(T));
      std::memcpy(W2s.data(), W20, H2 * sizeof(T));
      std::memcpy(S1s.data(), ckpt_s1 + (b * n_chunks + c) * H1, H1 * sizeof(T));
      std::memcpy(S2s.data(), ckpt_s2 + (b * n_chunks + c) * H2, H2 * sizeof(T));
      for (int64_t s = 0; s < len; ++s) {
        const int64_t bt = b * Tn + start + s;
        const T* kt = k + bt * dk;
        const T* vt = v + bt * dv;
        T *a = as.data() + s * h, *sg = sgs.data() + s * h, *z = zs.data() + s * h;
        T *g = gs.data() + s * h, *e = es.data() + s * dv;
        for (int64_t i = 0; i < h; ++i) {
          T ai = 0;
          for (int64_t j = 0; j < dk; ++j) ai += W10[i * dk + j] * kt[j];
          a[i] = ai;
          sg[i] = sigm(ai);
          z[i] = ai * sg[i];
          g[i] = 0;
        }
        for (int64_t o = 0; o < dv; ++o) {
          T p = 0;
          for (int64_t i = 0; i < h; ++i) p += W20[o * h + i] * z[i];
          e[o] = T(2) * (p - vt[o]);
          for (int64_t i = 0; i < h; ++i) g[i] += W20[o * h + i] * e[o];
        }
        if (s + 1 == len) break;  // the chunk's last state is not needed by its backward
        const T th = theta[bt], et = eta[bt], keep = T(1) - alpha[bt];
        const T *w1p = W1s.data() + s * H1, *s1p = S1s.data() + s * H1;
        const T *w2p = W2s.data() + s * H2, *s2p = S2s.data() + s * H2;
        T *w1n = W1s.data() + (s + 1) * H1, *s1n = S1s.data() + (s + 1) * H1;
        T *w2n = W2s.data() + (s + 1) * H2, *s2n = S2s.data() + (s + 1) * H2;
        for (int64_t i = 0; i < h; ++i) {
          const T gd = th * g[i] * sg[i] * (T(1) + a[i] * (T(1) - sg[i]));
          for (int64_t j = 0; j < dk; ++j) {
            s1n[i * dk + j] = et * s1p[i * dk + j] - gd * kt[j];
            w1n[i * dk + j] = keep * w1p[i * dk + j] + s1n[i * dk + j];
          }
        }
        for (int64_t o = 0; o < dv; ++o) {
          const T ge = th * e[o];
          for (int64_t i = 0; i < h; ++i) {
            s2n[o * h + i] = et * s2p[o * h + i] - ge * z[i];
            w2n[o * h + i] = keep * w2p[o * h + i] + s2n[o * h + i];
          }
        }
      }
      std::fill(dW10.begin(), dW10.end(), T(0));
      std::fill(dW20.begin(), dW20.end(), T(0));
      for (int64_t s = len - 1; s >= 0; --s) {
        const int64_t bt = b * Tn + start + s;
        const T* qt = q + bt * dk;
        const T* kt = k + bt * dk;
        const T* dyt = dy + bt * dv;
        const T *a = as.data() + s * h, *sg = sgs.data() + s * h, *z = zs.data() + s * h;
        const T *g = gs.data() + s * h, *e = es.data() + s * dv;
        const T *W1p = W1s.data() + s * H1, *S1p = S1s.data() + s * H1;
        const T *W2p = W2s.data() + s * H2, *S2p = S2s.data() + s * H2;
        const T th = theta[bt], et = eta[bt], keep = T(1) - alpha[bt];
        T* dqt = dq + bt * dk;
        T* dkt = dkk + bt * dk;
        T* dvt = dvv + bt * dv;
        std::fill(dqt, dqt + dk, T(0));
        std::fill(dkt, dkt + dk, T(0));
        std::fill(dz.begin(), dz.end(), T(0));
        T dal = 0, det = 0, dth = 0;
        // W_t = keep W_{t-1} + S_t, S_t = eta S_{t-1} - theta G_t: dS (after += dW, before its eta
        // scaling) is the adjoint of S_t; dG = -theta dS.
        for (int64_t i = 0; i < h; ++i) {
          T* dwr = dW1 + i * dk;
          T* dsr = dS1 + i * dk;
          const T *wpr = W1p + i * dk, *spr = S1p + i * dk;
          const T spa = sg[i] * (T(1) + a[i] * (T(1) - sg[i]));
          const T di = g[i] * spa;  // delta_i
          T acc = 0;
          for (int64_t j = 0; j < dk; ++j) {
            dsr[j] += dwr[j];
            dal -= dwr[j] * wpr[j];
            det += dsr[j] * spr[j];
            acc += dsr[j] * kt[j];
            dkt[j] -= th * dsr[j] * di;
            dsr[j] *= et;
          }
          dS1k[i] = acc;
          dth -= di * acc;
          // delta = g * silu'(a): d delta = -theta dS1 k
          const T dd = -th * acc;
          dg[i] = dd * spa;
          da[i] = dd * g[i] * sg[i] * (T(1) - sg[i]) * (T(2) + a[i] * (T(1) - T(2) * sg[i]));
        }
        for (int64_t o = 0; o < dv; ++o) {
          T* dwr = dW2 + o * h;
          T* dsr = dS2 + o * h;
          const T *wpr = W2p + o * h, *spr = S2p + o * h;
          T acc = 0;
          for (int64_t i = 0; i < h; ++i) {
            dsr[i] += dwr[i];
            dal -= dwr[i] * wpr[i];
            det += dsr[i] * spr[i];
            acc += dsr[i] * z[i];
            dz[i] -= th * dsr[i] * e[o];
            dsr[i] *= et;
          }
          dS2z[o] = acc;
          dth -= e[o] * acc;
        }
        dalpha[bt] = dal;
        deta[bt] = det;
        dtheta[bt] = dth;
        // G2 = e z^T gives de = -theta dS2 z; g = W2_0^T e gives de += W2_0 dg, dW2_0 += e dg^T;
        // e = 2 (W2_0 z - v) gives dp = 2 de, dv = -2 de, dW2_0 += dp z^T, dz += W2_0^T dp
        for (int64_t o = 0; o < dv; ++o) {
          const T* w20r = W20 + o * h;
          T* dw20r = dW20.data() + o * h;
          T deo = -th * dS2z[o];
          for (int64_t i = 0; i < h; ++i) deo += w20r[i] * dg[i];
          de[o] = deo;
          dvt[o] = T(-2) * deo;
          const T dp = T(2) * deo;
          for (int64_t i = 0; i < h; ++i) {
            dw20r[i] += e[o] * dg[i] + dp * z[i];
            dz[i] += w20r[i] * dp;
          }
        }
        // z = silu(a), a = W1_0 k: dW1_0 += da k^T, dk += W1_0^T da
        for (int64_t i = 0; i < h; ++i) {
          const T dai = da[i] + dz[i] * sg[i] * (T(1) + a[i] * (T(1) - sg[i]));
          const T* w10r = W10 + i * dk;
          T* dw10r = dW10.data() + i * dk;
          for (int64_t j = 0; j < dk; ++j) {
            dw10r[j] += dai * kt[j];
            dkt[j] += w10r[j] * dai;
          }
        }
        // y = W2_{t-1} silu(u), u = W1_{t-1} q; then dW becomes the adjoint of W_{t-1}
        for (int64_t i = 0; i < h; ++i) {
          T u = 0;
          for (int64_t j = 0; j < dk; ++j) u += W1p[i * dk + j] * qt[j];
          const T su = sigm(u);
          r[i] = u * su;
          du[i] = su * (T(1) + u * (T(1) - su));  // silu'(u), times dr below
        }
        std::fill(dg.begin(), dg.end(), T(0));  // reused as dr = W2_{t-1}^T dy
        for (int64_t o = 0; o < dv; ++o) {
          const T* w2r = W2p + o * h;
          T* dwr = dW2 + o * h;
          const T dyo = dyt[o];
          for (int64_t i = 0; i < h; ++i) {
            dg[i] += w2r[i] * dyo;
            dwr[i] = keep * dwr[i] + dyo * r[i];
          }
        }
        for (int64_t i = 0; i < h; ++i) {
          const T dui = du[i] * dg[i];
          const T* w1r = W1p + i * dk;
          T* dwr = dW1 + i * dk;
          for (int64_t j = 0; j < dk; ++j) {
            dqt[j] += w1r[j] * dui;
            dwr[j] = keep * dwr[j] + dui * qt[j];
          }
        }
      }
      for (int64_t x = 0; x < H1; ++x) dW1[x] += dW10[x];  // W1_0c is W1_{start-1}
      for (int64_t x = 0; x < H2; ++x) dW2[x] += dW20[x];
    }
  }
}

static void titans_linear_memory(Tref q, Tref k, Tref v, Tref theta, Tref eta, Tref alpha, Tref m0,
                                 Tref s0, int64_t chunk, Tref y, Tref m_last, Tref s_last,
                                 Tref ckpt_m, Tref ckpt_s) {
  check_contiguous({&q, &k, &v, &theta, &eta, &alpha, &m0, &s0, &y, &m_last, &s_last, &ckpt_m, &ckpt_s},
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
  check_contiguous({&q, &k, &v, &theta, &eta, &alpha, &ckpt_m, &ckpt_s, &dy, &dm_last, &ds_last, &dq,
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

static void titans_mlp_memory(Tref q, Tref k, Tref v, Tref theta, Tref eta, Tref alpha, Tref w1,
                              Tref w2, Tref s1, Tref s2, int64_t chunk, Tref y, Tref w1_last,
                              Tref w2_last, Tref s1_last, Tref s2_last, Tref ckpt_w1,
                              Tref ckpt_w2, Tref ckpt_s1, Tref ckpt_s2) {
  check_contiguous({&q, &k, &v, &theta, &eta, &alpha, &w1, &w2, &s1, &s2, &y, &w1_last, &w2_last,
                &s1_last, &s2_last, &ckpt_w1, &ckpt_w2, &ckpt_s1, &ckpt_s2},
               "titans_mlp_memory");
  int64_t B = q.shape()[0], Tn = q.shape()[1], dk = q.shape()[2], h = w1.shape()[1],
          dv = v.shape()[2];
  ENGRAM_DISPATCH_FLOAT(q.dtype(), "titans_mlp_memory", [&] {
    using T = scalar_t;
    titans_mlp_forward_typed<T>(
        q.data<T>(), k.data<T>(), v.data<T>(), theta.data<T>(), eta.data<T>(), alpha.data<T>(),
        w1.data<T>(), w2.data<T>(), s1.defined() ? s1.data<T>() : nullptr,
        s2.defined() ? s2.data<T>() : nullptr, B, Tn, dk, h, dv, chunk, y.data<T>(),
        w1_last.data<T>(), w2_last.data<T>(), s1_last.data<T>(), s2_last.data<T>(),
        ckpt_w1.data<T>(), ckpt_w2.data<T>(), ckpt_s1.data<T>(), ckpt_s2.data<T>());
  });
}

static void titans_mlp_memory_backward(Tref q, Tref k, Tref v, Tref theta, Tref eta, Tref alpha,
                                       Tref ckpt_w1, Tref ckpt_w2, Tref ckpt_s1, Tref ckpt_s2,
                                       int64_t chunk, Tref dy, Tref dw1_last, Tref dw2_last,
                                       Tref ds1_last, Tref ds2_last, Tref dq, Tref dk, Tref dv,
                                       Tref dtheta, Tref deta, Tref dalpha, Tref dw1, Tref dw2,
                                       Tref ds1, Tref ds2) {
  check_contiguous({&q, &k, &v, &theta, &eta, &alpha, &ckpt_w1, &ckpt_w2, &ckpt_s1, &ckpt_s2, &dy,
                &dw1_last, &dw2_last, &ds1_last, &ds2_last, &dq, &dk, &dv, &dtheta, &deta,
                &dalpha, &dw1, &dw2, &ds1, &ds2},
               "titans_mlp_memory_backward");
  int64_t B = q.shape()[0], Tn = q.shape()[1], dkn = q.shape()[2], h = dw1.shape()[1],
          dvn = v.shape()[2];
  ENGRAM_DISPATCH_FLOAT(q.dtype(), "titans_mlp_memory_backward", [&] {
    using T = scalar_t;
    auto opt = [](Tref t) -> const T* { return t.defined() ? t.data<T>() : nullptr; };
    titans_mlp_backward_typed<T>(
        q.data<T>(), k.data<T>(), v.data<T>(), theta.data<T>(), eta.data<T>(), alpha.data<T>(),
        ckpt_w1.data<T>(), ckpt_w2.data<T>(), ckpt_s1.data<T>(), ckpt_s2.data<T>(), B, Tn, dkn, h,
        dvn, chunk, dy.data<T>(), opt(dw1_last), opt(dw2_last), opt(ds1_last), opt(ds2_last),
        dq.data<T>(), dk.data<T>(), dv.data<T>(), dtheta.data<T>(), deta.data<T>(),
        dalpha.data<T>(), dw1.data<T>(), dw2.data<T>(), ds1.data<T>(), ds2.data<T>());
  });
}

void register_titans(Backend& b) {
  b.titans_linear_memory = titans_linear_memory;
  b.titans_linear_memory_backward = titans_linear_memory_backward;
  b.titans_mlp_memory = titans_mlp_memory;
  b.titans_mlp_memory_backward = titans_mlp_memory_backward;
}

}  // namespace engram::cpu
