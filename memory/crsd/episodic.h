// memory/crsd/episodic.h — EpisodicBuffer: a fixed number of key/value slots with priority writes.
//
// State per sequence b: keys K [S, d_k], values V [S, d_v], importance p [S], age a [S] (steps
// since written) and filled f [S] in {0, 1}. One step with query q_t, key k_t, value v_t:
//   read   s_j = cos(q_t, K_j) / tau   for filled slots (optionally only the top-k scores, or only
//                                      slots younger than `recency_window` steps)
//          w   = softmax(s) over the allowed slots, r_t = sum_j w_j V_j  (r_t = 0 while empty)
//   write  p <- decay * p, a <- a + 1
//          j* = argmin_j (p_j if filled else -1)      (empty slots first, then least important)
//          K_j* <- k_t, V_j* <- v_t, p_j* <- novelty_t = 1 - max_j cos(k_t, K_j), a_j* <- 0
// The read happens before the write, so the buffer recalls past steps, never the current one.
// Slot choice is discrete (no gradient); the written contents are differentiable: K and V are
// updated as K <- K * (1 - e_j*) + e_j* k_t^T with a one-hot e_j*, so gradients reach k_t and v_t
// through every later read, unless `detach_memory` is set. All of this is vectorised over the
// batch: each sequence picks its own slot in the same ops.
// step() is that rule as tensor ops, one step at a time (the reference); forward() runs a whole
// sequence as one fused op, episodic_scan (core/cpu/cpu_episodic.cpp, its backward by hand), and
// tests/test_memory.cpp holds the two equal, values and gradients.
#pragma once
#include "nn/module.h"

namespace engram::memory {

struct EpisodicOptions {
  int64_t slots = 32;
  double temperature = 0.1;   // tau
  double decay = 0.99;        // importance decay per step
  int64_t top_k = 0;          // 0 = attend to every filled slot
  int64_t recency_window = 0; // 0 = no window
  bool detach_memory = false;
  double eps = 1e-6;
};

struct EpisodicState {
  Tensor keys, values;             // [B, S, d_k], [B, S, d_v]
  Tensor importance, age, filled;  // [B, S] each (no gradient)
};

class EpisodicBuffer : public nn::Module {
 public:
  EpisodicBuffer(int64_t d_k, int64_t d_v, EpisodicOptions options = {});
  EpisodicState initial_state(int64_t batch, DType dtype = DType::f32, Device device = Device::cpu) const;
  // One step: q_t, k_t [B, d_k], v_t [B, d_v]. Returns the recall [B, d_v]; updates `state`.
  Tensor step(const Tensor& q, const Tensor& k, const Tensor& v, EpisodicState& state) const;
  // A sequence: q, k [B, T, d_k], v [B, T, d_v] -> recalls [B, T, d_v] (step() at every t, fused).
  Tensor forward(const Tensor& q, const Tensor& k, const Tensor& v, EpisodicState& state) const;
  std::string type_name() const override { return "EpisodicBuffer"; }
  std::string extra_repr() const override;

  int64_t d_k, d_v;
  EpisodicOptions options;
};

}  // namespace engram::memory
