// cuda/common.cuh — what every CUDA kernel file shares: error checks, the one stream, launch
// shapes, device scratch buffers and the strided indexer that elementwise kernels walk.
//
// The CUDA backend fills the same kernel table as core/cpu/ (core/backend.h): each
// cuda/cuda_<family>.cu defines its kernels and a register_<family>(Backend&) that stores them,
// and cuda/cuda_backend.cu calls those in turn when a GPU is present. Only files under cuda/
// include CUDA headers; everything above core/ sees Device::cuda and nothing else.
//
// How to write a kernel here (nvcc compiles these files as C++17, see the Makefile):
//   - dispatch on dtype on the host with ENGRAM_DISPATCH_FLOAT/ALL and call a *named* template
//     function (`foo_impl<scalar_t>(...)`): nvcc's extended __device__ lambdas must live in a named
//     function, not inside another lambda;
//   - every launch goes on `stream()` and is followed by check_launch("op name"), so a bad launch
//     is reported with the op that made it rather than at some later synchronisation;
//   - accumulate in double for f64 and in float for f32 (the CPU kernels do the same: results
//     agree with the CPU within rounding, which make test-cuda checks per dtype).
#pragma once
#include <cuda_runtime.h>

#include <array>
#include <cstdint>

#include "core/backend.h"
#include "core/device.h"

namespace engram::cuda {

// ---- errors: the failing call and the op that made it, never an abort ----
[[noreturn]] void fail_cuda(cudaError_t err, const char* call, const char* op);
inline void check_cuda(cudaError_t err, const char* call, const char* op) {
  if (err != cudaSuccess) fail_cuda(err, call, op);
}
#define ENGRAM_CUDA_CHECK(CALL, OP) ::engram::cuda::check_cuda((CALL), #CALL, (OP))
// After a kernel launch: launch-configuration errors and any earlier asynchronous fault.
inline void check_launch(const char* op) { check_cuda(cudaGetLastError(), "kernel launch", op); }

// ---- the stream every kernel, copy, cuBLAS and cuFFT call of the backend runs on ----
// One stream makes every operation ordered after the ones before it, so the caching allocator can
// hand a freed block to the next kernel at once (the free is ordered after the last use).
cudaStream_t stream();
void synchronize(const char* op);  // wait for the stream; fails naming `op` on an async error

// ---- device scratch memory from the caching allocator (cuda/cuda_alloc.cu) ----
void* device_alloc(size_t nbytes);  // throws a clear engram error when the GPU is out of memory
void device_free(void* p);
DeviceMemoryStats memory_stats();
void empty_cache();  // give every cached block back to the driver
void reset_peak_memory();
class Scratch {  // RAII: bytes for the duration of one kernel call
 public:
  explicit Scratch(size_t nbytes) : p_(device_alloc(nbytes == 0 ? 8 : nbytes)) {}
  ~Scratch() { device_free(p_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T> T* as() const { return static_cast<T*>(p_); }
 private:
  void* p_;
};

// ---- launch shapes: grid-stride loops over n items ----
constexpr int kThreads = 256;
inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  return (unsigned)(b < 1 ? 1 : (b > 65535 * 8 ? 65535 * 8 : b));
}
#define ENGRAM_GRID_STRIDE(I, N)                                                                  \
  for (int64_t I = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; I < (N);                       \
       I += (int64_t)gridDim.x * blockDim.x)

// ---- strided indexing: operand k's element offset for a flat index of `shape` ----
// Dims of size 1 are dropped and dims contiguous in every operand merged (as core/cpu/strided.h
// does), so a contiguous tensor is one dim and the divisions below run once per element.
constexpr int kMaxDims = 12;
template <int N> struct Strided {
  int nd = 0;
  int64_t size[kMaxDims];
  int64_t stride[N][kMaxDims];
  __device__ __forceinline__ void offsets(int64_t flat, int64_t (&off)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = nd - 1; d >= 0; --d) {
      int64_t i = flat % size[d];
      flat /= size[d];
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += i * stride[k][d];
    }
  }
};
Strided<1> make_strided(const Shape& shape, const Shape& s0, const char* op);
Strided<2> make_strided(const Shape& shape, const Shape& s0, const Shape& s1, const char* op);
Strided<3> make_strided(const Shape& shape, const Shape& s0, const Shape& s1, const Shape& s2,
                        const char* op);
Strided<4> make_strided(const Shape& shape, const Shape& s0, const Shape& s1, const Shape& s2,
                        const Shape& s3, const char* op);

template <int N, class F> __global__ void strided_kernel(int64_t n, Strided<N> s, F f) {
  ENGRAM_GRID_STRIDE(i, n) {
    int64_t off[N];
    s.offsets(i, off);
    f(off);
  }
}
// Calls f(off) (an int64_t[N] of element offsets, one per operand) for every element.
template <int N, class F> void for_each_strided(int64_t n, const Strided<N>& s, F f, const char* op) {
  if (n == 0) return;
  strided_kernel<N><<<blocks_for(n), kThreads, 0, stream()>>>(n, s, f);
  check_launch(op);
}

template <class F> __global__ void flat_kernel(int64_t n, F f) {
  ENGRAM_GRID_STRIDE(i, n) f(i);
}
// Calls f(i) for i in [0, n).
template <class F> void for_each_index(int64_t n, F f, const char* op) {
  if (n == 0) return;
  flat_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(n, f);
  check_launch(op);
}

// ---- checks of what the kernels assume ----
void require_cuda(Tref t, const char* op, const char* what);         // on the GPU
void require_contiguous(Tref t, const char* op, const char* what);   // on the GPU and contiguous

// ---- device-side reductions of a block (blockDim.x a multiple of 32, at most 1024) ----
template <typename T> __device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}
template <typename T> __device__ __forceinline__ T warp_max(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    T w = __shfl_down_sync(0xffffffffu, v, o);
    v = w > v ? w : v;
  }
  return v;
}
// Sum over the block; every thread gets the result. `shared` holds 32 T.
template <typename T> __device__ T block_sum(T v, T* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  T r = threadIdx.x < warps ? shared[threadIdx.x] : T(0);
  if (warp == 0) r = warp_sum(r);
  if (threadIdx.x == 0) shared[0] = r;
  __syncthreads();
  return shared[0];
}
// Max over the block; every thread gets the result. `shared` holds 32 T. `lowest` pads.
template <typename T> __device__ T block_max(T v, T* shared, T lowest) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  T r = threadIdx.x < warps ? shared[threadIdx.x] : lowest;
  if (warp == 0) r = warp_max(r);
  if (threadIdx.x == 0) shared[0] = r;
  __syncthreads();
  return shared[0];
}

// Settings (cuda/cuda_backend.cu): TF32 for f32 matrix products, off unless ENGRAM_CUDA_TF32=1
// or set_tf32(true), so results match the CPU to f32 rounding by default.
bool tf32_enabled();
void set_tf32(bool on);
std::string device_description();  // name, compute capability and memory of device 0

}  // namespace engram::cuda
