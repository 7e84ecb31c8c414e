// cuda/cuda_episodic.cu — the episodic buffer's fused scan on the GPU (mirrors
// core/cpu/cpu_episodic.cpp, which states the read, the write and the backward).
//
// One block per batch element, looping over t (each step reads the slots the last one wrote).
// Thread x owns the slots j = x, x + blockDim, ... for everything done per slot (scores, the
// allowed mask, softmax terms, priorities, the backward's per-slot gradients) and the features
// i = x, x + blockDim, ... for everything done per feature (the recall, the written row, dq). The
// cross-thread steps are block_sum / block_max (a fixed tree: deterministic, not the CPU's
// left-to-right order, so f32 agrees to rounding). The top-k mask is a rank count: slot j is kept
// when fewer than k allowed slots beat it (topk's order: NaN first, larger, then lower slot), so
// no thread sorts. The argmin of the write takes the smallest priority, then the lowest slot.
// Sums and the backward's running slot gradients are in double for both dtypes, as on the CPU.
#include <climits>
#include <cmath>
#include <initializer_list>

#include "core/flops.h"
#include "core/kernel_args.h"
#include "cuda/common.cuh"

namespace engram::cuda {

namespace {

constexpr int kEpisodicThreads = 128;

template <typename T>
__device__ double dot_serial(const T* a, const T* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(a[i]) * double(b[i]);
  return s;
}

// |x| rounded to T (normalize's norm) for x of n elements, summed by the whole block
template <typename T>
__device__ double block_norm(const T* x, int64_t n, double* red) {
  double part = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) part += double(x[i]) * double(x[i]);
  return double(T(sqrt(block_sum(part, red))));
}

template <typename T>
__device__ bool ranks_above(const T* s, int64_t x, int64_t y) {  // topk's order
  const bool nx = isnan(double(s[x])), ny = isnan(double(s[y]));
  if (nx != ny) return nx;
  if (!nx && s[x] != s[y]) return s[x] > s[y];
  return x < y;
}

template <typename T>
__global__ void episodic_forward_kernel(const T* q, const T* k, const T* v, const T* K0,
                                        const T* V0, const T* p0, const T* age0, const T* f0,
                                        EpisodicScanArgs a, int64_t Tn, int64_t S, int64_t dk,
                                        int64_t dv, T* recall, T* Kend, T* Vend, T* p, T* age,
                                        T* f, T* weights, int64_t* writes, double* kdiv_all,
                                        double* e_all, char* allowed_all, int64_t* writer_all) {
  __shared__ double red[32];
  __shared__ int64_t chosen;
  const int64_t b = blockIdx.x;
  T* K = Kend + b * S * dk;
  T* V = Vend + b * S * dv;
  p += b * S, age += b * S, f += b * S;
  double* kdiv = kdiv_all + b * S;
  double* e = e_all + b * S;
  char* allowed = allowed_all + b * S;
  int64_t* writer = writer_all + b * S;
  for (int64_t i = threadIdx.x; i < S * dk; i += blockDim.x) K[i] = K0[b * S * dk + i];
  for (int64_t i = threadIdx.x; i < S * dv; i += blockDim.x) V[i] = V0[b * S * dv + i];
  for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {
    p[j] = p0[b * S + j], age[j] = age0[b * S + j], f[j] = f0[b * S + j], writer[j] = -1;
    // from K0: the copy into K above is split over the threads and not yet published
    const T* K0j = K0 + (b * S + j) * dk;
    kdiv[j] = fmax(double(T(sqrt(dot_serial(K0j, K0j, dk)))), a.eps);
  }
  __syncthreads();
  const double inv_tau = double(T(1.0 / a.temperature)), lowest = -INFINITY;
  for (int64_t t = 0; t < Tn; ++t) {
    const int64_t row = b * Tn + t;
    const T* qt = q + row * dk;
    const T* kt = k + row * dk;
    const T* vt = v + row * dv;
    T* wt = weights + row * S;
    const double qdiv = fmax(block_norm(qt, dk, red), a.eps);
    const double kt_norm = block_norm(kt, dk, red), kt_div = fmax(kt_norm, a.eps);
    // ---- read: scores (kept in wt until the weights replace them), the allowed mask, softmax
    double sim_part = -2;  // no filled slot: novelty 1
    for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {
      wt[j] = T(dot_serial(qt, K + j * dk, dk) / (qdiv * kdiv[j]) * inv_tau);
      if (f[j] != T(0)) sim_part = fmax(sim_part, dot_serial(kt, K + j * dk, dk) / (kt_div * kdiv[j]));
    }
    const double max_sim = block_max(sim_part, red, -2.0);  // its barriers publish wt
    int64_t n_allowed_part = 0;
    for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {
      allowed[j] = f[j] != T(0) && (a.recency_window <= 0 || age[j] < T(a.recency_window));
      n_allowed_part += allowed[j];
    }
    const double n_allowed = block_sum(double(n_allowed_part), red);
    if (a.top_k > 0 && n_allowed > double(a.top_k)) {
      for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {
        if (!allowed[j]) continue;
        int64_t rank = 0;
        for (int64_t i = 0; i < S; ++i)
          if (i != j && f[i] != T(0) && (a.recency_window <= 0 || age[i] < T(a.recency_window)) &&
              ranks_above(wt, i, j))
            ++rank;
        // into e[j], not allowed[j]: the other threads recompute the mask above, never read it
        e[j] = rank < a.top_k ? 1.0 : 0.0;
      }
      __syncthreads();
      for (int64_t j = threadIdx.x; j < S; j += blockDim.x)
        if (allowed[j]) allowed[j] = e[j] > 0;
      __syncthreads();
    }
    double m_part = lowest;
    for (int64_t j = threadIdx.x; j < S; j += blockDim.x)
      if (allowed[j]) m_part = fmax(m_part, double(wt[j]));
    const double m = block_max(m_part, red, lowest);
    double z_part = 0;
    for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {
      e[j] = allowed[j] ? exp(double(wt[j]) - m) : 0.0;
      z_part += e[j];
    }
    const double z = block_sum(z_part, red);
    for (int64_t j = threadIdx.x; j < S; j += blockDim.x) wt[j] = z > 0 ? T(e[j] / z) : T(0);
    __syncthreads();
    for (int64_t i = threadIdx.x; i < dv; i += blockDim.x) {
      double r = 0;
      for (int64_t j = 0; j < S; ++j)
        if (wt[j] != T(0)) r += double(wt[j]) * double(V[j * dv + i]);
      recall[row * dv + i] = T(r);
    }
    // ---- write: decay, age, the slot of smallest priority (then the lowest index)
    double best = INFINITY, best_j = double(S);
    for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {
      p[j] = p[j] * T(a.decay);
      age[j] = age[j] + T(1);
      const double priority = double(p[j] - (T(1) - f[j]));
      if (priority < best) best = priority, best_j = double(j);
    }
    const double smallest = -block_max(-best, red, lowest);
    const double first = -block_max(best == smallest ? -best_j : lowest, red, lowest);
    if (threadIdx.x == 0) {
      chosen = first < double(S) ? int64_t(first) : 0;  // all NaN: slot 0, as the CPU
      const int64_t slot = chosen;
      writes[row * 2] = slot, writes[row * 2 + 1] = writer[slot], writer[slot] = t;
      p[slot] = T(fmin(fmax(1.0 - max_sim, 0.0), 1.0)), age[slot] = T(0), f[slot] = T(1);
      kdiv[slot] = kt_div;
    }
    __syncthreads();
    const int64_t slot = chosen;
    for (int64_t i = threadIdx.x; i < dk; i += blockDim.x) K[slot * dk + i] = kt[i];
    for (int64_t i = threadIdx.x; i < dv; i += blockDim.x) V[slot * dv + i] = vt[i];
    __syncthreads();
  }
}

template <typename T>
__global__ void episodic_backward_kernel(const T* q, const T* k, const T* v, const T* K0,
                                         const T* V0, const T* Kend, const T* Vend,
                                         const T* weights, const int64_t* writes,
                                         EpisodicScanArgs a, int64_t Tn, int64_t S, int64_t dk,
                                         int64_t dv, const T* dr, const T* dKend, const T* dVend,
                                         T* dq, T* dkk, T* dvv, T* dK0, T* dV0, T* K_all, T* V_all,
                                         double* dK_all, double* dV_all, double* slot_all,
                                         double* dqn_all) {
  __shared__ double red[32];
  const int64_t b = blockIdx.x;
  T* K = K_all + b * S * dk;
  T* V = V_all + b * S * dv;
  double* dK = dK_all + b * S * dk;
  double* dV = dV_all + b * S * dv;
  double* knorm = slot_all + b * S * 3;
  double* kdiv = knorm + S;
  double* ds = kdiv + S;
  double* dqn = dqn_all + b * dk;
  K0 += b * S * dk, V0 += b * S * dv;
  for (int64_t i = threadIdx.x; i < S * dk; i += blockDim.x) {
    K[i] = Kend[b * S * dk + i];
    dK[i] = a.detach_memory ? 0.0 : double(dKend[b * S * dk + i]);
  }
  for (int64_t i = threadIdx.x; i < S * dv; i += blockDim.x) {
    V[i] = Vend[b * S * dv + i];
    dV[i] = a.detach_memory ? 0.0 : double(dVend[b * S * dv + i]);
  }
  __syncthreads();
  for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {
    knorm[j] = double(T(sqrt(dot_serial(K + j * dk, K + j * dk, dk))));
    kdiv[j] = fmax(knorm[j], a.eps);
  }
  const double inv_tau = double(T(1.0 / a.temperature));
  for (int64_t t = Tn - 1; t >= 0; --t) {
    const int64_t row = b * Tn + t;
    const T* qt = q + row * dk;
    const T* wt = weights + row * S;
    const T* drt = dr + row * dv;
    const int64_t slot = writes[row * 2], prev = writes[row * 2 + 1];
    const T* old_k = prev >= 0 ? k + (b * Tn + prev) * dk : K0 + slot * dk;
    const T* old_v = prev >= 0 ? v + (b * Tn + prev) * dv : V0 + slot * dv;
    __syncthreads();  // the last step's reads of K, V, dK, dV are done
    // ---- undo the write of step t
    for (int64_t i = threadIdx.x; i < dk; i += blockDim.x) {
      dkk[row * dk + i] = T(dK[slot * dk + i]);
      dK[slot * dk + i] = 0, K[slot * dk + i] = old_k[i];
    }
    for (int64_t i = threadIdx.x; i < dv; i += blockDim.x) {
      dvv[row * dv + i] = T(dV[slot * dv + i]);
      dV[slot * dv + i] = 0, V[slot * dv + i] = old_v[i];
    }
    const double restored = block_norm(old_k, dk, red);  // its barriers publish K, V
    if (threadIdx.x == 0) knorm[slot] = restored, kdiv[slot] = fmax(restored, a.eps);
    const double qnorm = block_norm(qt, dk, red), qdiv = fmax(qnorm, a.eps);  // publishes kdiv
    // ---- the read of step t
    const bool into_slots = !a.detach_memory || t == 0;
    double wdw_part = 0;
    for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {
      ds[j] = wt[j] != T(0) ? dot_serial(drt, V + j * dv, dv) : 0.0;  // dw_j for now
      wdw_part += double(wt[j]) * ds[j];
    }
    const double wdw = block_sum(wdw_part, red);
    for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {
      if (wt[j] == T(0)) {
        ds[j] = 0;
        continue;
      }
      const double w = double(wt[j]), dsj = w * (ds[j] - wdw) * inv_tau;
      ds[j] = dsj;
      if (!into_slots) continue;
      for (int64_t i = 0; i < dv; ++i) dV[j * dv + i] += w * double(drt[i]);
      // normalize's backward for K_j with dkn = ds_j qn
      const T* Kj = K + j * dk;
      double ydy = 0;
      for (int64_t i = 0; i < dk; ++i) ydy += double(Kj[i]) / kdiv[j] * (dsj * double(qt[i]) / qdiv);
      const double proj = knorm[j] > a.eps ? ydy : 0.0;
      for (int64_t i = 0; i < dk; ++i)
        dK[j * dk + i] += (dsj * double(qt[i]) / qdiv - double(Kj[i]) / kdiv[j] * proj) / kdiv[j];
    }
    __syncthreads();
    double ydy_part = 0;
    for (int64_t i = threadIdx.x; i < dk; i += blockDim.x) {
      double g = 0;
      for (int64_t j = 0; j < S; ++j)
        if (ds[j] != 0) g += ds[j] * double(K[j * dk + i]) / kdiv[j];
      dqn[i] = g;
      ydy_part += double(qt[i]) / qdiv * g;
    }
    const double ydy = block_sum(ydy_part, red), proj = qnorm > a.eps ? ydy : 0.0;
    for (int64_t i = threadIdx.x; i < dk; i += blockDim.x)
      dq[row * dk + i] = T((dqn[i] - double(qt[i]) / qdiv * proj) / qdiv);
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < S * dk; i += blockDim.x) dK0[b * S * dk + i] = T(dK[i]);
  for (int64_t i = threadIdx.x; i < S * dv; i += blockDim.x) dV0[b * S * dv + i] = T(dV[i]);
}

void require_all_contiguous(std::initializer_list<const Tensor*> ts, const char* op) {
  for (const Tensor* t : ts) require_contiguous(*t, op, "an operand");
}

template <typename T>
void forward_impl(Tref q, Tref k, Tref v, const EpisodicSlots& st, const EpisodicScanArgs& a,
                  Tref recall, const EpisodicSlots& end, Tref weights, Tref writes,
                  const EpisodicSizes& n) {
  flops::add(n.B * n.T * n.S * (4 * n.dk + 2 * n.dv));  // as the CPU counts (core/flops.h)
  if (n.B == 0) return;
  Scratch kdiv(size_t(n.B * n.S) * sizeof(double)), e(size_t(n.B * n.S) * sizeof(double));
  Scratch allowed(size_t(n.B * n.S)), writer(size_t(n.B * n.S) * sizeof(int64_t));
  episodic_forward_kernel<T><<<(unsigned)n.B, kEpisodicThreads, 0, stream()>>>(
      q.data<T>(), k.data<T>(), v.data<T>(), st.keys.data<T>(), st.values.data<T>(),
      st.importance.data<T>(), st.age.data<T>(), st.filled.data<T>(), a, n.T, n.S, n.dk, n.dv,
      recall.data<T>(), end.keys.data<T>(), end.values.data<T>(), end.importance.data<T>(),
      end.age.data<T>(), end.filled.data<T>(), weights.data<T>(), writes.data<int64_t>(),
      kdiv.as<double>(), e.as<double>(), allowed.as<char>(), writer.as<int64_t>());
  check_launch("episodic_scan");
}

template <typename T>
void backward_impl(Tref q, Tref k, Tref v, Tref K0, Tref V0, Tref Kend, Tref Vend, Tref weights,
                   Tref writes, const EpisodicScanArgs& a, Tref dr, Tref dKend, Tref dVend, Tref dq,
                   Tref dk, Tref dv, Tref dK0, Tref dV0, const EpisodicSizes& n) {
  if (n.B == 0) return;
  Scratch K(size_t(n.B * n.S * n.dk) * sizeof(T)), V(size_t(n.B * n.S * n.dv) * sizeof(T));
  Scratch dK(size_t(n.B * n.S * n.dk) * sizeof(double));
  Scratch dV(size_t(n.B * n.S * n.dv) * sizeof(double));
  Scratch slots(size_t(n.B * n.S * 3) * sizeof(double)), dqn(size_t(n.B * n.dk) * sizeof(double));
  episodic_backward_kernel<T><<<(unsigned)n.B, kEpisodicThreads, 0, stream()>>>(
      q.data<T>(), k.data<T>(), v.data<T>(), K0.data<T>(), V0.data<T>(), Kend.data<T>(),
      Vend.data<T>(), weights.data<T>(), writes.data<int64_t>(), a, n.T, n.S, n.dk, n.dv,
      dr.data<T>(), dKend.data<T>(), dVend.data<T>(), dq.data<T>(), dk.data<T>(), dv.data<T>(),
      dK0.data<T>(), dV0.data<T>(), K.as<T>(), V.as<T>(), dK.as<double>(), dV.as<double>(),
      slots.as<double>(), dqn.as<double>());
  check_launch("episodic_scan_backward");
}

}  // namespace

static void episodic_scan(Tref q, Tref k, Tref v, const EpisodicSlots& st,
                          const EpisodicScanArgs& a, Tref recall, const EpisodicSlots& end,
                          Tref weights, Tref writes) {
  const char* op = "episodic_scan";
  const EpisodicSizes n = check_episodic_scan_args(q, k, v, st, end, recall, weights, writes);
  require_all_contiguous({&q, &k, &v, &st.keys, &st.values, &st.importance, &st.age, &st.filled,
                          &recall, &end.keys, &end.values, &end.importance, &end.age,
                          &end.filled, &weights, &writes},
                         op);
  ENGRAM_CHECK(n.B <= INT_MAX, "{}: {} rows is more than one grid holds", op, n.B);
  ENGRAM_DISPATCH_FLOAT(q.dtype(), op, [&] {
    forward_impl<scalar_t>(q, k, v, st, a, recall, end, weights, writes, n);
  });
}

static void episodic_scan_backward(Tref q, Tref k, Tref v, Tref K0, Tref V0, Tref Kend, Tref Vend,
                                   Tref weights, Tref writes, const EpisodicScanArgs& a, Tref dr,
                                   Tref dKend, Tref dVend, Tref dq, Tref dk, Tref dv, Tref dK0,
                                   Tref dV0) {
  const char* op = "episodic_scan_backward";
  const EpisodicSizes n = check_episodic_scan_backward_args(
      q, k, v, K0, V0, Kend, Vend, weights, writes, dr, dKend, dVend, dq, dk, dv, dK0, dV0);
  require_all_contiguous({&q, &k, &v, &K0, &V0, &Kend, &Vend, &weights, &writes, &dr, &dKend,
                          &dVend, &dq, &dk, &dv, &dK0, &dV0},
                         op);
  ENGRAM_DISPATCH_FLOAT(q.dtype(), op, [&] {
    backward_impl<scalar_t>(q, k, v, K0, V0, Kend, Vend, weights, writes, a, dr, dKend, dVend, dq,
                            dk, dv, dK0, dV0, n);
  });
}

void register_episodic(Backend& b) {
  b.episodic_scan = episodic_scan;
  b.episodic_scan_backward = episodic_scan_backward;
}

}  // namespace engram::cuda
