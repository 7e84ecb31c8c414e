// core/flops.h — a process-wide counter of the floating-point operations the kernels execute.
//
// What is counted (each kernel adds its own exact count once per call, before its loops):
//   matmul (core/cpu/cpu_blas.cpp)        2 M N K per product, times the batch count
//                                         (out[b] = A[b] @ B[b], A [M, K], B [K, N]; alpha/beta
//                                         scaling is not counted)
//   titans_linear_memory forward          per batch row and token, dv (9 dk + 3) + 1
//     (core/cpu/cpu_titans.cpp)           read M q 2 dv dk, prediction M0 k 2 dv dk, surprise
//                                         S = eta S - g k^T 3 dv dk, M = (1 - alpha) M + S 2 dv dk,
//                                         g = theta 2 (pred - v) 3 dv, 1 - alpha 1
//   cmr_drift_scan forward                per row and step, 5 D + 8: d = c . cin 2 D,
//     (core/cpu/cpu_cmr.cpp)              c = rho c + beta cin 3 D, rho = sqrt(1 + b^2 (d^2 - 1)) - b d
//                                         8 (sqrt counted as one)
//   episodic_scan forward                 per batch row, step and slot, 4 dk + 2 dv: the score
//     (core/cpu/cpu_episodic.cpp)         q . K_j 2 dk, the novelty k . K_j 2 dk, the recall
//                                         w_j V_j 2 dv (norms, softmax and the write not counted)
// An add, a multiply or a subtract is one operation (a multiply-add is two). Elementwise ops,
// reductions, softmax and the fused backward kernels are not counted: the count is the matrix
// products plus the memory kernels' forwards, the dominant terms of attention and memory blocks
// (apps/memory_cost compares it with closed-form predictions).
//
// The counter is one relaxed std::atomic, bumped once per kernel call (not per element), so it is
// thread-safe and costs nothing measurable. It counts every thread of the process: a Scope
// measures whatever ran between its construction and elapsed().
//   engram::flops::Scope s;  model.forward(x);  int64_t n = s.elapsed();
#pragma once
#include <atomic>
#include <cstdint>

namespace engram::flops {

extern std::atomic<int64_t> counter;

inline void add(int64_t n) { counter.fetch_add(n, std::memory_order_relaxed); }
inline int64_t count() { return counter.load(std::memory_order_relaxed); }
void reset();

// Operations counted since construction (or since the last restart()).
struct Scope {
  int64_t start = count();
  int64_t elapsed() const { return count() - start; }
  void restart() { start = count(); }
};

}  // namespace engram::flops
