// apps/common/continual_replay.cpp — see continual_replay.h: reservoir and class-balanced replay
// buffers of dataset indices.
#include "apps/common/continual_replay.h"

#include <algorithm>

#include "core/error.h"

namespace engram::apps {

int64_t ReplayBuffer::add_batch(const std::vector<int64_t>& indices,
                                const std::vector<int64_t>& labels, Generator& gen) {
  ENGRAM_CHECK(indices.size() == labels.size(), "replay buffer: {} indices but {} labels",
               indices.size(), labels.size());
  int64_t kept = 0;
  for (size_t i = 0; i < indices.size(); ++i) kept += add(indices[i], labels[i], gen) ? 1 : 0;
  return kept;
}

std::vector<int64_t> ReplayBuffer::sample(int64_t batch, Generator& gen) const {
  std::vector<int64_t> all = indices();
  const int64_t n = (int64_t)all.size(), k = std::min<int64_t>(std::max<int64_t>(batch, 0), n);
  // partial Fisher-Yates: the first k slots become a uniform k-subset, in random order
  for (int64_t i = 0; i < k; ++i) std::swap(all[(size_t)i], all[(size_t)gen.randint(i, n)]);
  all.resize((size_t)k);
  return all;
}

std::vector<int64_t> ReplayBuffer::occupancy(int64_t n_classes) const {
  std::vector<int64_t> occ((size_t)n_classes, 0);
  for (int64_t y : labels())
    if (y >= 0 && y < n_classes) ++occ[(size_t)y];
  return occ;
}

// ---- ReservoirBuffer ----

ReservoirBuffer::ReservoirBuffer(int64_t capacity) : capacity_(capacity) {
  ENGRAM_CHECK(capacity >= 1, "replay buffer: capacity must be at least 1, got {}", capacity);
}

bool ReservoirBuffer::add(int64_t index, int64_t label, Generator& gen) {
  const int64_t n = num_seen_++;
  if (n < capacity_) {
    index_.push_back(index);
    label_.push_back(label);
    return true;
  }
  const int64_t j = gen.randint(0, n + 1);
  if (j >= capacity_) return false;
  index_[(size_t)j] = index;
  label_[(size_t)j] = label;
  return true;
}

// [capacity, num_seen, size, index..., label...]
std::vector<int64_t> ReservoirBuffer::state() const {
  std::vector<int64_t> s = {capacity_, num_seen_, size()};
  s.insert(s.end(), index_.begin(), index_.end());
  s.insert(s.end(), label_.begin(), label_.end());
  return s;
}

void ReservoirBuffer::load_state(const std::vector<int64_t>& s) {
  ENGRAM_CHECK(s.size() >= 3 && s[0] == capacity_ && s[2] >= 0 && s[2] <= capacity_ &&
                   s.size() == 3 + 2 * (size_t)s[2] && s[1] >= s[2],
               "reservoir buffer: bad state (capacity {} expected)", capacity_);
  num_seen_ = s[1];
  const auto n = (ptrdiff_t)s[2];
  index_.assign(s.begin() + 3, s.begin() + 3 + n);
  label_.assign(s.begin() + 3 + n, s.end());
}

// ---- ClassBalancedBuffer ----

ClassBalancedBuffer::ClassBalancedBuffer(int64_t capacity) : capacity_(capacity) {
  ENGRAM_CHECK(capacity >= 1, "replay buffer: capacity must be at least 1, got {}", capacity);
}

void ClassBalancedBuffer::rebalance(Generator& gen) {
  const int64_t C = (int64_t)classes_.size();
  for (int64_t c = 0; c < C; ++c) {
    PerClass& pc = classes_[(size_t)c];
    pc.cap = capacity_ / C + (c < capacity_ % C ? 1 : 0);
    if ((int64_t)pc.index.size() > pc.cap) {
      // keep a uniform random subset (partial Fisher-Yates), slot order otherwise preserved
      const int64_t n = (int64_t)pc.index.size();
      std::vector<int64_t> slot(pc.index.size());
      for (int64_t i = 0; i < n; ++i) slot[(size_t)i] = i;
      for (int64_t i = 0; i < pc.cap; ++i) std::swap(slot[(size_t)i], slot[(size_t)gen.randint(i, n)]);
      slot.resize((size_t)pc.cap);
      std::sort(slot.begin(), slot.end());
      std::vector<int64_t> kept;
      for (int64_t s : slot) kept.push_back(pc.index[(size_t)s]);
      pc.index = std::move(kept);
    }
  }
}

bool ClassBalancedBuffer::add(int64_t index, int64_t label, Generator& gen) {
  auto it = std::find_if(classes_.begin(), classes_.end(),
                         [&](const PerClass& p) { return p.label == label; });
  if (it == classes_.end()) {
    classes_.push_back(PerClass{label, 0, 0, {}});
    rebalance(gen);
    it = classes_.end() - 1;
  }
  PerClass& pc = *it;
  const int64_t n = pc.num_seen++;
  if ((int64_t)pc.index.size() < pc.cap) {  // also after a class lost share (n >= size)
    pc.index.push_back(index);
    return true;
  }
  if (pc.cap == 0) return false;
  const int64_t j = gen.randint(0, n + 1);
  if (j >= pc.cap) return false;
  pc.index[(size_t)j] = index;
  return true;
}

int64_t ClassBalancedBuffer::size() const {
  int64_t n = 0;
  for (const PerClass& p : classes_) n += (int64_t)p.index.size();
  return n;
}

int64_t ClassBalancedBuffer::num_seen() const {
  int64_t n = 0;
  for (const PerClass& p : classes_) n += p.num_seen;
  return n;
}

std::vector<int64_t> ClassBalancedBuffer::indices() const {
  std::vector<int64_t> out;
  for (const PerClass& p : classes_) out.insert(out.end(), p.index.begin(), p.index.end());
  return out;
}

std::vector<int64_t> ClassBalancedBuffer::labels() const {
  std::vector<int64_t> out;
  for (const PerClass& p : classes_) out.insert(out.end(), p.index.size(), p.label);
  return out;
}

std::vector<int64_t> ClassBalancedBuffer::classes() const {
  std::vector<int64_t> out;
  for (const PerClass& p : classes_) out.push_back(p.label);
  return out;
}

std::vector<int64_t> ClassBalancedBuffer::class_capacities() const {
  std::vector<int64_t> out;
  for (const PerClass& p : classes_) out.push_back(p.cap);
  return out;
}

// [capacity, C, then per class: label, cap, num_seen, size, index...]
std::vector<int64_t> ClassBalancedBuffer::state() const {
  std::vector<int64_t> s = {capacity_, (int64_t)classes_.size()};
  for (const PerClass& p : classes_) {
    s.insert(s.end(), {p.label, p.cap, p.num_seen, (int64_t)p.index.size()});
    s.insert(s.end(), p.index.begin(), p.index.end());
  }
  return s;
}

void ClassBalancedBuffer::load_state(const std::vector<int64_t>& s) {
  auto bad = [&] { ENGRAM_FAIL("class-balanced buffer: bad state (capacity {} expected)", capacity_); };
  if (s.size() < 2 || s[0] != capacity_ || s[1] < 0) bad();
  std::vector<PerClass> cls;
  size_t at = 2;
  for (int64_t c = 0; c < s[1]; ++c) {
    if (at + 4 > s.size()) bad();
    PerClass p{s[at], s[at + 1], s[at + 2], {}};
    const int64_t n = s[at + 3];
    at += 4;
    if (n < 0 || n > p.cap || at + (size_t)n > s.size()) bad();
    p.index.assign(s.begin() + (ptrdiff_t)at, s.begin() + (ptrdiff_t)(at + (size_t)n));
    at += (size_t)n;
    cls.push_back(std::move(p));
  }
  if (at != s.size()) bad();
  classes_ = std::move(cls);
}

std::unique_ptr<ReplayBuffer> make_replay_buffer(const std::string& kind, int64_t capacity,
                                                 const std::string& key) {
  ENGRAM_CHECK(capacity >= 1, "{}: capacity must be at least 1, got {}", key, capacity);
  if (kind == "reservoir") return std::make_unique<ReservoirBuffer>(capacity);
  if (kind == "class_balanced" || kind == "balanced")
    return std::make_unique<ClassBalancedBuffer>(capacity);
  ENGRAM_FAIL("{}: unknown buffer \"{}\" (choices: reservoir, class_balanced)", key, kind);
}

}  // namespace engram::apps
