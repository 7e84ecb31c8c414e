// core/cpu/cpu_episodic.cpp — the episodic buffer's whole sequence in one kernel (episodic_scan).
//
// memory/crsd/episodic.h states the model; per batch element b and step t, with the slots
// K [S, dk], V [S, dv], importance p, age a, filled f [S] entering the step:
//   read   qn = q_t / max(|q_t|, eps),  kn_j = K_j / max(|K_j|, eps),  s_j = (qn . kn_j) / tau
//          allowed_j = f_j and (no window or a_j < window) and (no top-k or s_j among the k best
//          allowed scores, lower slot first on ties)
//          w = softmax(s) over the allowed slots (0 elsewhere; all 0 when none is allowed)
//          r_t = sum_j w_j V_j
//   write  novelty = clamp(1 - max_{filled j} (k_t/max(|k_t|, eps)) . kn_j, 0, 1)  (1 when empty)
//          p <- decay p, a <- a + 1, j* = argmin_j (p_j - (1 - f_j))   (first minimum)
//          K_j* <- k_t, V_j* <- v_t, p_j* <- novelty, a_j* <- 0, f_j* <- 1
// The forward saves, per step, the read weights w [S] and the write (j*, and the step that wrote
// slot j* before, or -1 when it still held its content from the start).
//
// Backward, from the gradients dr_t and those reaching the final K, V (dK, dV), t = T-1 .. 0:
//   undo the write:  dk_t = dK_j*, dv_t = dV_j*, then dK_j* = dV_j* = 0 (the overwritten content
//                    got no gradient through the slot after step t), and K_j*, V_j* are restored
//                    from the saved previous writer (k and v of that step, or the start slots), so
//                    no state of the sequence is ever stored
//   the read:        dV_j += w_j dr_t,  dw_j = dr_t . V_j,  ds_j = w_j (dw_j - sum_i w_i dw_i) / tau
//                    dqn = sum_j ds_j kn_j,  dkn_j = ds_j qn
//                    normalize's backward: dx = (dy - y (y . dy) [|x| > eps]) / max(|x|, eps)
// With detach_memory the memory is a constant input: no gradient through any write (dk = dv = 0
// from the slots), and the reads reach the start slots only at t = 0 (the only step whose K, V
// are the start slots themselves), as per-step ops with detach() give.
//
// A per-step loop of tensor ops records ~40 nodes and allocates ~60 tensors per step; this is one
// node. Sums run in double. The batch elements are independent (parallel over b), and each one's
// arithmetic does not depend on B, so a data-parallel run's rows equal a single process's.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "core/backend.h"
#include "core/flops.h"
#include "core/cpu/kernel_checks.h"
#include "core/kernel_args.h"
#include "core/cpu/vmath.h"

namespace engram::cpu {

namespace {

// a . b in double; `simd reduction` lets the sum run in vector lanes (its order is then not
// left to right, which nothing here depends on)
template <typename T, typename U>
double dot(const T* a, const U* b, int64_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += double(a[i]) * double(b[i]);
  return s;
}

// max(|x|_2, eps): normalize's divisor (autograd/nn_ops.cpp), the norm rounded to T as there
template <typename T>
double norm_divisor(const T* x, int64_t n, double eps, double* norm) {
  *norm = double(T(std::sqrt(dot(x, x, n))));
  return std::max(*norm, eps);
}

// The slots a read may attend to (filled, in the recency window, among the top-k scores).
template <typename T>
void allowed_slots(const T* s, const T* age, const T* filled, int64_t S, const EpisodicScanArgs& a,
                   std::vector<int64_t>& order, std::vector<char>& allowed) {
  order.clear();
  for (int64_t j = 0; j < S; ++j) {
    allowed[j] = filled[j] != T(0) && (a.recency_window <= 0 || age[j] < T(a.recency_window));
    if (allowed[j]) order.push_back(j);
  }
  if (a.top_k <= 0 || int64_t(order.size()) <= a.top_k) return;
  // topk's order (core/cpu/cpu_reduce.cpp): NaN first, then larger, then the lower slot
  auto better = [&](int64_t x, int64_t y) {
    bool nx = std::isnan(s[x]), ny = std::isnan(s[y]);
    if (nx != ny) return nx;
    if (!nx && s[x] != s[y]) return s[x] > s[y];
    return x < y;
  };
  std::partial_sort(order.begin(), order.begin() + a.top_k, order.end(), better);
  for (size_t i = a.top_k; i < order.size(); ++i) allowed[order[i]] = 0;
}

template <typename T>
ENGRAM_SIMD_CLONES void forward_one(const T* q, const T* k, const T* v, const EpisodicSlots& start,
                 const EpisodicScanArgs& a, int64_t b, int64_t Tn, int64_t S, int64_t dk, int64_t dv,
                 T* recall, const EpisodicSlots& end, T* weights, int64_t* writes) {
  // the running slots live in the `end` outputs
  T* K = end.keys.data<T>() + b * S * dk;
  T* V = end.values.data<T>() + b * S * dv;
  T* p = end.importance.data<T>() + b * S;
  T* age = end.age.data<T>() + b * S;
  T* f = end.filled.data<T>() + b * S;
  std::memcpy(K, start.keys.data<T>() + b * S * dk, S * dk * sizeof(T));
  std::memcpy(V, start.values.data<T>() + b * S * dv, S * dv * sizeof(T));
  std::memcpy(p, start.importance.data<T>() + b * S, S * sizeof(T));
  std::memcpy(age, start.age.data<T>() + b * S, S * sizeof(T));
  std::memcpy(f, start.filled.data<T>() + b * S, S * sizeof(T));
  std::vector<double> kdiv(S), r(dv), e(S);
  std::vector<T> s(S);
  std::vector<int64_t> writer(S, -1), order;
  std::vector<char> allowed(S);
  double unused;
  for (int64_t j = 0; j < S; ++j) kdiv[j] = norm_divisor(K + j * dk, dk, a.eps, &unused);
  const double inv_tau = double(T(1.0 / a.temperature));
  for (int64_t t = 0; t < Tn; ++t) {
    const T* qt = q + (b * Tn + t) * dk;
    const T* kt = k + (b * Tn + t) * dk;
    const T* vt = v + (b * Tn + t) * dv;
    T* wt = weights + (b * Tn + t) * S;
    // ---- read
    const double qdiv = norm_divisor(qt, dk, a.eps, &unused);
    for (int64_t j = 0; j < S; ++j) s[j] = T(dot(qt, K + j * dk, dk) / (qdiv * kdiv[j]) * inv_tau);
    allowed_slots(s.data(), age, f, S, a, order, allowed);
    double m = -std::numeric_limits<double>::infinity(), z = 0;
    for (int64_t j : order)
      if (allowed[j]) m = std::max(m, double(s[j]));
    for (int64_t j = 0; j < S; ++j) {
      e[j] = allowed[j] ? std::exp(double(s[j]) - m) : 0.0;
      z += e[j];
    }
    std::fill(r.begin(), r.end(), 0.0);
    for (int64_t j = 0; j < S; ++j) {
      wt[j] = z > 0 ? T(e[j] / z) : T(0);
      if (wt[j] == T(0)) continue;
      const double wj = wt[j];
      const T* Vj = V + j * dv;
#pragma omp simd
      for (int64_t i = 0; i < dv; ++i) r[i] += wj * double(Vj[i]);
    }
    T* rt = recall + (b * Tn + t) * dv;
    for (int64_t i = 0; i < dv; ++i) rt[i] = T(r[i]);
    // ---- write
    double kt_norm;
    const double kt_div = norm_divisor(kt, dk, a.eps, &kt_norm);
    double max_sim = -2;  // no filled slot: novelty 1
    for (int64_t j = 0; j < S; ++j)
      if (f[j] != T(0)) max_sim = std::max(max_sim, dot(kt, K + j * dk, dk) / (kt_div * kdiv[j]));
    const T novelty = T(std::clamp(1.0 - max_sim, 0.0, 1.0));
    int64_t slot = 0;
    T best = std::numeric_limits<T>::infinity();
    for (int64_t j = 0; j < S; ++j) {
      p[j] = p[j] * T(a.decay);
      age[j] = age[j] + T(1);
      const T priority = p[j] - (T(1) - f[j]);  // empty slots (-1) first
      if (priority < best) best = priority, slot = j;
    }
    writes[(b * Tn + t) * 2] = slot;
    writes[(b * Tn + t) * 2 + 1] = writer[slot];
    writer[slot] = t;
    p[slot] = novelty, age[slot] = T(0), f[slot] = T(1);
    std::memcpy(K + slot * dk, kt, dk * sizeof(T));
    std::memcpy(V + slot * dv, vt, dv * sizeof(T));
    kdiv[slot] = std::max(kt_norm, a.eps);
  }
}

template <typename T>
ENGRAM_SIMD_CLONES void backward_one(const T* q, const T* k, const T* v, Tref keys0, Tref values0,
                                     Tref keys_end, Tref values_end, const T* weights,
                                     const int64_t* writes, const EpisodicScanArgs& a, int64_t b,
                                     int64_t Tn, int64_t S, int64_t dk, int64_t dv, const T* dr,
                                     Tref dkeys_end, Tref dvalues_end, T* dq, T* dkk, T* dvv,
                                     T* dkeys0, T* dvalues0) {
  const T* K0 = keys0.data<T>() + b * S * dk;
  const T* V0 = values0.data<T>() + b * S * dv;
  std::vector<T> K(keys_end.data<T>() + b * S * dk, keys_end.data<T>() + (b + 1) * S * dk);
  std::vector<T> V(values_end.data<T>() + b * S * dv, values_end.data<T>() + (b + 1) * S * dv);
  std::vector<double> dK(S * dk, 0.0), dV(S * dv, 0.0), knorm(S), kdiv(S), qn(dk), dqn(dk), dw(S);
  if (!a.detach_memory) {
    const T* gK = dkeys_end.data<T>() + b * S * dk;
    const T* gV = dvalues_end.data<T>() + b * S * dv;
    for (int64_t i = 0; i < S * dk; ++i) dK[i] = gK[i];
    for (int64_t i = 0; i < S * dv; ++i) dV[i] = gV[i];
  }
  for (int64_t j = 0; j < S; ++j) kdiv[j] = norm_divisor(K.data() + j * dk, dk, a.eps, &knorm[j]);
  const double inv_tau = double(T(1.0 / a.temperature));
  for (int64_t t = Tn - 1; t >= 0; --t) {
    const T* qt = q + (b * Tn + t) * dk;
    const T* wt = weights + (b * Tn + t) * S;
    const T* drt = dr + (b * Tn + t) * dv;
    T* dkt = dkk + (b * Tn + t) * dk;
    T* dvt = dvv + (b * Tn + t) * dv;
    // ---- undo the write of step t
    const int64_t slot = writes[(b * Tn + t) * 2], prev = writes[(b * Tn + t) * 2 + 1];
    for (int64_t i = 0; i < dk; ++i) dkt[i] = T(dK[slot * dk + i]), dK[slot * dk + i] = 0;
    for (int64_t i = 0; i < dv; ++i) dvt[i] = T(dV[slot * dv + i]), dV[slot * dv + i] = 0;
    const T* old_k = prev >= 0 ? k + (b * Tn + prev) * dk : K0 + slot * dk;
    const T* old_v = prev >= 0 ? v + (b * Tn + prev) * dv : V0 + slot * dv;
    std::memcpy(K.data() + slot * dk, old_k, dk * sizeof(T));
    std::memcpy(V.data() + slot * dv, old_v, dv * sizeof(T));
    kdiv[slot] = norm_divisor(old_k, dk, a.eps, &knorm[slot]);
    // ---- the read of step t, against K_t, V_t; with a detached memory the slots' gradients
    // reach only the start slots (t = 0)
    const bool into_slots = !a.detach_memory || t == 0;
    double qnorm;
    const double qdiv = norm_divisor(qt, dk, a.eps, &qnorm), inv_qdiv = 1.0 / qdiv;
    for (int64_t i = 0; i < dk; ++i) qn[i] = double(qt[i]) * inv_qdiv;
    double wdw = 0;
    for (int64_t j = 0; j < S; ++j) {
      dw[j] = wt[j] != T(0) ? dot(drt, V.data() + j * dv, dv) : 0.0;
      wdw += double(wt[j]) * dw[j];
    }
    std::fill(dqn.begin(), dqn.end(), 0.0);
    for (int64_t j = 0; j < S; ++j) {
      if (wt[j] == T(0)) continue;  // not allowed (or a weight that underflowed): no gradient
      const double w = wt[j], ds = w * (dw[j] - wdw) * inv_tau, inv_kdiv = 1.0 / kdiv[j];
      const T* Kj = K.data() + j * dk;
      const double c = ds * inv_kdiv;  // dqn += ds kn_j
#pragma omp simd
      for (int64_t i = 0; i < dk; ++i) dqn[i] += c * double(Kj[i]);
      if (!into_slots) continue;
      double* dVj = dV.data() + j * dv;
#pragma omp simd
      for (int64_t i = 0; i < dv; ++i) dVj[i] += w * double(drt[i]);
      // normalize's backward for K_j with dkn = ds qn:
      //   dK_j += (dkn - kn_j (kn_j . dkn) [|K_j| > eps]) / kdiv_j
      const double proj = knorm[j] > a.eps ? ds * dot(Kj, qn.data(), dk) * inv_kdiv : 0.0;
      double* dKj = dK.data() + j * dk;
#pragma omp simd
      for (int64_t i = 0; i < dk; ++i)
        dKj[i] += (ds * qn[i] - double(Kj[i]) * inv_kdiv * proj) * inv_kdiv;
    }
    // and for q with dqn
    const double proj = qnorm > a.eps ? dot(qn.data(), dqn.data(), dk) : 0.0;
    T* dq_t = dq + (b * Tn + t) * dk;
    for (int64_t i = 0; i < dk; ++i) dq_t[i] = T((dqn[i] - qn[i] * proj) * inv_qdiv);
  }
  for (int64_t i = 0; i < S * dk; ++i) dkeys0[b * S * dk + i] = T(dK[i]);
  for (int64_t i = 0; i < S * dv; ++i) dvalues0[b * S * dv + i] = T(dV[i]);
}

// Every batch element on its own (the pragma cannot sit inside ENGRAM_DISPATCH_FLOAT's argument).
template <typename T>
void forward_all(Tref q, Tref k, Tref v, const EpisodicSlots& start, const EpisodicScanArgs& a,
                 int64_t B, int64_t Tn, int64_t S, int64_t dk, int64_t dv, Tref recall,
                 const EpisodicSlots& end, Tref weights, Tref writes) {
#pragma omp parallel for schedule(static) if (B * Tn * S * (dk + dv) > (1 << 16))
  for (int64_t b = 0; b < B; ++b)
    forward_one<T>(q.data<T>(), k.data<T>(), v.data<T>(), start, a, b, Tn, S, dk, dv,
                   recall.data<T>(), end, weights.data<T>(), writes.data<int64_t>());
}

template <typename T>
void backward_all(Tref q, Tref k, Tref v, Tref keys0, Tref values0, Tref keys_end, Tref values_end,
                  Tref weights, Tref writes, const EpisodicScanArgs& a, int64_t B, int64_t Tn,
                  int64_t S, int64_t dk, int64_t dv, Tref drecall, Tref dkeys_end,
                  Tref dvalues_end, Tref dq, Tref dkk, Tref dvv, Tref dkeys0, Tref dvalues0) {
#pragma omp parallel for schedule(static) if (B * Tn * S * (dk + dv) > (1 << 16))
  for (int64_t b = 0; b < B; ++b)
    backward_one<T>(q.data<T>(), k.data<T>(), v.data<T>(), keys0, values0, keys_end, values_end,
                    weights.data<T>(), writes.data<int64_t>(), a, b, Tn, S, dk, dv,
                    drecall.data<T>(), dkeys_end, dvalues_end, dq.data<T>(), dkk.data<T>(),
                    dvv.data<T>(), dkeys0.data<T>(), dvalues0.data<T>());
}

}  // namespace

static void episodic_scan(Tref q, Tref k, Tref v, const EpisodicSlots& start,
                          const EpisodicScanArgs& a, Tref recall, const EpisodicSlots& end,
                          Tref weights, Tref writes) {
  const EpisodicSizes n = check_episodic_scan_args(q, k, v, start, end, recall, weights, writes);
  check_contiguous({&q, &k, &v, &start.keys, &start.values, &start.importance, &start.age,
                    &start.filled, &recall, &end.keys, &end.values, &end.importance, &end.age,
                    &end.filled, &weights, &writes},
                   "episodic_scan");
  flops::add(n.B * n.T * n.S * (4 * n.dk + 2 * n.dv));  // scores, novelty, recall (core/flops.h)
  ENGRAM_DISPATCH_FLOAT(q.dtype(), "episodic_scan", [&] {
    forward_all<scalar_t>(q, k, v, start, a, n.B, n.T, n.S, n.dk, n.dv, recall, end, weights,
                          writes);
  });
}

static void episodic_scan_backward(Tref q, Tref k, Tref v, Tref keys0, Tref values0, Tref keys_end,
                                   Tref values_end, Tref weights, Tref writes,
                                   const EpisodicScanArgs& a, Tref drecall, Tref dkeys_end,
                                   Tref dvalues_end, Tref dq, Tref dk, Tref dv, Tref dkeys0,
                                   Tref dvalues0) {
  const EpisodicSizes n = check_episodic_scan_backward_args(q, k, v, keys0, values0, keys_end, values_end, weights, writes,
                                    drecall, dkeys_end, dvalues_end, dq, dk, dv, dkeys0, dvalues0);
  check_contiguous({&q, &k, &v, &keys0, &values0, &keys_end, &values_end, &weights, &writes,
                    &drecall, &dkeys_end, &dvalues_end, &dq, &dk, &dv, &dkeys0, &dvalues0},
                   "episodic_scan_backward");
  ENGRAM_DISPATCH_FLOAT(q.dtype(), "episodic_scan_backward", [&] {
    using T = scalar_t;
    backward_all<T>(q, k, v, keys0, values0, keys_end, values_end, weights, writes, a, n.B, n.T, n.S,
                    n.dk, n.dv, drecall, dkeys_end, dvalues_end, dq, dk, dv, dkeys0, dvalues0);
  });
}

void register_episodic(Backend& b) {
  b.episodic_scan = episodic_scan;
  b.episodic_scan_backward = episodic_scan_backward;
}

}  // namespace engram::cpu
