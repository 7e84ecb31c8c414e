// core/tensor.h — the Tensor handle.
//
// A Tensor is a cheap handle (one shared_ptr) to a TensorImpl: shared Storage (device + bytes)
// plus shape, strides (in elements), offset (in elements) and dtype. Views share the storage and
// only change shape/strides/offset, so element (i0, i1, ...) lives at
//     data[offset + sum_k i_k * strides[k]].
// The autograd fields (requires_grad, grad, the producing tape node) live here as plain data; the
// tape that uses them is in autograd/. Nothing in core/ computes gradients.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/shape.h"

namespace engram {

// Bytes on a device, freed by that device's allocator when the last view lets go.
struct Storage {
  Storage(Device device, size_t nbytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  Device device;
  size_t nbytes;
  void* data;
  // Bumped by every in-place write made through raw::copy_ or marked with raw::mark_modified (the
  // optimizer steps, checkpoint loads, init). The tape saves each input's and output's version
  // when an op is recorded and refuses to run that op's backward once it has changed, because
  // the values the backward would read are no longer the ones the forward saw (PyTorch's version
  // counter). Writes through data<T>() pointers elsewhere are not seen: call mark_modified.
  uint64_t version = 0;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape, strides;
  int64_t offset = 0;
  DType dtype = DType::f32;
  // --- autograd bookkeeping (used by autograd/tape.cpp) ---
  bool requires_grad = false;  // a leaf asked for .grad, or an op output depending on one
  bool is_leaf = true;         // false for tensors produced by recorded ops
  bool retain_grad = false;    // keep .grad on a non-leaf after backward
  std::shared_ptr<TensorImpl> grad;
  int64_t tape_node = -1;  // index of the node that produced this tensor
  int tape_slot = 0;       // which of that node's outputs it is
  uint64_t tape_epoch = 0; // the tape generation that node belongs to
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

  const Shape& shape() const { return check()->shape; }
  const Shape& strides() const { return check()->strides; }
  int64_t offset() const { return check()->offset; }
  int64_t dim() const { return (int64_t)shape().size(); }
  int64_t size(int64_t d) const;
  int64_t numel() const { return shape_numel(shape()); }
  DType dtype() const { return check()->dtype; }
  Device device() const { return check()->storage->device; }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return check()->storage; }

  // Pointer to element (0, 0, ...) — storage base plus offset. Checks the dtype.
  template <typename T> T* data() const {
    ENGRAM_CHECK(dtype_of<T>() == dtype(), "data<{}>() on a {} tensor", dtype_name(dtype_of<T>()),
                 dtype_name(dtype()));
    return static_cast<T*>(check()->storage->data) + offset();
  }
  void* raw_data() const {
    return static_cast<char*>(check()->storage->data) + offset() * dtype_size(dtype());
  }

  // Host-side reads (copy to a contiguous CPU vector; converts dtype to T).
  template <typename T> std::vector<T> to_vector() const;
  double item() const;  // the single element as double; throws unless numel() == 1

  // --- autograd-facing (leaf flags and gradients; the tape itself is in autograd/) ---
  bool requires_grad() const { return check()->requires_grad; }
  Tensor& requires_grad_(bool on = true);  // only on leaves of a floating dtype
  bool is_leaf() const { return check()->is_leaf; }
  Tensor grad() const { return Tensor(check()->grad); }
  void set_grad(const Tensor& g) { check()->grad = g.impl_; }
  Tensor& retain_grad() { check()->retain_grad = true; return *this; }

  std::string str() const;  // PyTorch-like printing, long tensors abbreviated

 private:
  TensorImpl* check() const {
    ENGRAM_CHECK(impl_ != nullptr, "use of an undefined (empty) Tensor");
    return impl_.get();
  }
  std::shared_ptr<TensorImpl> impl_;
};

// ---- Creation (all CPU unless a device is given; random ones use the seeded generator) ----
class Generator;
Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu);
Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu);
Tensor ones(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu);
Tensor full(const Shape& shape, double value, DType dtype = DType::f32, Device device = Device::cpu);
Tensor arange(double start, double end, double step = 1, DType dtype = DType::f32);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor empty_like(const Tensor& t);  // contiguous, same dtype/device/shape
template <typename T> Tensor from_vector(const std::vector<T>& values, const Shape& shape);
Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype);
Tensor randn(const Shape& shape, DType dtype = DType::f32, Generator* gen = nullptr);
Tensor rand(const Shape& shape, DType dtype = DType::f32, Generator* gen = nullptr);  // U[0,1)
Tensor randint(int64_t low, int64_t high, const Shape& shape, Generator* gen = nullptr);  // i64
Tensor scalar_tensor(double value, DType dtype = DType::f32);

// ---- Raw (non-differentiable) views and copies; autograd/ wraps these as ops ----
namespace raw {
Tensor as_strided(const Tensor& t, const Shape& shape, const Shape& strides, int64_t offset);
Tensor view(const Tensor& t, const Shape& shape);  // needs compatible strides; -1 infers one dim
Tensor reshape(const Tensor& t, const Shape& shape);  // view if possible, else copy
Tensor permute(const Tensor& t, const std::vector<int64_t>& dims);
Tensor transpose(const Tensor& t, int64_t d0, int64_t d1);
Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length);
Tensor expand(const Tensor& t, const Shape& shape);  // broadcast view (stride 0)
Tensor squeeze(const Tensor& t, int64_t dim);
Tensor unsqueeze(const Tensor& t, int64_t dim);
Tensor contiguous(const Tensor& t);  // t itself when already contiguous
Tensor clone(const Tensor& t);       // always a fresh contiguous copy
Tensor to_dtype(const Tensor& t, DType dtype);
Tensor to_device(const Tensor& t, Device device);
void copy_(const Tensor& dst, const Tensor& src);  // dst <- src (same shape, any strides)
void mark_modified(const Tensor& t);  // t's storage was written in place: bump its version
Shape infer_shape(const Shape& shape, int64_t numel, const char* op);
}  // namespace raw

}  // namespace engram

template <> struct fmt::formatter<engram::Tensor> : fmt::formatter<std::string> {
  auto format(const engram::Tensor& t, format_context& ctx) const {
    return fmt::formatter<std::string>::format(t.str(), ctx);
  }
};
