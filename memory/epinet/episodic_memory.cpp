// memory/epinet/episodic_memory.cpp — see episodic_memory.h.
#include "memory/epinet/episodic_memory.h"

#include <cmath>
#include <cstring>

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
  Tensor x = raw::contiguous(raw::to_dtype(x_in, DType::f32));
  Tensor z = raw::contiguous(raw::to_dtype(z_in, DType::f32));
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
std::vector<int64_t> EpisodicMemory::class_counts(int64_t n_classes) const {
  std::vector<int64_t> c(n_classes, 0);
  for (int64_t m = 0; m < size_; ++m) {
    int64_t label = y_.data<int64_t>()[m];
    if (label >= 0 && label < n_classes) ++c[label];
  }
  return c;
}

}  // namespace engram::epinet
