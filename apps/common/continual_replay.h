// apps/common/continual_replay.h — replay buffers for the `replay` baseline of the continual
// harness. They store dataset indices with their labels (the images stay in the dataset), draw
// every random choice from an engram::Generator passed in, and so are deterministic given its seed.
//
// ReservoirBuffer (Mammoth utils/buffer.py ReservoirSampling, Vitter's Algorithm R): the n-th
// item offered (n = num_seen before it, counting from 0) is
//     kept in slot n                  while n < capacity,
//     else j = randint(0, n + 1)      (uniform on 0..n) and it replaces slot j if j < capacity.
// After N offers each item is in the buffer with probability capacity / N.
//
// ClassBalancedBuffer (Avalanche ClassBalancedBuffer, adaptive_size = true): one reservoir per
// class; the total capacity is split equally over the classes seen so far, floor(capacity / C)
// each, the remainder going one apiece to the classes seen first. When a new class appears the
// other classes shrink to their new share by keeping a uniformly random subset (a random subset
// of a uniform sample is uniform, so the per-class reservoirs stay uniform over what they saw).
//
// sample(batch, gen) draws min(batch, size()) distinct stored items uniformly (Mammoth's
// get_data, replace = False) and returns their dataset indices.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"

namespace engram::apps {

class ReplayBuffer {
 public:
  virtual ~ReplayBuffer() = default;
  // Offers one sample (its dataset index and label); returns true when it was stored.
  virtual bool add(int64_t index, int64_t label, Generator& gen) = 0;
  // Offers samples in order; returns how many were stored.
  int64_t add_batch(const std::vector<int64_t>& indices, const std::vector<int64_t>& labels,
                    Generator& gen);
  virtual int64_t size() const = 0;
  virtual int64_t capacity() const = 0;
  virtual int64_t num_seen() const = 0;  // samples offered so far
  // The stored dataset indices and their labels, in a fixed (slot) order.
  virtual std::vector<int64_t> indices() const = 0;
  virtual std::vector<int64_t> labels() const = 0;
  // min(batch, size()) distinct stored dataset indices, uniformly at random.
  std::vector<int64_t> sample(int64_t batch, Generator& gen) const;
  // Stored samples of each label 0..n_classes-1.
  std::vector<int64_t> occupancy(int64_t n_classes = 10) const;
  virtual std::string kind() const = 0;  // "reservoir", "class_balanced"
  // The whole state as integers (for checkpoints); load_state restores it exactly.
  virtual std::vector<int64_t> state() const = 0;
  virtual void load_state(const std::vector<int64_t>& s) = 0;
};

class ReservoirBuffer : public ReplayBuffer {
 public:
  explicit ReservoirBuffer(int64_t capacity);  // capacity >= 1
  bool add(int64_t index, int64_t label, Generator& gen) override;
  int64_t size() const override { return (int64_t)index_.size(); }
  int64_t capacity() const override { return capacity_; }
  int64_t num_seen() const override { return num_seen_; }
  std::vector<int64_t> indices() const override { return index_; }
  std::vector<int64_t> labels() const override { return label_; }
  std::string kind() const override { return "reservoir"; }
  std::vector<int64_t> state() const override;
  void load_state(const std::vector<int64_t>& s) override;

 private:
  int64_t capacity_, num_seen_ = 0;
  std::vector<int64_t> index_, label_;  // slot order
};

class ClassBalancedBuffer : public ReplayBuffer {
 public:
  explicit ClassBalancedBuffer(int64_t capacity);  // capacity >= 1
  bool add(int64_t index, int64_t label, Generator& gen) override;
  int64_t size() const override;
  int64_t capacity() const override { return capacity_; }
  int64_t num_seen() const override;
  std::vector<int64_t> indices() const override;  // class by class, in order of first appearance
  std::vector<int64_t> labels() const override;
  std::string kind() const override { return "class_balanced"; }
  std::vector<int64_t> state() const override;
  void load_state(const std::vector<int64_t>& s) override;
  // The classes seen so far (first-appearance order) and each one's current share of capacity.
  std::vector<int64_t> classes() const;
  std::vector<int64_t> class_capacities() const;

 private:
  struct PerClass {
    int64_t label = 0, cap = 0, num_seen = 0;
    std::vector<int64_t> index;
  };
  void rebalance(Generator& gen);
  int64_t capacity_;
  std::vector<PerClass> classes_;
};

// "reservoir" or "class_balanced" (also "balanced"); `key` names the setting in errors.
std::unique_ptr<ReplayBuffer> make_replay_buffer(const std::string& kind, int64_t capacity,
                                                 const std::string& key = "replay.buffer");

}  // namespace engram::apps
