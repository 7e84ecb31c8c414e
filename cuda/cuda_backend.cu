// cuda/cuda_backend.cu — the CUDA kernel table: device set-up, copies, fills, transfers, and the
// per-family register_<family> calls (each cuda/cuda_<family>.cu fills its part of the table).
//
// core/backend.cpp asks make_cuda_backend() for the table once, at the first backend() lookup, in
// builds made with `make CUDA=1`. Without a usable GPU (no driver, no device, or
// ENGRAM_CUDA_DISABLE=1) the table stays empty, so device_available(Device::cuda) is false and
// every Device::cuda request fails with "device cuda is not available".
#include <cstdlib>
#include <cstring>

#include "cuda/common.cuh"

namespace engram::cuda {

void register_elementwise(Backend& b);  // cuda_elementwise.cu
void register_reduce(Backend& b);       // cuda_reduce.cu
void register_blas(Backend& b);         // cuda_blas.cu
void register_index(Backend& b);        // cuda_index.cu
void register_nn(Backend& b);           // cuda_nn.cu
void register_conv(Backend& b);         // cuda_conv.cu
void register_fft(Backend& b);          // cuda_fft.cu
void register_scan(Backend& b);         // cuda_scan.cu
void register_episodic(Backend& b);     // cuda_episodic.cu
void register_cmr(Backend& b);          // cuda_cmr.cu
void register_titans(Backend& b);       // cuda_titans.cu
void register_ssm(Backend& b);          // cuda_ssm.cu
void register_optim(Backend& b);        // cuda_optim.cu
void register_recurrent(Backend& b);    // cuda_recurrent.cu

// ---------------------------------------------------------------- errors, stream, settings
void fail_cuda(cudaError_t err, const char* call, const char* op) {
  ENGRAM_FAIL("CUDA error in {}: {} returned {} ({})", op, call, cudaGetErrorName(err),
              cudaGetErrorString(err));
}

cudaStream_t stream() {
  static cudaStream_t s = [] {
    cudaStream_t created = nullptr;
    ENGRAM_CUDA_CHECK(cudaStreamCreateWithFlags(&created, cudaStreamNonBlocking), "stream set-up");
    return created;
  }();
  return s;
}

void synchronize(const char* op) { ENGRAM_CUDA_CHECK(cudaStreamSynchronize(stream()), op); }

static bool& tf32_setting() {
  static bool on = [] {
    const char* e = std::getenv("ENGRAM_CUDA_TF32");
    return e != nullptr && std::strcmp(e, "1") == 0;
  }();
  return on;
}
bool tf32_enabled() { return tf32_setting(); }
void set_tf32(bool on) { tf32_setting() = on; }

std::string device_description() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaError_t err = cudaGetLastError();
    return fmt::format("none ({})", count == 0 && err == cudaSuccess ? "no CUDA device"
                                                                     : cudaGetErrorString(err));
  }
  cudaDeviceProp prop;
  ENGRAM_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0), "device_description");
  return fmt::format("{} (sm_{}{}, {:.1f} GiB){}", prop.name, prop.major, prop.minor,
                     prop.totalGlobalMem / 1073741824.0,
                     count > 1 ? fmt::format(", device 0 of {}", count) : "");
}

// ---------------------------------------------------------------- strided plans
template <int N>
static Strided<N> coalesce(const Shape& shape, const std::array<const Shape*, N>& strides,
                           const char* op) {
  Strided<N> s;
  int64_t sizes[64], st[N][64];
  int nd = 0;
  ENGRAM_CHECK(shape.size() <= 64, "{}: {} dims is more than the CUDA backend handles", op,
               shape.size());
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;  // size-1 dims never move the offsets
    bool merge = nd > 0;
    for (int k = 0; k < N && merge; ++k) merge = st[k][nd - 1] == (*strides[k])[d] * shape[d];
    if (merge) {
      sizes[nd - 1] *= shape[d];
      for (int k = 0; k < N; ++k) st[k][nd - 1] = (*strides[k])[d];
    } else {
      sizes[nd] = shape[d];
      for (int k = 0; k < N; ++k) st[k][nd] = (*strides[k])[d];
      ++nd;
    }
  }
  if (nd == 0) {  // a scalar (or all size-1 dims)
    sizes[0] = 1;
    for (int k = 0; k < N; ++k) st[k][0] = 0;
    nd = 1;
  }
  ENGRAM_CHECK(nd <= kMaxDims, "{}: {} non-mergeable dims; the CUDA backend handles {}", op, nd,
               kMaxDims);
  s.nd = nd;
  for (int d = 0; d < nd; ++d) {
    s.size[d] = sizes[d];
    for (int k = 0; k < N; ++k) s.stride[k][d] = st[k][d];
  }
  return s;
}
Strided<1> make_strided(const Shape& shape, const Shape& s0, const char* op) {
  return coalesce<1>(shape, {&s0}, op);
}
Strided<2> make_strided(const Shape& shape, const Shape& s0, const Shape& s1, const char* op) {
  return coalesce<2>(shape, {&s0, &s1}, op);
}
Strided<3> make_strided(const Shape& shape, const Shape& s0, const Shape& s1, const Shape& s2,
                        const char* op) {
  return coalesce<3>(shape, {&s0, &s1, &s2}, op);
}
Strided<4> make_strided(const Shape& shape, const Shape& s0, const Shape& s1, const Shape& s2,
                        const Shape& s3, const char* op) {
  return coalesce<4>(shape, {&s0, &s1, &s2, &s3}, op);
}

void require_cuda(Tref t, const char* op, const char* what) {
  ENGRAM_CHECK(t.defined(), "{}: {} is undefined", op, what);
  ENGRAM_CHECK(t.device() == Device::cuda, "{}: {} is on {}, expected cuda", op, what,
               device_name(t.device()));
}
void require_contiguous(Tref t, const char* op, const char* what) {
  require_cuda(t, op, what);
  ENGRAM_CHECK(t.is_contiguous(), "{}: {} must be contiguous (shape {})", op, what,
               shape_str(t.shape()));
}

// ---------------------------------------------------------------- memory, copies, transfers
static void* alloc(size_t n) { return device_alloc(n); }
static void free_block(void* p) { device_free(p); }

template <typename D, typename S> static void copy_typed(Tref dst, Tref src) {
  D* o = static_cast<D*>(dst.raw_data());
  const S* s = static_cast<const S*>(src.raw_data());
  for_each_strided<2>(
      dst.numel(), make_strided(dst.shape(), dst.strides(), src.strides(), "copy"),
      [=] __device__(const int64_t(&off)[2]) { o[off[0]] = static_cast<D>(s[off[1]]); }, "copy");
}
template <typename D> static void copy_to(Tref dst, Tref src) {
  ENGRAM_DISPATCH_ALL(src.dtype(), "copy", [&] { copy_typed<D, scalar_t>(dst, src); });
}

static void copy(Tref dst, Tref src) {
  require_cuda(dst, "copy", "dst");
  require_cuda(src, "copy", "src");
  if (dst.numel() == 0) return;
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous()) {
    ENGRAM_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(),
                                      dst.numel() * dtype_size(dst.dtype()),
                                      cudaMemcpyDeviceToDevice, stream()),
                      "copy");
    return;
  }
  ENGRAM_DISPATCH_ALL(dst.dtype(), "copy", [&] { copy_to<scalar_t>(dst, src); });
}

template <typename T> static void fill_typed(Tref dst, double value) {
  T* o = static_cast<T*>(dst.raw_data());
  const T v = static_cast<T>(value);
  for_each_strided<1>(dst.numel(), make_strided(dst.shape(), dst.strides(), "fill"),
                      [=] __device__(const int64_t(&off)[1]) { o[off[0]] = v; }, "fill");
}
static void fill(Tref dst, double value) {
  require_cuda(dst, "fill", "dst");
  if (dst.numel() == 0) return;
  if (value == 0 && dst.is_contiguous()) {  // all-zero bits are 0 in f32, f64 and i64
    ENGRAM_CUDA_CHECK(
        cudaMemsetAsync(dst.raw_data(), 0, dst.numel() * dtype_size(dst.dtype()), stream()),
        "fill");
    return;
  }
  ENGRAM_DISPATCH_ALL(dst.dtype(), "fill", [&] { fill_typed<scalar_t>(dst, value); });
}

// host (contiguous, same dtype as dst) -> dst on the GPU (any strides)
static void upload(Tref dst, Tref host_src) {
  require_cuda(dst, "upload", "dst");
  ENGRAM_CHECK(host_src.device() == Device::cpu && host_src.is_contiguous() &&
                   host_src.dtype() == dst.dtype() && host_src.numel() == dst.numel(),
               "upload: the host source must be a contiguous CPU {} tensor of {} elements",
               dtype_name(dst.dtype()), dst.numel());
  const size_t nbytes = dst.numel() * dtype_size(dst.dtype());
  if (nbytes == 0) return;
  if (dst.is_contiguous()) {
    ENGRAM_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), host_src.raw_data(), nbytes,
                                      cudaMemcpyHostToDevice, stream()),
                      "upload");
    synchronize("upload");  // the host buffer may be freed as soon as we return
    return;
  }
  Tensor staged = empty(dst.shape(), dst.dtype(), Device::cuda);
  ENGRAM_CUDA_CHECK(cudaMemcpyAsync(staged.raw_data(), host_src.raw_data(), nbytes,
                                    cudaMemcpyHostToDevice, stream()),
                    "upload");
  copy(dst, staged);
  synchronize("upload");
}

// src on the GPU (contiguous) -> host_dst (contiguous CPU, same dtype)
static void download(Tref host_dst, Tref src) {
  require_cuda(src, "download", "src");
  ENGRAM_CHECK(host_dst.device() == Device::cpu && host_dst.is_contiguous() &&
                   host_dst.dtype() == src.dtype() && host_dst.numel() == src.numel(),
               "download: the host destination must be a contiguous CPU {} tensor of {} elements",
               dtype_name(src.dtype()), src.numel());
  Tensor dense = src.is_contiguous() ? src : empty(src.shape(), src.dtype(), Device::cuda);
  if (!src.is_contiguous()) copy(dense, src);
  const size_t nbytes = src.numel() * dtype_size(src.dtype());
  if (nbytes == 0) return;
  ENGRAM_CUDA_CHECK(cudaMemcpyAsync(host_dst.raw_data(), dense.raw_data(), nbytes,
                                    cudaMemcpyDeviceToHost, stream()),
                    "download");
  synchronize("download");
}

// ---------------------------------------------------------------- the table
static bool gpu_present() {
  const char* off = std::getenv("ENGRAM_CUDA_DISABLE");
  if (off != nullptr && std::strcmp(off, "1") == 0) return false;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();  // no driver or no device: not an error, just no GPU
    return false;
  }
  return true;
}

Backend make_cuda_backend() {
  Backend b;
  if (!gpu_present()) return b;  // empty: device_available(Device::cuda) is false
  b.name = "cuda";
  b.alloc = alloc;
  b.free = free_block;
  b.copy = copy;
  b.fill = fill;
  b.upload = upload;
  b.download = download;
  register_elementwise(b);
  register_reduce(b);
  register_blas(b);
  register_index(b);
  register_nn(b);
  register_conv(b);
  register_fft(b);
  register_scan(b);
  register_episodic(b);
  register_cmr(b);
  register_titans(b);
  register_ssm(b);
  register_optim(b);
  register_recurrent(b);
  return b;
}

}  // namespace engram::cuda
