// memory/epinet/episodic_memory.cpp — see episodic_memory.h.
#include "memory/epinet/episodic_memory.h"

#include <cmath>
#include <cstring>
#include <tuple>

namespace engram::epinet {

EpisodicMemory::EpisodicMemory(int64_t capacity, int64_t d, Shape input_shape, double alpha_)
    : alpha(alpha_), capacity_(capacity), d_(d), input_shape_(std::move(input_shape)) {
  ENGRAM_CHECK(capacity > 0, "EpisodicMemory: capacity must be positive, got {}", capacity);
  ENGRAM_CHECK(d > 0, "EpisodicMemory: d must be positive, got {}", d);
  ENGRAM_CHECK(alpha >= 0 && std::isfinite(alpha), "EpisodicMemory: alpha must be >= 0, got {}", alpha);
  Shape xs = input_shape_;
  xs.insert(xs.begin(), capacity);
  x_ = zeros(xs);
  z_ = zeros({capacity, d});
  y_ = zeros({capacity}, DType::i64);
  r0_.assign(capacity, 0.0);
  tau_.assign(capacity, 0);
}

double EpisodicMemory::decayed(int64_t m) const {
  return r0_[m] * std::exp(-alpha * double(now_ - tau_[m]));
}

int64_t EpisodicMemory::memorize(const Tensor& x_in, const Tensor& z_in, const Tensor& y_in,
                                 const Tensor& salience) {
  const int64_t B = x_in.size(0);
  Shape want = input_shape_;
  want.insert(want.begin(), B);
  ENGRAM_CHECK(x_in.shape() == want && z_in.shape() == (Shape{B, d_}) && y_in.shape() == (Shape{B}) &&
                   salience.numel() == B,
               "EpisodicMemory::memorize: expected x {}, z [{}, {}], y [{}], salience [{}]; got x {}, "
               "z {}, y {}, salience {}", shape_str(want), B, d_, B, B, shape_str(x_in.shape()),
               shape_str(z_in.shape()), shape_str(y_in.shape()), shape_str(salience.shape()));
  // Host copies in the stores' dtypes (the stores are f32; a f64 model's latents are rounded).
  Tensor x = raw::contiguous(raw::to_dtype(raw::to_device(x_in, Device::cpu), DType::f32));
  Tensor z = raw::contiguous(raw::to_dtype(raw::to_device(z_in, Device::cpu), DType::f32));
  std::vector<int64_t> y = y_in.to_vector<int64_t>();
  std::vector<double> r = salience.to_vector<double>();
  const int64_t row = shape_numel(input_shape_);
  int64_t stored = 0;
  for (int64_t b = 0; b < B; ++b) {
    int64_t slot = -1;
    if (size_ < capacity_) {
      slot = size_++;
    } else {
      int64_t lowest = 0;
      for (int64_t m = 1; m < capacity_; ++m)
        if (decayed(m) < decayed(lowest)) lowest = m;
      if (!(r[b] > decayed(lowest))) continue;  // not salient enough: skipped
      slot = lowest;
      ++evictions_;
    }
    std::memcpy(x_.data<float>() + slot * row, x.data<float>() + b * row, row * sizeof(float));
    std::memcpy(z_.data<float>() + slot * d_, z.data<float>() + b * d_, d_ * sizeof(float));
    y_.data<int64_t>()[slot] = y[b];
    r0_[slot] = r[b];
    tau_[slot] = now_;
    ++stored;
  }
  raw::mark_modified(x_), raw::mark_modified(z_), raw::mark_modified(y_);
  return stored;
}

Tensor EpisodicMemory::inputs() const { return raw::narrow(x_, 0, 0, size_); }
Tensor EpisodicMemory::latents() const { return raw::narrow(z_, 0, 0, size_); }
Tensor EpisodicMemory::labels() const { return raw::narrow(y_, 0, 0, size_); }
Tensor EpisodicMemory::saliences() const {
  std::vector<double> s(size_);
  for (int64_t m = 0; m < size_; ++m) s[m] = decayed(m);
  return from_vector(s, {size_}, DType::f64);
}
std::vector<double> EpisodicMemory::initial_saliences() const {
  return {r0_.begin(), r0_.begin() + size_};
}
std::vector<std::pair<std::string, Tensor>> EpisodicMemory::state_tensors() const {
  return {{"memory.inputs", x_}, {"memory.latents", z_}, {"memory.labels", y_},
          {"memory.r0", from_vector(r0_, {capacity_}, DType::f64)}, {"memory.tau", from_vector(tau_, {capacity_})}};
}

std::map<std::string, std::string> EpisodicMemory::state_metadata() const {
  return {{"memory.size", std::to_string(size_)}, {"memory.now", std::to_string(now_)},
          {"memory.evictions", std::to_string(evictions_)}};
}

void EpisodicMemory::load_state(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                const std::map<std::string, std::string>& metadata) {
  auto find = [&](const std::string& name) {
    for (const auto& [n, t] : tensors)
      if (n == name) return t;
    ENGRAM_FAIL("EpisodicMemory::load_state: no tensor '{}'", name);
  };
  auto count = [&](const std::string& key) {
    auto it = metadata.find(key);
    ENGRAM_CHECK(it != metadata.end(), "EpisodicMemory::load_state: no metadata '{}'", key);
    try {
      return (int64_t)std::stoll(it->second);
    } catch (const std::exception&) {
      ENGRAM_FAIL("EpisodicMemory::load_state: '{}' = '{}' is not an integer", key, it->second);
    }
  };
  Tensor x = find("memory.inputs"), z = find("memory.latents"), y = find("memory.labels");
  Tensor r0 = find("memory.r0"), tau = find("memory.tau");
  for (auto [t, like, name] : {std::tuple{x, x_, "memory.inputs"}, {z, z_, "memory.latents"},
                               {y, y_, "memory.labels"}})
    ENGRAM_CHECK(t.shape() == like.shape() && t.dtype() == like.dtype(),
                 "EpisodicMemory::load_state: '{}' is {} {}, this memory's is {} {}", name,
                 dtype_name(t.dtype()), shape_str(t.shape()), dtype_name(like.dtype()), shape_str(like.shape()));
  ENGRAM_CHECK(r0.numel() == capacity_ && tau.numel() == capacity_,
               "EpisodicMemory::load_state: r0/tau hold {}/{} values for capacity {}", r0.numel(),
               tau.numel(), capacity_);
  const int64_t size = count("memory.size");
  ENGRAM_CHECK(size >= 0 && size <= capacity_, "EpisodicMemory::load_state: size {} outside [0, {}]",
               size, capacity_);
  raw::copy_(x_, x), raw::copy_(z_, z), raw::copy_(y_, y);
  r0_ = r0.to_vector<double>();
  tau_ = tau.to_vector<int64_t>();
  size_ = size, now_ = count("memory.now"), evictions_ = count("memory.evictions");
}

std::vector<int64_t> EpisodicMemory::class_counts(int64_t n_classes) const {
  std::vector<int64_t> c(n_classes, 0);
  for (int64_t m = 0; m < size_; ++m) {
    int64_t label = y_.data<int64_t>()[m];
    if (label >= 0 && label < n_classes) ++c[label];
  }
  return c;
}

}  // namespace engram::epinet
