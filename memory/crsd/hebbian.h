// memory/crsd/hebbian.h — HebbianMemory: a fast-weight matrix written by outer products.
//
// State H [B, d_k, d_v] (one matrix per sequence in the batch), updated every step by
//     H_t = gamma * H_{t-1} + eta * k̂_t v_t^T          gamma = sigmoid(gamma_logit) in (0, 1)
//     r_t = H_t^T q̂_t                                   eta   = softplus(eta_raw) > 0
// with k̂ = k / max(|k|, eps) and q̂ = q / max(|q|, eps) (cosine-normalised keys and queries, so
// the recall of a stored pair (k, v) queried with q = k is eta * v, decayed by gamma per step).
// Optional top-k sparsification keeps the k largest-magnitude components of each recall vector.
// `detach_memory` stops gradients through H across steps (truncated backprop into the memory).
//
// Over a sequence the recurrence runs as one fused op (autograd hebbian_scan, with a hand-written
// backward that keeps one state per chunk of steps and recomputes inside the chunk), not as a loop
// of small ops: see core/cpu/cpu_memory.cpp for the equations of the backward.
// The state is passed in and returned (like an LSTM's), so the memory runs over a whole segment
// or one token at a time with identical results.
#pragma once
#include "nn/module.h"

namespace engram::memory {

struct HebbianOptions {
  double gamma_init = 0.9;  // initial decay
  double eta_init = 0.5;    // initial write strength
  int64_t top_k = 0;        // 0 = dense recall
  bool detach_memory = false;
  double eps = 1e-6;
  int64_t chunk = 16;       // steps per backward checkpoint
};

class HebbianMemory : public nn::Module {
 public:
  HebbianMemory(int64_t d_k, int64_t d_v, HebbianOptions options = {});
  struct Output {
    Tensor recall;  // [B, T, d_v]
    Tensor state;   // [B, d_k, d_v]
  };
  // q, k [B, T, d_k], v [B, T, d_v]; state [B, d_k, d_v] or undefined (empty memory).
  Output forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& state = Tensor());
  Tensor initial_state(int64_t batch, DType dtype = DType::f32) const;
  Tensor gamma() const;  // sigmoid(gamma_logit), 0-dim
  Tensor eta() const;    // softplus(eta_raw), 0-dim
  std::string type_name() const override { return "HebbianMemory"; }
  std::string extra_repr() const override;

  Tensor& gamma_logit;
  Tensor& eta_raw;
  int64_t d_k, d_v;
  HebbianOptions options;
};

// Keeps the k largest-|x| entries along the last dim, zeroing the rest (gradient flows to kept).
Tensor keep_top_k_magnitude(const Tensor& x, int64_t k);

}  // namespace engram::memory
