// cuda/cuda_titans.cu — the Titans neural memory's fused kernels on the GPU (mirrors
// core/cpu/cpu_titans.cpp, whose opening comment derives every equation used here).
//
// Depth 1, per batch element b, memory M [dv, dk], momentum S [dv, dk], tokens in chunks of
// `chunk`, M0_c = M entering chunk c (its checkpoint):
//   y_t = M_{t-1} q_t ; e_t = 2 (M0_c k_t - v_t) ; S_t = eta_t S_{t-1} - theta_t e_t k_t^T ;
//   M_t = (1 - alpha_t) M_{t-1} + S_t.
// Depth 2: W1 [h, dk], W2 [dv, h], M(x) = W2 silu(W1 x), the inner gradients G1, G2 taken at the
// chunk-start weights W1_0c, W2_0c, and the same momentum / decay update for both layers.
// Shapes: q, k [B, T, dk], v [B, T, dv], theta/eta/alpha [B, T]; checkpoints [B, ceil(T/chunk),
// ...] hold the states entering each chunk; the backward recomputes one chunk's states from them.
//
// GPU layout (every reduction in a fixed order: deterministic, no atomics; f32 sums in float,
// f64 in double, so results agree with the CPU to rounding):
//   - titans_linear_memory: row i of M_t needs only row i of M_{t-1}, of M0_c and of S, so one
//     WARP per (b, i) walks the whole sequence with no block synchronisation: its lanes own the
//     columns j = lane, lane + 32, ... and the two dot products of a row are warp all-reduces.
//   - the three other kernels: one BLOCK per batch element (grid = B), time stepped inside the
//     kernel, chunks walked from last to first, __syncthreads between dependent phases. The
//     phases are of three kinds: a warp per row with lanes over its columns (row dot products,
//     elementwise updates of a row), a thread per column looping over the rows (the transposed
//     products like M^T x: coalesced, fixed order, no atomics), and block sums of the per-token
//     scalars (dalpha, deta, dtheta). A thread only ever touches the elements its phase assigns
//     it, so a barrier is needed only where a phase reads what another mapping wrote.
//   - the running adjoints live in the dm0/ds0 (dw*/ds*) output buffers, as on the CPU; the
//     chunk's recomputed states, the per-token vectors and the chunk accumulators dM0 (dW*0) live
//     in one Scratch buffer: per b, 2 min(chunk, T) + 1 matrices of each shape plus vectors
//     (the CPU's memory plan: checkpoints every chunk, one chunk's states at a time).
#include <algorithm>
#include <climits>

#include "core/flops.h"
#include "cuda/common.cuh"

namespace engram::cuda {

// Loops over one block's threads: EACH spreads items over all threads, ROWS gives each warp its
// rows (warp-uniform trip count, so warp shuffles after the inner loop see all 32 lanes), LANES
// spreads one row's columns over the warp's lanes.
#define TT_EACH(X, N) for (int64_t X = threadIdx.x; X < (N); X += blockDim.x)
#define TT_ROWS(I, N) for (int64_t I = threadIdx.x >> 5; I < (N); I += (blockDim.x >> 5))
#define TT_LANES(J, N) for (int64_t J = threadIdx.x & 31; J < (N); J += 32)

// Butterfly all-reduce: every lane gets the same sum (a + b == b + a, so the lanes agree bitwise).
template <typename T> static __device__ __forceinline__ T tt_warp_allsum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
static __device__ __forceinline__ float tt_sigm(float a) { return 1.0f / (1.0f + expf(-a)); }
static __device__ __forceinline__ double tt_sigm(double a) { return 1.0 / (1.0 + exp(-a)); }

// ------------------------------------------------------------------ depth 1, forward
template <typename T>
__global__ void linear_forward_kernel(const T* q, const T* k, const T* v, const T* theta,
                                      const T* eta, const T* alpha, const T* m0, const T* s0,
                                      int64_t B, int64_t Tn, int64_t dk, int64_t dv, int64_t chunk,
                                      T* y, T* m_last, T* s_last, T* ckpt_m, T* ckpt_s) {
  const int64_t w = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (w >= B * dv) return;  // whole warps leave together (blockDim is a multiple of 32)
  const int64_t b = w / dv, i = w % dv, S = dv * dk, n_chunks = (Tn + chunk - 1) / chunk;
  const int64_t row = b * S + i * dk;
  T* M = m_last + row;  // the running row of M and S lives in the output buffers
  T* Sm = s_last + row;
  for (int64_t j = lane; j < dk; j += 32) {
    M[j] = m0[row + j];
    Sm[j] = s0 ? s0[row + j] : T(0);
  }
  const T* M0 = nullptr;  // this row of the chunk's checkpoint (written and read by this lane)
  for (int64_t t = 0; t < Tn; ++t) {
    if (t % chunk == 0) {
      const int64_t c = (b * n_chunks + t / chunk) * S + i * dk;
      for (int64_t j = lane; j < dk; j += 32) {
        ckpt_m[c + j] = M[j];
        ckpt_s[c + j] = Sm[j];
      }
      M0 = ckpt_m + c;
    }
    const int64_t bt = b * Tn + t;
    const T *qt = q + bt * dk, *kt = k + bt * dk;
    T yi = 0, pred = 0;
    for (int64_t j = lane; j < dk; j += 32) {
      yi += M[j] * qt[j];
      pred += M0[j] * kt[j];
    }
    yi = tt_warp_allsum(yi);
    pred = tt_warp_allsum(pred);
    if (lane == 0) y[bt * dv + i] = yi;
    const T th = theta[bt], et = eta[bt], keep = T(1) - alpha[bt];
    const T g = th * T(2) * (pred - v[bt * dv + i]);  // theta_t e_t[i]
    for (int64_t j = lane; j < dk; j += 32) {
      const T s = et * Sm[j] - g * kt[j];
      Sm[j] = s;
      M[j] = keep * M[j] + s;
    }
  }
}

// ------------------------------------------------------------------ depth 1, backward
// work per b: Ms, Ss [cap, dv, dk] (states entering each token of the chunk), dM0 [dv, dk],
// errs [cap, dv], de [dv].
static __host__ __device__ int64_t linear_work(int64_t cap, int64_t dk, int64_t dv) {
  return 2 * cap * dv * dk + dv * dk + cap * dv + dv;
}

template <typename T>
__global__ void linear_backward_kernel(const T* q, const T* k, const T* v, const T* theta,
                                       const T* eta, const T* alpha, const T* ckpt_m,
                                       const T* ckpt_s, int64_t Tn, int64_t dk, int64_t dv,
                                       int64_t chunk, const T* dy, const T* dm_last,
                                       const T* ds_last, T* dq, T* dkk, T* dvv, T* dtheta,
                                       T* deta, T* dalpha, T* dm0, T* ds0, T* work) {
  __shared__ T red[32];
  const int64_t b = blockIdx.x, S = dv * dk, n_chunks = (Tn + chunk - 1) / chunk;
  const int64_t cap = chunk < Tn ? chunk : Tn;
  const int lane = threadIdx.x & 31;
  T* Ms = work + b * linear_work(cap, dk, dv);
  T* Ss = Ms + cap * S;
  T* dM0 = Ss + cap * S;
  T* errs = dM0 + S;
  T* dev = errs + cap * dv;
  T* dM = dm0 + b * S;  // the running adjoints of M_t and S_t
  T* dS = ds0 + b * S;
  TT_EACH(x, S) {
    dM[x] = dm_last ? dm_last[b * S + x] : T(0);
    dS[x] = ds_last ? ds_last[b * S + x] : T(0);
  }
  for (int64_t c = n_chunks - 1; c >= 0; --c) {
    const int64_t start = c * chunk, len = chunk < Tn - start ? chunk : Tn - start;
    const T* M0 = ckpt_m + (b * n_chunks + c) * S;
    const T* S0 = ckpt_s + (b * n_chunks + c) * S;
    __syncthreads();  // the previous chunk (or the set-up) is finished with Ms, Ss, dM, dM0
    TT_EACH(x, S) {
      Ms[x] = M0[x];
      Ss[x] = S0[x];
      dM0[x] = T(0);
    }
    __syncthreads();
    // Recompute the chunk: e_t, and the states entering each token (rows are independent, and a
    // row's states are written and read by the same lanes).
    for (int64_t s = 0; s < len; ++s) {
      const int64_t bt = b * Tn + start + s;
      const T *kt = k + bt * dk, *vt = v + bt * dv;
      const T th = theta[bt], et = eta[bt], keep = T(1) - alpha[bt];
      const T *Mp = Ms + s * S, *Sp = Ss + s * S;
      T *Mn = Ms + (s + 1) * S, *Sn = Ss + (s + 1) * S;  // unused at the chunk's last token
      TT_ROWS(i, dv) {
        T pred = 0;
        TT_LANES(j, dk) pred += M0[i * dk + j] * kt[j];
        pred = tt_warp_allsum(pred);
        const T e = T(2) * (pred - vt[i]);
        if (lane == 0) errs[s * dv + i] = e;
        if (s + 1 < len) {  // the chunk's last state is not needed by its backward
          TT_LANES(j, dk) {
            const int64_t x = i * dk + j;
            const T sn = et * Sp[x] - th * e * kt[j];
            Sn[x] = sn;
            Mn[x] = keep * Mp[x] + sn;
          }
        }
      }
    }
    __syncthreads();
    for (int64_t s = len - 1; s >= 0; --s) {
      const int64_t bt = b * Tn + start + s;
      const T *qt = q + bt * dk, *kt = k + bt * dk, *dyt = dy + bt * dv, *e = errs + s * dv;
      const T *Mp = Ms + s * S, *Sp = Ss + s * S;
      const T th = theta[bt], et = eta[bt], keep = T(1) - alpha[bt];
      // rows: dS += dM (now the adjoint of S_t), the scalar partials, dS k and de = -theta dS k
      T pa = 0, pe = 0, pt = 0;
      TT_ROWS(i, dv) {
        T dsk = 0;
        TT_LANES(j, dk) {
          const int64_t x = i * dk + j;
          const T dm = dM[x], ds = dS[x] + dm;
          dS[x] = ds;
          pa -= dm * Mp[x];
          pe += ds * Sp[x];
          dsk += ds * kt[j];
        }
        dsk = tt_warp_allsum(dsk);
        if (lane == 0) {
          pt -= e[i] * dsk;
          const T de = -th * dsk;
          dev[i] = de;
          dvv[bt * dv + i] = T(-2) * de;
        }
      }
      // block_sum's barriers also order the row phase before the column phase
      const T dal = block_sum(pa, red), det = block_sum(pe, red), dth = block_sum(pt, red);
      if (threadIdx.x == 0) {
        dalpha[bt] = dal;
        deta[bt] = det;
        dtheta[bt] = dth;
      }
      // columns: dk = -theta dS^T e + 2 M0^T de, dq = M_{t-1}^T dy (rows in the CPU's order)
      TT_EACH(j, dk) {
        T ak = 0, aq = 0;
        for (int64_t i = 0; i < dv; ++i) {
          const int64_t x = i * dk + j;
          ak -= th * dS[x] * e[i];
          ak += T(2) * M0[x] * dev[i];
          aq += Mp[x] * dyt[i];
        }
        dkk[bt * dk + j] = ak;
        dq[bt * dk + j] = aq;
      }
      __syncthreads();
      // rows: dS becomes the adjoint of S_{t-1}, dM of M_{t-1}; dM0 += 2 de k^T
      TT_ROWS(i, dv) {
        const T de = dev[i], dyi = dyt[i];
        TT_LANES(j, dk) {
          const int64_t x = i * dk + j;
          dS[x] *= et;
          dM0[x] += T(2) * de * kt[j];
          dM[x] = keep * dM[x] + dyi * qt[j];
        }
      }
      __syncthreads();
    }
    TT_EACH(x, S) dM[x] += dM0[x];  // M0_c is M_{start-1}
  }
}

// ------------------------------------------------------------------ depth 2, forward
template <typename T>
__global__ void mlp_forward_kernel(const T* q, const T* k, const T* v, const T* theta,
                                   const T* eta, const T* alpha, const T* w1, const T* w2,
                                   const T* s1, const T* s2, int64_t Tn, int64_t dk, int64_t h,
                                   int64_t dv, int64_t chunk, T* y, T* w1_last, T* w2_last,
                                   T* s1_last, T* s2_last, T* ckpt_w1, T* ckpt_w2, T* ckpt_s1,
                                   T* ckpt_s2, T* work) {
  const int64_t b = blockIdx.x, H1 = h * dk, H2 = dv * h, n_chunks = (Tn + chunk - 1) / chunk;
  const int lane = threadIdx.x & 31;
  T* W1 = w1_last + b * H1;  // the running weights and momenta live in the output buffers
  T* W2 = w2_last + b * H2;
  T* S1 = s1_last + b * H1;
  T* S2 = s2_last + b * H2;
  T* r = work + b * (3 * h + dv);  // silu(u), z = silu(a), silu'(a) then theta g silu'(a), e
  T* z = r + h;
  T* dl = z + h;
  T* e = dl + h;
  TT_EACH(x, H1) {
    W1[x] = w1[b * H1 + x];
    S1[x] = s1 ? s1[b * H1 + x] : T(0);
  }
  TT_EACH(x, H2) {
    W2[x] = w2[b * H2 + x];
    S2[x] = s2 ? s2[b * H2 + x] : T(0);
  }
  const T *W10 = nullptr, *W20 = nullptr;  // the chunk's starting weights (its checkpoints)
  for (int64_t t = 0; t < Tn; ++t) {
    __syncthreads();  // the set-up or the previous token's updates are done
    if (t % chunk == 0) {  // block-uniform, so the barrier inside is reached by every thread
      const int64_t c = b * n_chunks + t / chunk;
      TT_EACH(x, H1) {
        ckpt_w1[c * H1 + x] = W1[x];
        ckpt_s1[c * H1 + x] = S1[x];
      }
      TT_EACH(x, H2) {
        ckpt_w2[c * H2 + x] = W2[x];
        ckpt_s2[c * H2 + x] = S2[x];
      }
      W10 = ckpt_w1 + c * H1;
      W20 = ckpt_w2 + c * H2;
      __syncthreads();
    }
    const int64_t bt = b * Tn + t;
    const T *qt = q + bt * dk, *kt = k + bt * dk, *vt = v + bt * dv;
    const T th = theta[bt], et = eta[bt], keep = T(1) - alpha[bt];
    TT_ROWS(i, h) {  // u = W1 q (retrieval), a = W1_0 k (inner loss)
      T u = 0, a = 0;
      TT_LANES(j, dk) {
        u += W1[i * dk + j] * qt[j];
        a += W10[i * dk + j] * kt[j];
      }
      u = tt_warp_allsum(u);
      a = tt_warp_allsum(a);
      if (lane == 0) {
        r[i] = u * tt_sigm(u);
        const T sa = tt_sigm(a);
        z[i] = a * sa;
        dl[i] = sa * (T(1) + a * (T(1) - sa));
      }
    }
    __syncthreads();
    TT_ROWS(o, dv) {  // y = W2 r, e = 2 (W2_0 z - v)
      T yo = 0, p = 0;
      TT_LANES(i, h) {
        yo += W2[o * h + i] * r[i];
        p += W20[o * h + i] * z[i];
      }
      yo = tt_warp_allsum(yo);
      p = tt_warp_allsum(p);
      if (lane == 0) {
        y[bt * dv + o] = yo;
        e[o] = T(2) * (p - vt[o]);
      }
    }
    __syncthreads();
    TT_EACH(i, h) {  // g = W2_0^T e, then theta g silu'(a)
      T g = 0;
      for (int64_t o = 0; o < dv; ++o) g += W20[o * h + i] * e[o];
      dl[i] = th * g * dl[i];
    }
    __syncthreads();
    TT_ROWS(i, h) {  // S1 = eta S1 - theta delta k^T, W1 = keep W1 + S1
      const T gd = dl[i];
      TT_LANES(j, dk) {
        const int64_t x = i * dk + j;
        const T s = et * S1[x] - gd * kt[j];
        S1[x] = s;
        W1[x] = keep * W1[x] + s;
      }
    }
    TT_ROWS(o, dv) {  // S2 = eta S2 - theta e z^T, W2 = keep W2 + S2
      const T ge = th * e[o];
      TT_LANES(i, h) {
        const int64_t x = o * h + i;
        const T s = et * S2[x] - ge * z[i];
        S2[x] = s;
        W2[x] = keep * W2[x] + s;
      }
    }
  }
}

// ------------------------------------------------------------------ depth 2, backward
// work per b: W1s, S1s [cap, h, dk], W2s, S2s [cap, dv, h]; a, sigmoid(a), z, g [cap, h] and
// e [cap, dv] per token; dW10 [h, dk], dW20 [dv, h]; dg, da, r, du [h]; dS2 z, dp [dv].
static __host__ __device__ int64_t mlp_work(int64_t cap, int64_t dk, int64_t h, int64_t dv) {
  return cap * (2 * h * dk + 2 * dv * h + 4 * h + dv) + h * dk + dv * h + 4 * h + 2 * dv;
}

template <typename T>
__global__ void mlp_backward_kernel(const T* q, const T* k, const T* v, const T* theta,
                                    const T* eta, const T* alpha, const T* ckpt_w1,
                                    const T* ckpt_w2, const T* ckpt_s1, const T* ckpt_s2,
                                    int64_t Tn, int64_t dk, int64_t h, int64_t dv, int64_t chunk,
                                    const T* dy, const T* dw1_last, const T* dw2_last,
                                    const T* ds1_last, const T* ds2_last, T* dq, T* dkk, T* dvv,
                                    T* dtheta, T* deta, T* dalpha, T* dw1, T* dw2, T* ds1, T* ds2,
                                    T* work) {
  __shared__ T red[32];
  const int64_t b = blockIdx.x, H1 = h * dk, H2 = dv * h, n_chunks = (Tn + chunk - 1) / chunk;
  const int64_t cap = chunk < Tn ? chunk : Tn;
  const int lane = threadIdx.x & 31;
  T* W1s = work + b * mlp_work(cap, dk, h, dv);
  T* S1s = W1s + cap * H1;
  T* W2s = S1s + cap * H1;
  T* S2s = W2s + cap * H2;
  T* as = S2s + cap * H2;
  T* sgs = as + cap * h;
  T* zs = sgs + cap * h;
  T* gs = zs + cap * h;
  T* es = gs + cap * h;
  T* dW10 = es + cap * dv;
  T* dW20 = dW10 + H1;
  T* dg = dW20 + H2;
  T* da = dg + h;
  T* r = da + h;
  T* du = r + h;
  T* dS2z = du + h;
  T* dp = dS2z + dv;
  T* dW1 = dw1 + b * H1;  // the running adjoints live in the dw / ds output buffers
  T* dW2 = dw2 + b * H2;
  T* dS1 = ds1 + b * H1;
  T* dS2 = ds2 + b * H2;
  TT_EACH(x, H1) {
    dW1[x] = dw1_last ? dw1_last[b * H1 + x] : T(0);
    dS1[x] = ds1_last ? ds1_last[b * H1 + x] : T(0);
  }
  TT_EACH(x, H2) {
    dW2[x] = dw2_last ? dw2_last[b * H2 + x] : T(0);
    dS2[x] = ds2_last ? ds2_last[b * H2 + x] : T(0);
  }
  for (int64_t c = n_chunks - 1; c >= 0; --c) {
    const int64_t start = c * chunk, len = chunk < Tn - start ? chunk : Tn - start;
    const int64_t cc = b * n_chunks + c;
    const T* W10 = ckpt_w1 + cc * H1;
    const T* W20 = ckpt_w2 + cc * H2;
    __syncthreads();  // the previous chunk (or the set-up) is finished with the work buffers
    TT_EACH(x, H1) {
      W1s[x] = W10[x];
      S1s[x] = ckpt_s1[cc * H1 + x];
      dW10[x] = T(0);
    }
    TT_EACH(x, H2) {
      W2s[x] = W20[x];
      S2s[x] = ckpt_s2[cc * H2 + x];
      dW20[x] = T(0);
    }
    __syncthreads();
    // Recompute the chunk: the states entering each token and the inner loss's pieces.
    for (int64_t s = 0; s < len; ++s) {
      const int64_t bt = b * Tn + start + s;
      const T *kt = k + bt * dk, *vt = v + bt * dv;
      T *a = as + s * h, *sg = sgs + s * h, *z = zs + s * h, *g = gs + s * h, *e = es + s * dv;
      TT_ROWS(i, h) {
        T ai = 0;
        TT_LANES(j, dk) ai += W10[i * dk + j] * kt[j];
        ai = tt_warp_allsum(ai);
        if (lane == 0) {
          a[i] = ai;
          sg[i] = tt_sigm(ai);
          z[i] = ai * sg[i];
        }
      }
      __syncthreads();
      TT_ROWS(o, dv) {
        T p = 0;
        TT_LANES(i, h) p += W20[o * h + i] * z[i];
        p = tt_warp_allsum(p);
        if (lane == 0) e[o] = T(2) * (p - vt[o]);
      }
      __syncthreads();
      TT_EACH(i, h) {
        T gi = 0;
        for (int64_t o = 0; o < dv; ++o) gi += W20[o * h + i] * e[o];
        g[i] = gi;
      }
      __syncthreads();
      if (s + 1 < len) {  // the chunk's last state is not needed by its backward
        const T th = theta[bt], et = eta[bt], keep = T(1) - alpha[bt];
        const T *w1p = W1s + s * H1, *s1p = S1s + s * H1, *w2p = W2s + s * H2, *s2p = S2s + s * H2;
        T *w1n = W1s + (s + 1) * H1, *s1n = S1s + (s + 1) * H1;
        T *w2n = W2s + (s + 1) * H2, *s2n = S2s + (s + 1) * H2;
        TT_ROWS(i, h) {
          const T gd = th * g[i] * sg[i] * (T(1) + a[i] * (T(1) - sg[i]));
          TT_LANES(j, dk) {
            const int64_t x = i * dk + j;
            const T sn = et * s1p[x] - gd * kt[j];
            s1n[x] = sn;
            w1n[x] = keep * w1p[x] + sn;
          }
        }
        TT_ROWS(o, dv) {
          const T ge = th * e[o];
          TT_LANES(i, h) {
            const int64_t x = o * h + i;
            const T sn = et * s2p[x] - ge * z[i];
            s2n[x] = sn;
            w2n[x] = keep * w2p[x] + sn;
          }
        }
      }
      __syncthreads();
    }
    for (int64_t s = len - 1; s >= 0; --s) {
      const int64_t bt = b * Tn + start + s;
      const T *qt = q + bt * dk, *kt = k + bt * dk, *dyt = dy + bt * dv;
      const T *a = as + s * h, *sg = sgs + s * h, *z = zs + s * h, *g = gs + s * h;
      const T* e = es + s * dv;
      const T *W1p = W1s + s * H1, *S1p = S1s + s * H1, *W2p = W2s + s * H2, *S2p = S2s + s * H2;
      const T th = theta[bt], et = eta[bt], keep = T(1) - alpha[bt];
      T pal = 0, pet = 0, pth = 0;
      // rows of layer 1: dS1 += dW1 (the adjoint of S1_t; its eta scaling waits until the
      // columns below have used it), the scalar partials, ddelta = -theta dS1 k -> dg, da
      TT_ROWS(i, h) {
        T acc = 0;
        TT_LANES(j, dk) {
          const int64_t x = i * dk + j;
          const T dw = dW1[x], ds = dS1[x] + dw;
          dS1[x] = ds;
          pal -= dw * W1p[x];
          pet += ds * S1p[x];
          acc += ds * kt[j];
        }
        acc = tt_warp_allsum(acc);
        if (lane == 0) {
          const T spa = sg[i] * (T(1) + a[i] * (T(1) - sg[i]));
          pth -= g[i] * spa * acc;
          const T dd = -th * acc;
          dg[i] = dd * spa;
          da[i] = dd * g[i] * sg[i] * (T(1) - sg[i]) * (T(2) + a[i] * (T(1) - T(2) * sg[i]));
        }
      }
      // rows of layer 2: dS2 += dW2, the scalar partials, dS2 z
      TT_ROWS(o, dv) {
        T acc = 0;
        TT_LANES(i, h) {
          const int64_t x = o * h + i;
          const T dw = dW2[x], ds = dS2[x] + dw;
          dS2[x] = ds;
          pal -= dw * W2p[x];
          pet += ds * S2p[x];
          acc += ds * z[i];
        }
        acc = tt_warp_allsum(acc);
        if (lane == 0) {
          pth -= e[o] * acc;
          dS2z[o] = acc;
        }
      }
      const T dal = block_sum(pal, red), det = block_sum(pet, red), dth = block_sum(pth, red);
      if (threadIdx.x == 0) {
        dalpha[bt] = dal;
        deta[bt] = det;
        dtheta[bt] = dth;
      }
      // rows of layer 2: de = -theta dS2 z + W2_0 dg, dv = -2 de, dW2_0 += e dg^T + dp z^T
      TT_ROWS(o, dv) {
        T dot = 0;
        TT_LANES(i, h) dot += W20[o * h + i] * dg[i];
        dot = tt_warp_allsum(dot);
        const T deo = -th * dS2z[o] + dot, dpo = T(2) * deo, eo = e[o];
        if (lane == 0) {
          dvv[bt * dv + o] = T(-2) * deo;
          dp[o] = dpo;
        }
        TT_LANES(i, h) dW20[o * h + i] += eo * dg[i] + dpo * z[i];
      }
      __syncthreads();
      // columns of layer 2: dz = -theta dS2^T e + W2_0^T dp; da += dz silu'(a)
      TT_EACH(i, h) {
        T dz = 0;
        for (int64_t o = 0; o < dv; ++o) dz -= th * dS2[o * h + i] * e[o];
        for (int64_t o = 0; o < dv; ++o) dz += W20[o * h + i] * dp[o];
        da[i] = da[i] + dz * sg[i] * (T(1) + a[i] * (T(1) - sg[i]));
      }
      __syncthreads();
      // columns of layer 1: dk = -theta dS1^T delta + W1_0^T da
      TT_EACH(j, dk) {
        T acc = 0;
        for (int64_t i = 0; i < h; ++i) {
          const T di = g[i] * (sg[i] * (T(1) + a[i] * (T(1) - sg[i])));  // delta_i
          acc -= th * dS1[i * dk + j] * di;
        }
        for (int64_t i = 0; i < h; ++i) acc += W10[i * dk + j] * da[i];
        dkk[bt * dk + j] = acc;
      }
      // rows of layer 1: dW1_0 += da k^T; the retrieval's u = W1_{t-1} q, r = silu(u), silu'(u)
      TT_ROWS(i, h) {
        const T dai = da[i];
        T u = 0;
        TT_LANES(j, dk) {
          dW10[i * dk + j] += dai * kt[j];
          u += W1p[i * dk + j] * qt[j];
        }
        u = tt_warp_allsum(u);
        if (lane == 0) {
          const T su = tt_sigm(u);
          r[i] = u * su;
          du[i] = su * (T(1) + u * (T(1) - su));
        }
      }
      __syncthreads();
      TT_EACH(i, h) {  // dr = W2_{t-1}^T dy, du = silu'(u) dr
        T dr = 0;
        for (int64_t o = 0; o < dv; ++o) dr += W2p[o * h + i] * dyt[o];
        du[i] = du[i] * dr;
      }
      __syncthreads();
      TT_EACH(j, dk) {  // dq = W1_{t-1}^T du
        T acc = 0;
        for (int64_t i = 0; i < h; ++i) acc += W1p[i * dk + j] * du[i];
        dq[bt * dk + j] = acc;
      }
      // dS becomes the adjoint of S_{t-1}, dW of W_{t-1}
      TT_ROWS(i, h) {
        const T dui = du[i];
        TT_LANES(j, dk) {
          const int64_t x = i * dk + j;
          dS1[x] *= et;
          dW1[x] = keep * dW1[x] + dui * qt[j];
        }
      }
      TT_ROWS(o, dv) {
        const T dyo = dyt[o];
        TT_LANES(i, h) {
          const int64_t x = o * h + i;
          dS2[x] *= et;
          dW2[x] = keep * dW2[x] + dyo * r[i];
        }
      }
      __syncthreads();
    }
    TT_EACH(x, H1) dW1[x] += dW10[x];  // W1_0c is W1_{start-1}
    TT_EACH(x, H2) dW2[x] += dW20[x];
  }
}

#undef TT_EACH
#undef TT_ROWS
#undef TT_LANES

// ------------------------------------------------------------------ host side
// A defined tensor on the GPU, contiguous, of the given shape and dtype.
static void check_t(Tref t, const Shape& want, DType dt, const char* op, const char* what) {
  require_contiguous(t, op, what);
  ENGRAM_CHECK(t.shape() == want && t.dtype() == dt, "{}: {} should be {} {}, got {} {}", op, what,
               dtype_name(dt), shape_str(want), dtype_name(t.dtype()), shape_str(t.shape()));
}
static void check_opt(Tref t, const Shape& want, DType dt, const char* op, const char* what) {
  if (t.defined()) check_t(t, want, dt, op, what);
}
// q [B, T, dk], v [B, T, dv] and chunk; returns {B, T, dk, dv}.
static std::array<int64_t, 4> check_qv(Tref q, Tref v, int64_t chunk, const char* op) {
  require_contiguous(q, op, "q");
  require_contiguous(v, op, "v");
  ENGRAM_CHECK(q.dim() == 3 && v.dim() == 3 && v.shape()[0] == q.shape()[0] &&
                   v.shape()[1] == q.shape()[1],
               "{}: expected q [B, T, dk] and v [B, T, dv], got q {} v {}", op,
               shape_str(q.shape()), shape_str(v.shape()));
  ENGRAM_CHECK(chunk > 0, "{}: chunk must be positive, got {}", op, chunk);
  ENGRAM_CHECK(q.shape()[0] <= INT_MAX, "{}: {} batch rows is more than one grid holds", op,
               q.shape()[0]);
  return {q.shape()[0], q.shape()[1], q.shape()[2], v.shape()[2]};
}
static void check_scalars(Tref theta, Tref eta, Tref alpha, int64_t B, int64_t Tn, DType dt,
                          const char* op) {
  check_t(theta, {B, Tn}, dt, op, "theta");
  check_t(eta, {B, Tn}, dt, op, "eta");
  check_t(alpha, {B, Tn}, dt, op, "alpha");
}
template <typename T> static const T* opt_ptr(Tref t) {
  return t.defined() ? t.data<T>() : nullptr;  // an undefined optional input reads as zeros
}

template <typename T>
static void linear_forward_impl(Tref q, Tref k, Tref v, Tref theta, Tref eta, Tref alpha, Tref m0,
                                Tref s0, int64_t chunk, Tref y, Tref m_last, Tref s_last,
                                Tref ckpt_m, Tref ckpt_s) {
  const int64_t B = q.shape()[0], Tn = q.shape()[1], dk = q.shape()[2], dv = v.shape()[2];
  flops::add(B * Tn * (dv * (9 * dk + 3) + 1));  // as the CPU counts (core/flops.h)
  const int64_t warps = B * dv, blocks = (warps + kThreads / 32 - 1) / (kThreads / 32);
  if (blocks == 0) return;
  ENGRAM_CHECK(blocks <= INT_MAX, "titans_linear_memory: {} memory rows is more than a grid holds",
               warps);
  linear_forward_kernel<T><<<(unsigned)blocks, kThreads, 0, stream()>>>(
      q.data<T>(), k.data<T>(), v.data<T>(), theta.data<T>(), eta.data<T>(), alpha.data<T>(),
      m0.data<T>(), opt_ptr<T>(s0), B, Tn, dk, dv, chunk, y.data<T>(), m_last.data<T>(),
      s_last.data<T>(), ckpt_m.data<T>(), ckpt_s.data<T>());
  check_launch("titans_linear_memory");
}

static void titans_linear_memory(Tref q, Tref k, Tref v, Tref theta, Tref eta, Tref alpha, Tref m0,
                                 Tref s0, int64_t chunk, Tref y, Tref m_last, Tref s_last,
                                 Tref ckpt_m, Tref ckpt_s) {
  const char* op = "titans_linear_memory";
  const auto [B, Tn, dk, dv] = check_qv(q, v, chunk, op);
  const int64_t nc = (Tn + chunk - 1) / chunk;
  const DType dt = q.dtype();
  check_t(k, {B, Tn, dk}, dt, op, "k");
  check_t(v, {B, Tn, dv}, dt, op, "v");
  check_scalars(theta, eta, alpha, B, Tn, dt, op);
  check_t(m0, {B, dv, dk}, dt, op, "m0");
  check_opt(s0, {B, dv, dk}, dt, op, "s0");
  check_t(y, {B, Tn, dv}, dt, op, "y");
  check_t(m_last, {B, dv, dk}, dt, op, "m_last");
  check_t(s_last, {B, dv, dk}, dt, op, "s_last");
  check_t(ckpt_m, {B, nc, dv, dk}, dt, op, "ckpt_m");
  check_t(ckpt_s, {B, nc, dv, dk}, dt, op, "ckpt_s");
  ENGRAM_DISPATCH_FLOAT(dt, op, [&] {
    linear_forward_impl<scalar_t>(q, k, v, theta, eta, alpha, m0, s0, chunk, y, m_last, s_last,
                                  ckpt_m, ckpt_s);
  });
}

template <typename T>
static void linear_backward_impl(Tref q, Tref k, Tref v, Tref theta, Tref eta, Tref alpha,
                                 Tref ckpt_m, Tref ckpt_s, int64_t chunk, Tref dy, Tref dm_last,
                                 Tref ds_last, Tref dq, Tref dk, Tref dv, Tref dtheta, Tref deta,
                                 Tref dalpha, Tref dm0, Tref ds0) {
  const int64_t B = q.shape()[0], Tn = q.shape()[1], dkn = q.shape()[2], dvn = v.shape()[2];
  if (B == 0) return;
  const int64_t cap = std::min(chunk, Tn);
  Scratch work((size_t)(B * linear_work(cap, dkn, dvn)) * sizeof(T));
  linear_backward_kernel<T><<<(unsigned)B, kThreads, 0, stream()>>>(
      q.data<T>(), k.data<T>(), v.data<T>(), theta.data<T>(), eta.data<T>(), alpha.data<T>(),
      ckpt_m.data<T>(), ckpt_s.data<T>(), Tn, dkn, dvn, chunk, dy.data<T>(), opt_ptr<T>(dm_last),
      opt_ptr<T>(ds_last), dq.data<T>(), dk.data<T>(), dv.data<T>(), dtheta.data<T>(),
      deta.data<T>(), dalpha.data<T>(), dm0.data<T>(), ds0.data<T>(), work.as<T>());
  check_launch("titans_linear_memory_backward");
}

static void titans_linear_memory_backward(Tref q, Tref k, Tref v, Tref theta, Tref eta, Tref alpha,
                                          Tref ckpt_m, Tref ckpt_s, int64_t chunk, Tref dy,
                                          Tref dm_last, Tref ds_last, Tref dq, Tref dk, Tref dv,
                                          Tref dtheta, Tref deta, Tref dalpha, Tref dm0,
                                          Tref ds0) {
  const char* op = "titans_linear_memory_backward";
  const auto [B, Tn, dkn, dvn] = check_qv(q, v, chunk, op);
  const int64_t nc = (Tn + chunk - 1) / chunk;
  const DType dt = q.dtype();
  check_t(k, {B, Tn, dkn}, dt, op, "k");
  check_t(v, {B, Tn, dvn}, dt, op, "v");
  check_scalars(theta, eta, alpha, B, Tn, dt, op);
  check_t(ckpt_m, {B, nc, dvn, dkn}, dt, op, "ckpt_m");
  check_t(ckpt_s, {B, nc, dvn, dkn}, dt, op, "ckpt_s");
  check_t(dy, {B, Tn, dvn}, dt, op, "dy");
  check_opt(dm_last, {B, dvn, dkn}, dt, op, "dm_last");
  check_opt(ds_last, {B, dvn, dkn}, dt, op, "ds_last");
  check_t(dq, {B, Tn, dkn}, dt, op, "dq");
  check_t(dk, {B, Tn, dkn}, dt, op, "dk");
  check_t(dv, {B, Tn, dvn}, dt, op, "dv");
  check_scalars(dtheta, deta, dalpha, B, Tn, dt, op);
  check_t(dm0, {B, dvn, dkn}, dt, op, "dm0");
  check_t(ds0, {B, dvn, dkn}, dt, op, "ds0");
  ENGRAM_DISPATCH_FLOAT(dt, op, [&] {
    linear_backward_impl<scalar_t>(q, k, v, theta, eta, alpha, ckpt_m, ckpt_s, chunk, dy,
                                   dm_last, ds_last, dq, dk, dv, dtheta, deta, dalpha, dm0, ds0);
  });
}

template <typename T>
static void mlp_forward_impl(Tref q, Tref k, Tref v, Tref theta, Tref eta, Tref alpha, Tref w1,
                             Tref w2, Tref s1, Tref s2, int64_t chunk, Tref y, Tref w1_last,
                             Tref w2_last, Tref s1_last, Tref s2_last, Tref ckpt_w1, Tref ckpt_w2,
                             Tref ckpt_s1, Tref ckpt_s2) {
  const int64_t B = q.shape()[0], Tn = q.shape()[1], dk = q.shape()[2], h = w1.shape()[1],
                dv = v.shape()[2], H1 = h * dk, H2 = dv * h;
  flops::add(B * Tn * (9 * H1 + 11 * H2 + 14 * h + 3 * dv + 1));  // as the CPU counts
  if (B == 0) return;
  Scratch work((size_t)(B * (3 * h + dv)) * sizeof(T));
  mlp_forward_kernel<T><<<(unsigned)B, kThreads, 0, stream()>>>(
      q.data<T>(), k.data<T>(), v.data<T>(), theta.data<T>(), eta.data<T>(), alpha.data<T>(),
      w1.data<T>(), w2.data<T>(), opt_ptr<T>(s1), opt_ptr<T>(s2), Tn, dk, h, dv, chunk,
      y.data<T>(), w1_last.data<T>(), w2_last.data<T>(), s1_last.data<T>(), s2_last.data<T>(),
      ckpt_w1.data<T>(), ckpt_w2.data<T>(), ckpt_s1.data<T>(), ckpt_s2.data<T>(), work.as<T>());
  check_launch("titans_mlp_memory");
}

static void titans_mlp_memory(Tref q, Tref k, Tref v, Tref theta, Tref eta, Tref alpha, Tref w1,
                              Tref w2, Tref s1, Tref s2, int64_t chunk, Tref y, Tref w1_last,
                              Tref w2_last, Tref s1_last, Tref s2_last, Tref ckpt_w1,
                              Tref ckpt_w2, Tref ckpt_s1, Tref ckpt_s2) {
  const char* op = "titans_mlp_memory";
  const auto [B, Tn, dk, dv] = check_qv(q, v, chunk, op);
  require_contiguous(w1, op, "w1");
  ENGRAM_CHECK(w1.dim() == 3, "{}: w1 must be [B, h, dk], got {}", op, shape_str(w1.shape()));
  const int64_t h = w1.shape()[1], nc = (Tn + chunk - 1) / chunk;
  const DType dt = q.dtype();
  check_t(k, {B, Tn, dk}, dt, op, "k");
  check_t(v, {B, Tn, dv}, dt, op, "v");
  check_scalars(theta, eta, alpha, B, Tn, dt, op);
  check_t(w1, {B, h, dk}, dt, op, "w1");
  check_t(w2, {B, dv, h}, dt, op, "w2");
  check_opt(s1, {B, h, dk}, dt, op, "s1");
  check_opt(s2, {B, dv, h}, dt, op, "s2");
  check_t(y, {B, Tn, dv}, dt, op, "y");
  check_t(w1_last, {B, h, dk}, dt, op, "w1_last");
  check_t(w2_last, {B, dv, h}, dt, op, "w2_last");
  check_t(s1_last, {B, h, dk}, dt, op, "s1_last");
  check_t(s2_last, {B, dv, h}, dt, op, "s2_last");
  check_t(ckpt_w1, {B, nc, h, dk}, dt, op, "ckpt_w1");
  check_t(ckpt_w2, {B, nc, dv, h}, dt, op, "ckpt_w2");
  check_t(ckpt_s1, {B, nc, h, dk}, dt, op, "ckpt_s1");
  check_t(ckpt_s2, {B, nc, dv, h}, dt, op, "ckpt_s2");
  ENGRAM_DISPATCH_FLOAT(dt, op, [&] {
    mlp_forward_impl<scalar_t>(q, k, v, theta, eta, alpha, w1, w2, s1, s2, chunk, y, w1_last,
                               w2_last, s1_last, s2_last, ckpt_w1, ckpt_w2, ckpt_s1, ckpt_s2);
  });
}

template <typename T>
static void mlp_backward_impl(Tref q, Tref k, Tref v, Tref theta, Tref eta, Tref alpha,
                              Tref ckpt_w1, Tref ckpt_w2, Tref ckpt_s1, Tref ckpt_s2,
                              int64_t chunk, Tref dy, Tref dw1_last, Tref dw2_last, Tref ds1_last,
                              Tref ds2_last, Tref dq, Tref dk, Tref dv, Tref dtheta, Tref deta,
                              Tref dalpha, Tref dw1, Tref dw2, Tref ds1, Tref ds2) {
  const int64_t B = q.shape()[0], Tn = q.shape()[1], dkn = q.shape()[2], h = dw1.shape()[1],
                dvn = v.shape()[2];
  if (B == 0) return;
  Scratch work((size_t)(B * mlp_work(std::min(chunk, Tn), dkn, h, dvn)) * sizeof(T));
  mlp_backward_kernel<T><<<(unsigned)B, kThreads, 0, stream()>>>(
      q.data<T>(), k.data<T>(), v.data<T>(), theta.data<T>(), eta.data<T>(), alpha.data<T>(),
      ckpt_w1.data<T>(), ckpt_w2.data<T>(), ckpt_s1.data<T>(), ckpt_s2.data<T>(), Tn, dkn, h, dvn,
      chunk, dy.data<T>(), opt_ptr<T>(dw1_last), opt_ptr<T>(dw2_last), opt_ptr<T>(ds1_last),
      opt_ptr<T>(ds2_last), dq.data<T>(), dk.data<T>(), dv.data<T>(), dtheta.data<T>(),
      deta.data<T>(), dalpha.data<T>(), dw1.data<T>(), dw2.data<T>(), ds1.data<T>(),
      ds2.data<T>(), work.as<T>());
  check_launch("titans_mlp_memory_backward");
}

static void titans_mlp_memory_backward(Tref q, Tref k, Tref v, Tref theta, Tref eta, Tref alpha,
                                       Tref ckpt_w1, Tref ckpt_w2, Tref ckpt_s1, Tref ckpt_s2,
                                       int64_t chunk, Tref dy, Tref dw1_last, Tref dw2_last,
                                       Tref ds1_last, Tref ds2_last, Tref dq, Tref dk, Tref dv,
                                       Tref dtheta, Tref deta, Tref dalpha, Tref dw1, Tref dw2,
                                       Tref ds1, Tref ds2) {
  const char* op = "titans_mlp_memory_backward";
  const auto [B, Tn, dkn, dvn] = check_qv(q, v, chunk, op);
  require_contiguous(dw1, op, "dw1");
  ENGRAM_CHECK(dw1.dim() == 3, "{}: dw1 must be [B, h, dk], got {}", op, shape_str(dw1.shape()));
  const int64_t h = dw1.shape()[1], nc = (Tn + chunk - 1) / chunk;
  const DType dt = q.dtype();
  check_t(k, {B, Tn, dkn}, dt, op, "k");
  check_t(v, {B, Tn, dvn}, dt, op, "v");
  check_scalars(theta, eta, alpha, B, Tn, dt, op);
  check_t(ckpt_w1, {B, nc, h, dkn}, dt, op, "ckpt_w1");
  check_t(ckpt_w2, {B, nc, dvn, h}, dt, op, "ckpt_w2");
  check_t(ckpt_s1, {B, nc, h, dkn}, dt, op, "ckpt_s1");
  check_t(ckpt_s2, {B, nc, dvn, h}, dt, op, "ckpt_s2");
  check_t(dy, {B, Tn, dvn}, dt, op, "dy");
  check_opt(dw1_last, {B, h, dkn}, dt, op, "dw1_last");
  check_opt(dw2_last, {B, dvn, h}, dt, op, "dw2_last");
  check_opt(ds1_last, {B, h, dkn}, dt, op, "ds1_last");
  check_opt(ds2_last, {B, dvn, h}, dt, op, "ds2_last");
  check_t(dq, {B, Tn, dkn}, dt, op, "dq");
  check_t(dk, {B, Tn, dkn}, dt, op, "dk");
  check_t(dv, {B, Tn, dvn}, dt, op, "dv");
  check_scalars(dtheta, deta, dalpha, B, Tn, dt, op);
  check_t(dw1, {B, h, dkn}, dt, op, "dw1");
  check_t(dw2, {B, dvn, h}, dt, op, "dw2");
  check_t(ds1, {B, h, dkn}, dt, op, "ds1");
  check_t(ds2, {B, dvn, h}, dt, op, "ds2");
  ENGRAM_DISPATCH_FLOAT(dt, op, [&] {
    mlp_backward_impl<scalar_t>(q, k, v, theta, eta, alpha, ckpt_w1, ckpt_w2, ckpt_s1, ckpt_s2,
                                chunk, dy, dw1_last, dw2_last, ds1_last, ds2_last, dq, dk, dv,
                                dtheta, deta, dalpha, dw1, dw2, ds1, ds2);
  });
}

void register_titans(Backend& b) {
  b.titans_linear_memory = titans_linear_memory;
  b.titans_linear_memory_backward = titans_linear_memory_backward;
  b.titans_mlp_memory = titans_mlp_memory;
  b.titans_mlp_memory_backward = titans_mlp_memory_backward;
}

}  // namespace engram::cuda
