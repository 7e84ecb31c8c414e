// core/tensor.cpp — Storage, creation, raw views and copies, printing. See tensor.h.
#include "core/tensor.h"

#include <cmath>
#include <functional>

#include "core/backend.h"
#include "core/rng.h"

namespace engram {

Storage::Storage(Device d, size_t n) : device(d), nbytes(n) {
  data = backend(d).alloc(n == 0 ? 8 : n);
  ENGRAM_CHECK(data != nullptr, "out of memory allocating {} bytes on {}", n, device_name(d));
}
Storage::~Storage() { backend(device).free(data); }

int64_t Tensor::size(int64_t d) const {
  ENGRAM_CHECK(dim() > 0, "size({}): the tensor has no dimensions (it is 0-d)", d);
  return shape()[wrap_dim(d, dim(), "size")];
}

bool Tensor::is_contiguous() const {
  int64_t expect = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (shape()[i] != 1 && strides()[i] != expect) return false;
    expect *= shape()[i];
  }
  return true;
}

Tensor& Tensor::requires_grad_(bool on) {
  ENGRAM_CHECK(is_leaf(), "requires_grad_: only leaf tensors can change requires_grad");
  ENGRAM_CHECK(!on || is_floating(dtype()), "requires_grad_: a {} tensor cannot require grad",
               dtype_name(dtype()));
  check()->requires_grad = on;
  return *this;
}

template <typename T> std::vector<T> Tensor::to_vector() const {
  Tensor host = raw::contiguous(raw::to_device(*this, Device::cpu));
  std::vector<T> out(numel());
  ENGRAM_DISPATCH_ALL(dtype(), "to_vector", [&] {
    const scalar_t* p = host.data<scalar_t>();
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<T>(p[i]);
  });
  return out;
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;

double Tensor::item() const {
  ENGRAM_CHECK(numel() == 1, "item(): tensor of shape {} has {} elements, expected 1",
               shape_str(shape()), numel());
  return to_vector<double>()[0];
}

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  std::vector<double> v = to_vector<double>();
  const Shape& s = shape();
  std::string out = "tensor(";
  // Recursive nested-bracket printing, abbreviating dims longer than 6 with "...".
  auto fmt_elem = [&](double x) {
    return dtype() == DType::i64 ? fmt::format("{}", (int64_t)x) : fmt::format("{:.4f}", x);
  };
  Shape cs = contiguous_strides(s);
  std::function<void(int64_t, int64_t)> rec = [&](int64_t d, int64_t base) {
    if (d == (int64_t)s.size()) {
      out += fmt_elem(v[base]);
      return;
    }
    out += "[";
    for (int64_t i = 0; i < s[d]; ++i) {
      if (s[d] > 6 && i == 3) {
        out += "..., ";
        i = s[d] - 3;
      }
      rec(d + 1, base + i * cs[d]);
      if (i + 1 < s[d]) out += d + 1 == (int64_t)s.size() ? ", " : ",\n       ";
    }
    out += "]";
  };
  rec(0, 0);
  out += fmt::format(", shape={}, dtype={}", shape_str(s), dtype_name(dtype()));
  if (device() != Device::cpu) out += fmt::format(", device={}", device_name(device()));
  if (requires_grad()) out += ", requires_grad";
  return out + ")";
}

// ---------------------------------------------------------------- creation
Tensor empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) ENGRAM_CHECK(d >= 0, "empty: negative size in shape {}", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(device, shape_numel(shape) * dtype_size(dtype));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}
Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  backend(device).fill(t, value);
  return t;
}
Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1, dtype, device); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype(), t.device()); }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.dtype(), t.device()); }
Tensor scalar_tensor(double value, DType dtype) { return full({}, value, dtype); }

Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype) {
  ENGRAM_CHECK((int64_t)values.size() == shape_numel(shape),
               "from_vector: {} values do not fill shape {}", values.size(), shape_str(shape));
  Tensor t = empty(shape, dtype);
  ENGRAM_DISPATCH_ALL(dtype, "from_vector", [&] {
    scalar_t* p = t.data<scalar_t>();
    for (size_t i = 0; i < values.size(); ++i) p[i] = static_cast<scalar_t>(values[i]);
  });
  return t;
}
template <typename T> Tensor from_vector(const std::vector<T>& values, const Shape& shape) {
  ENGRAM_CHECK((int64_t)values.size() == shape_numel(shape),
               "from_vector: {} values do not fill shape {}", values.size(), shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>());
  std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}
template Tensor from_vector<float>(const std::vector<float>&, const Shape&);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&);

Tensor arange(double start, double end, double step, DType dtype) {
  ENGRAM_CHECK(step != 0, "arange: step must be non-zero");
  int64_t n = std::max<int64_t>(0, (int64_t)std::ceil((end - start) / step));
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = start + i * step;
  return from_vector(v, {n}, dtype);
}

template <class Draw> static Tensor random_tensor(const Shape& shape, DType dtype, Draw draw) {
  std::vector<double> v(shape_numel(shape));
  for (double& x : v) x = draw();
  return from_vector(v, shape, dtype);
}
Tensor randn(const Shape& shape, DType dtype, Generator* gen) {
  Generator& g = gen ? *gen : default_generator();
  return random_tensor(shape, dtype, [&] { return g.normal(); });
}
Tensor rand(const Shape& shape, DType dtype, Generator* gen) {
  Generator& g = gen ? *gen : default_generator();
  return random_tensor(shape, dtype, [&] { return g.uniform(); });
}
Tensor randint(int64_t low, int64_t high, const Shape& shape, Generator* gen) {
  Generator& g = gen ? *gen : default_generator();
  return random_tensor(shape, DType::i64, [&] { return (double)g.randint(low, high); });
}

// ---------------------------------------------------------------- raw views
namespace raw {

Tensor as_strided(const Tensor& t, const Shape& shape, const Shape& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = t.storage();
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = t.dtype();
  return Tensor(std::move(impl));
}

Shape infer_shape(const Shape& shape, int64_t numel, const char* op) {
  Shape out = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      ENGRAM_CHECK(infer < 0, "{}: only one dim can be -1 in {}", op, shape_str(shape));
      infer = (int64_t)i;
    } else {
      ENGRAM_CHECK(out[i] >= 0, "{}: invalid size in {}", op, shape_str(shape));
      known *= out[i];
    }
  }
  if (infer >= 0) {
    ENGRAM_CHECK(known != 0 && numel % known == 0, "{}: cannot infer -1 in {} for {} elements", op,
                 shape_str(shape), numel);
    out[infer] = numel / known;
  }
  ENGRAM_CHECK(shape_numel(out) == numel, "{}: shape {} is invalid for {} elements", op,
               shape_str(shape), numel);
  return out;
}

// A view is possible when each group of old dims that maps onto new dims is contiguous
// within itself (PyTorch's computeStride): walk old dims right to left, matching chunks.
static bool view_strides(const Shape& old_shape, const Shape& old_strides, const Shape& new_shape,
                         Shape& new_strides) {
  new_strides.assign(new_shape.size(), 0);
  if (shape_numel(old_shape) == 0 || old_shape.empty()) {
    new_strides = contiguous_strides(new_shape);
    return true;
  }
  int64_t view_d = (int64_t)new_shape.size() - 1;
  int64_t chunk_base_stride = old_strides.empty() ? 1 : old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = (int64_t)old_shape.size() - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    if (d == 0 || (old_shape[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        new_strides[view_d] = view_numel * chunk_base_stride;
        view_numel *= new_shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = old_strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

Tensor view(const Tensor& t, const Shape& shape) {
  Shape s = infer_shape(shape, t.numel(), "view");
  Shape st;
  ENGRAM_CHECK(view_strides(t.shape(), t.strides(), s, st),
               "view: shape {} with strides {} cannot be viewed as {} (call reshape)",
               shape_str(t.shape()), shape_str(t.strides()), shape_str(s));
  return as_strided(t, s, st, t.offset());
}

Tensor reshape(const Tensor& t, const Shape& shape) {
  Shape s = infer_shape(shape, t.numel(), "reshape");
  Shape st;
  if (view_strides(t.shape(), t.strides(), s, st)) return as_strided(t, s, st, t.offset());
  return view(clone(t), s);
}

Tensor permute(const Tensor& t, const std::vector<int64_t>& dims) {
  ENGRAM_CHECK((int64_t)dims.size() == t.dim(), "permute: {} dims given for a tensor of shape {}",
               dims.size(), shape_str(t.shape()));
  Shape s(dims.size()), st(dims.size());
  std::vector<bool> seen(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], t.dim(), "permute");
    ENGRAM_CHECK(!seen[d], "permute: dim {} repeated in [{}]", d, fmt::join(dims, ", "));
    seen[d] = true;
    s[i] = t.shape()[d];
    st[i] = t.strides()[d];
  }
  return as_strided(t, s, st, t.offset());
}

Tensor transpose(const Tensor& t, int64_t d0, int64_t d1) {
  if (t.dim() == 0) {  // PyTorch: transposing a 0-d tensor (dims 0 / -1) returns it
    wrap_dim(d0, 0, "transpose");
    wrap_dim(d1, 0, "transpose");
    return t;
  }
  std::vector<int64_t> dims(t.dim());
  for (int64_t i = 0; i < t.dim(); ++i) dims[i] = i;
  std::swap(dims[wrap_dim(d0, t.dim(), "transpose")], dims[wrap_dim(d1, t.dim(), "transpose")]);
  return permute(t, dims);
}

Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length) {
  ENGRAM_CHECK(t.dim() > 0, "narrow: cannot be applied to a 0-d tensor");
  dim = wrap_dim(dim, t.dim(), "narrow");
  int64_t n = t.shape()[dim];
  if (start < 0) start += n;
  ENGRAM_CHECK(start >= 0 && length >= 0 && start + length <= n,
               "narrow: [{}, {}) out of range for dim {} of size {} (shape {})", start,
               start + length, dim, n, shape_str(t.shape()));
  Shape s = t.shape();
  s[dim] = length;
  return as_strided(t, s, t.strides(), t.offset() + start * t.strides()[dim]);
}

Tensor expand(const Tensor& t, const Shape& shape) {
  ENGRAM_CHECK(shape.size() >= t.shape().size(), "expand: cannot expand shape {} to {}",
               shape_str(t.shape()), shape_str(shape));
  size_t lead = shape.size() - t.shape().size();
  Shape st(shape.size(), 0);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) continue;
    int64_t from = t.shape()[i - lead];
    ENGRAM_CHECK(from == shape[i] || from == 1, "expand: cannot expand shape {} to {}",
                 shape_str(t.shape()), shape_str(shape));
    st[i] = from == 1 && shape[i] != 1 ? 0 : t.strides()[i - lead];
  }
  return as_strided(t, shape, st, t.offset());
}

Tensor squeeze(const Tensor& t, int64_t dim) {
  dim = wrap_dim(dim, t.dim(), "squeeze");
  if (t.dim() == 0 || t.shape()[dim] != 1) return t;
  Shape s = t.shape(), st = t.strides();
  s.erase(s.begin() + dim);
  st.erase(st.begin() + dim);
  return as_strided(t, s, st, t.offset());
}

Tensor unsqueeze(const Tensor& t, int64_t dim) {
  dim = wrap_dim(dim, t.dim() + 1, "unsqueeze");
  Shape s = t.shape(), st = t.strides();
  int64_t stride = dim < t.dim() ? t.strides()[dim] * t.shape()[dim] : 1;
  s.insert(s.begin() + dim, 1);
  st.insert(st.begin() + dim, stride);
  return as_strided(t, s, st, t.offset());
}

void mark_modified(const Tensor& t) { ++t.storage()->version; }

void copy_(const Tensor& dst, const Tensor& src) {
  ENGRAM_CHECK(dst.shape() == src.shape(), "copy_: shapes differ: {} <- {}", shape_str(dst.shape()),
               shape_str(src.shape()));
  mark_modified(dst);
  if (dst.device() == src.device()) {
    backend(dst.device()).copy(dst, src);
  } else if (src.device() == Device::cpu) {
    Tensor tmp = contiguous(to_dtype(src, dst.dtype()));
    backend(dst.device()).upload(dst, tmp);
  } else {
    Tensor host = empty(src.shape(), src.dtype());
    backend(src.device()).download(host, contiguous(src));
    copy_(dst, host);
  }
}

Tensor clone(const Tensor& t) {
  Tensor out = empty(t.shape(), t.dtype(), t.device());
  backend(t.device()).copy(out, t);
  return out;
}
Tensor contiguous(const Tensor& t) { return t.is_contiguous() ? t : clone(t); }
Tensor to_dtype(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  Tensor out = empty(t.shape(), dtype, t.device());
  backend(t.device()).copy(out, t);
  return out;
}
Tensor to_device(const Tensor& t, Device device) {
  if (t.device() == device) return t;
  Tensor out = empty(t.shape(), t.dtype(), device);
  copy_(out, t);
  return out;
}

}  // namespace raw
}  // namespace engram
