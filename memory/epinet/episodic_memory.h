// memory/epinet/episodic_memory.h — EpiNet's capacity-bounded episodic memory with salience decay.
//
// A trace m = (x_m, z_m, c_m, r0_m, tau_m, y_m): the input image (for replay), its latent, its
// context key, its initial salience, the time it was stored and its label. Salience decays with
// the time since storage:
//     s_m = r0_m * exp(-alpha * (tau_now - tau_m))
// Time is counted in training steps on a clock the memory owns (tick() once per optimizer step)
// and checkpoints, not in wall-clock seconds as the notebook did, so every run is repeatable.
// The context key c_m is the latent itself (c_m = z_m, detached): recall compares the current
// latent with the stored ones; a learned context projection would add parameters that replayed
// traces could not update consistently.
// Admission (one trace per sample, in batch order): append while under capacity; when full,
// compute the decayed saliences, find the lowest, and replace it only if the new r0 exceeds it,
// otherwise skip. The notebook's check: capacity 3, r0 = 1..5 added in order -> r0 [4, 5, 3].
// Storage is preallocated [capacity, ...] tensors written row by row (no concatenation).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace engram::epinet {

class EpisodicMemory {
 public:
  EpisodicMemory(int64_t capacity, int64_t d, Shape input_shape = {1, 28, 28}, double alpha = 0.01);

  // Offers one trace per row of x [B, ...], z [B, d], y [B] (i64), salience [B]; returns how
  // many were stored. z is stored detached.
  int64_t memorize(const Tensor& x, const Tensor& z, const Tensor& y, const Tensor& salience);
  void tick(int64_t steps = 1) { now_ += steps; }
  int64_t now() const { return now_; }

  int64_t size() const { return size_; }
  int64_t capacity() const { return capacity_; }
  int64_t evictions() const { return evictions_; }
  // The first size() rows of each store.
  Tensor inputs() const;     // [size, ...input_shape]
  Tensor latents() const;    // [size, d]  (= the context keys c_m)
  Tensor labels() const;     // [size] i64
  Tensor saliences() const;  // s_m at the current time, [size] f64
  std::vector<double> initial_saliences() const;  // r0 in slot order
  std::vector<int64_t> class_counts(int64_t n_classes) const;

  double alpha;

  // Everything that defines the memory, for checkpoints: the stores, r0 and tau as tensors
  // ("memory.inputs", "memory.latents", "memory.labels", "memory.r0", "memory.tau") and the
  // counters as strings ("memory.size", "memory.now", "memory.evictions"). load_state checks
  // shapes and counters against this memory's capacity and throws naming what differs.
  std::vector<std::pair<std::string, Tensor>> state_tensors() const;
  std::map<std::string, std::string> state_metadata() const;
  void load_state(const std::vector<std::pair<std::string, Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata);

 private:
  int64_t capacity_, d_, size_ = 0, now_ = 0, evictions_ = 0;
  Shape input_shape_;
  Tensor x_, z_, y_;                       // preallocated stores
  std::vector<double> r0_;
  std::vector<int64_t> tau_;
  double decayed(int64_t m) const;
};

}  // namespace engram::epinet
