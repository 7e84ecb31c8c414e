// cuda/cuda_fft.cu — real FFTs along the last dim on the GPU through cuFFT; mirrors
// core/cpu/cpu_fft.cpp (FFTW there). Both kernels are unnormalised (autograd/fft.cpp scales):
//
//   rfft  x [.., n] -> out [.., n/2+1, 2]:  out[.., k] = X_k = sum_m x_m e^{-2 pi i k m / n}
//   irfft X [.., n/2+1, 2] -> out [.., n]:  out[.., m] = sum_{k=0}^{n-1} X_k e^{+2 pi i k m / n}
//         with X_{n-k} = conj(X_k) filling the missing half. The imag parts of X_0 and, for even
//         n, of X_{n/2} do not enter (they are treated as 0), and x is left unchanged.
//
// A contiguous [.., n/2+1, 2] tensor is exactly cuFFT's interleaved cufftComplex array, so every
// leading row is one transform of a batched plan (R2C/C2R in f32, D2Z/Z2D in f64, made with
// cufftMakePlanMany64 so that batch * n may exceed 2^31). Strided inputs are made contiguous first;
// non-contiguous (or misaligned) outputs are written through a temporary and copied back.
// cuFFT's C2R overwrites its input, so irfft transforms a private copy of X, in which it also zeroes
// the imag parts of DC and Nyquist: then cuFFT's own treatment of those values cannot matter.
// n = 1 (out = x, imag 0 / out = Re X_0) is done by a plain kernel, without cuFFT.
//
// Plans are cached per (n, batch, type) — type says dtype and direction — in a small map under a
// mutex that is also held while a plan runs (a cuFFT plan must not be used by two host threads at
// once). Every plan is bound to stream() and has no work area of its own: each execution borrows
// one from the caching allocator (stream-ordered, so freeing it right after the launch is safe).
// When the map is full, the stream is synchronised and every plan destroyed (kMaxPlans bounds the
// cache whatever batch sizes arrive).
//
// complex_mul: out = (conj_a ? conj(a) : a) * b on [.., 2] pairs, a and b any strides of out's
// shape (stride-0 broadcasts), out contiguous; one thread per complex element, the products in
// the CPU kernel's order.
#include <cufft.h>

#include <climits>
#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <utility>

#include "core/kernel_args.h"
#include "cuda/common.cuh"

namespace engram::cuda {

static const char* cufft_result_name(cufftResult r) {
  switch (r) {
    case CUFFT_SUCCESS: return "CUFFT_SUCCESS";
    case CUFFT_INVALID_PLAN: return "CUFFT_INVALID_PLAN";
    case CUFFT_ALLOC_FAILED: return "CUFFT_ALLOC_FAILED";
    case CUFFT_INVALID_TYPE: return "CUFFT_INVALID_TYPE";
    case CUFFT_INVALID_VALUE: return "CUFFT_INVALID_VALUE";
    case CUFFT_INTERNAL_ERROR: return "CUFFT_INTERNAL_ERROR";
    case CUFFT_EXEC_FAILED: return "CUFFT_EXEC_FAILED";
    case CUFFT_SETUP_FAILED: return "CUFFT_SETUP_FAILED";
    case CUFFT_INVALID_SIZE: return "CUFFT_INVALID_SIZE";
    case CUFFT_UNALIGNED_DATA: return "CUFFT_UNALIGNED_DATA";
    case CUFFT_INVALID_DEVICE: return "CUFFT_INVALID_DEVICE";
    case CUFFT_NO_WORKSPACE: return "CUFFT_NO_WORKSPACE";
    case CUFFT_NOT_IMPLEMENTED: return "CUFFT_NOT_IMPLEMENTED";
    case CUFFT_NOT_SUPPORTED: return "CUFFT_NOT_SUPPORTED";
    default: return "unknown cufftResult";
  }
}

// Fails naming the op, the cuFFT call and its result.
static void check_cufft(cufftResult r, const char* call, const char* op) {
  if (r != CUFFT_SUCCESS)
    ENGRAM_FAIL("cuFFT error in {}: {} returned {} ({})", op, call, cufft_result_name(r), (int)r);
}
#define ENGRAM_CUFFT_CHECK(CALL, OP) check_cufft((CALL), #CALL, (OP))

// ---------------------------------------------------------------- plans

struct FftPlan {
  cufftHandle handle;
  size_t work_bytes;  // the work area each execution must provide
};

constexpr size_t kMaxPlans = 64;

static std::mutex& fft_mutex() {
  static std::mutex m;
  return m;
}

// Never destroyed (no cuFFT call at exit, after the CUDA context may be gone). Guarded by
// fft_mutex().
static std::map<std::tuple<int64_t, int64_t, int>, FftPlan>& plan_cache() {
  static auto* cache = new std::map<std::tuple<int64_t, int64_t, int>, FftPlan>();
  return *cache;
}

// The plan for `batch` transforms of length n (rows back to back: real rows of n, complex rows of
// n/2+1). The caller holds fft_mutex().
static FftPlan get_plan(int64_t n, int64_t batch, cufftType type, const char* op) {
  auto& cache = plan_cache();
  const auto key = std::make_tuple(n, batch, (int)type);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  if (cache.size() >= kMaxPlans) {  // flush: no queued transform may still use a plan destroyed
    synchronize(op);
    auto old = std::move(cache);
    cache.clear();
    for (auto& kv : old) ENGRAM_CUFFT_CHECK(cufftDestroy(kv.second.handle), op);
  }
  const bool forward = type == CUFFT_R2C || type == CUFFT_D2Z;
  long long len = n, real_embed = n, cpx_embed = n / 2 + 1;
  long long in_dist = forward ? n : n / 2 + 1, out_dist = forward ? n / 2 + 1 : n;
  FftPlan plan{0, 0};
  ENGRAM_CUFFT_CHECK(cufftCreate(&plan.handle), op);
  // Any failure from here destroys the half-made plan before reporting.
  auto checked = [&](cufftResult r, const char* call) {
    if (r == CUFFT_SUCCESS) return;
    cufftDestroy(plan.handle);
    check_cufft(r, call, op);
  };
  checked(cufftSetAutoAllocation(plan.handle, 0), "cufftSetAutoAllocation");
  checked(cufftMakePlanMany64(plan.handle, 1, &len, forward ? &real_embed : &cpx_embed, 1, in_dist,
                              forward ? &cpx_embed : &real_embed, 1, out_dist, type, batch,
                              &plan.work_bytes),
          "cufftMakePlanMany64");
  checked(cufftSetStream(plan.handle, stream()), "cufftSetStream");
  cache.emplace(key, plan);
  return plan;
}

// The typed execute calls: f32 R2C/C2R, f64 D2Z/Z2D. Complex data is T pairs [re, im].
static cufftResult exec_r2c(cufftHandle p, float* in, float* out) {
  return cufftExecR2C(p, in, reinterpret_cast<cufftComplex*>(out));
}
static cufftResult exec_r2c(cufftHandle p, double* in, double* out) {
  return cufftExecD2Z(p, in, reinterpret_cast<cufftDoubleComplex*>(out));
}
static cufftResult exec_c2r(cufftHandle p, float* in, float* out) {
  return cufftExecC2R(p, reinterpret_cast<cufftComplex*>(in), out);
}
static cufftResult exec_c2r(cufftHandle p, double* in, double* out) {
  return cufftExecZ2D(p, reinterpret_cast<cufftDoubleComplex*>(in), out);
}

// Runs `rows` transforms of length n from in to out (both contiguous, complex side aligned).
template <typename T>
static void run_fft(bool forward, int64_t n, int64_t rows, T* in, T* out, const char* op) {
  constexpr bool f32 = std::is_same_v<T, float>;
  const cufftType type = forward ? (f32 ? CUFFT_R2C : CUFFT_D2Z) : (f32 ? CUFFT_C2R : CUFFT_Z2D);
  std::lock_guard<std::mutex> lock(fft_mutex());
  const FftPlan plan = get_plan(n, rows, type, op);
  Scratch work(plan.work_bytes);  // freed after the launch: ordered on stream()
  ENGRAM_CUFFT_CHECK(cufftSetWorkArea(plan.handle, work.as<void>()), op);
  if (forward) ENGRAM_CUFFT_CHECK(exec_r2c(plan.handle, in, out), op);
  else ENGRAM_CUFFT_CHECK(exec_c2r(plan.handle, in, out), op);
}

// cuFFT reads complex data as 2*sizeof(T)-byte pairs (vector loads): a view at an odd offset
// cannot be handed over as it is. Fresh allocations are always aligned.
template <typename T> static bool aligned(Tref t) {
  return reinterpret_cast<uintptr_t>(t.raw_data()) % (2 * sizeof(T)) == 0;
}

// ---------------------------------------------------------------- rfft / irfft

template <typename T> static void rfft_impl(Tref x, Tref out) {
  const int64_t n = x.shape().back(), rows = x.numel() / n;
  if (rows == 0) return;
  Tensor xc = raw::contiguous(x);  // out-of-place R2C leaves its input alone: x's buffer is safe
  if (!aligned<T>(xc)) xc = raw::clone(x);
  const bool direct = out.is_contiguous() && aligned<T>(out);
  Tensor oc = direct ? out : empty(out.shape(), out.dtype(), Device::cuda);
  T* xp = xc.data<T>();
  T* yp = oc.data<T>();
  if (n == 1) {  // X_0 = x_0
    for_each_index(
        rows,
        [=] __device__(int64_t r) {
          yp[2 * r] = xp[r];
          yp[2 * r + 1] = T(0);
        },
        "rfft");
  } else {
    run_fft<T>(true, n, rows, xp, yp, "rfft");
  }
  if (!direct) raw::copy_(out, oc);
}

template <typename T> static void irfft_impl(Tref x, int64_t n, Tref out) {
  const int64_t rows = out.numel() / n, h = n / 2 + 1;
  if (rows == 0) return;
  Tensor xc = raw::clone(x);  // private, contiguous, aligned: C2R overwrites its input
  T* xp = xc.data<T>();
  const bool direct = out.is_contiguous() && aligned<T>(out);
  Tensor oc = direct ? out : empty(out.shape(), out.dtype(), Device::cuda);
  T* yp = oc.data<T>();
  if (n == 1) {  // out = Re X_0
    for_each_index(rows, [=] __device__(int64_t r) { yp[r] = xp[2 * r]; }, "irfft");
  } else {
    const bool even = n % 2 == 0;
    for_each_index(
        rows,
        [=] __device__(int64_t r) {  // Im X_0 = 0 and, for even n, Im X_{n/2} = 0
          xp[2 * h * r + 1] = T(0);
          if (even) xp[2 * h * r + 2 * (h - 1) + 1] = T(0);
        },
        "irfft");
    run_fft<T>(false, n, rows, xp, yp, "irfft");
  }
  if (!direct) raw::copy_(out, oc);
}

static void rfft(Tref x, Tref out) {
  require_cuda(x, "rfft", "x");
  require_cuda(out, "rfft", "out");
  ENGRAM_CHECK(x.dim() >= 1 && x.shape().back() >= 1 && x.shape().back() <= INT_MAX,
               "rfft: expected a signal [.., n] with 1 <= n < 2^31, got {}", shape_str(x.shape()));
  const int64_t n = x.shape().back();
  Shape want = x.shape();
  want.back() = n / 2 + 1;
  want.push_back(2);
  ENGRAM_CHECK(out.shape() == want && out.dtype() == x.dtype(),
               "rfft: output {} {} does not match input {} {} (expected {})", dtype_name(out.dtype()),
               shape_str(out.shape()), dtype_name(x.dtype()), shape_str(x.shape()), shape_str(want));
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "rfft", [&] { rfft_impl<scalar_t>(x, out); });
}

static void irfft(Tref x, int64_t n, Tref out) {
  require_cuda(x, "irfft", "x");
  require_cuda(out, "irfft", "out");
  ENGRAM_CHECK(n >= 1 && n <= INT_MAX, "irfft: signal length n={} out of range", n);
  Shape want = out.shape();
  ENGRAM_CHECK(!want.empty() && want.back() == n, "irfft: output {} does not end in n={}",
               shape_str(out.shape()), n);
  want.back() = n / 2 + 1;
  want.push_back(2);
  ENGRAM_CHECK(x.shape() == want && out.dtype() == x.dtype(),
               "irfft: input {} {} does not match output {} {} for n={} (expected input {})",
               dtype_name(x.dtype()), shape_str(x.shape()), dtype_name(out.dtype()),
               shape_str(out.shape()), n, shape_str(want));
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "irfft", [&] { irfft_impl<scalar_t>(x, n, out); });
}

template <typename T> static void complex_mul_impl(Tref a, Tref b, bool conj_a, Tref out) {
  const Shape lead = without_last(out.shape());
  const T *pa = a.data<T>(), *pb = b.data<T>();
  T* po = out.data<T>();
  const int64_t a_im = a.strides().back(), b_im = b.strides().back();
  const T sign = conj_a ? T(-1) : T(1);
  for_each_strided<3>(
      out.numel() / 2,
      make_strided(lead, without_last(out.strides()), without_last(a.strides()),
                   without_last(b.strides()), "complex_mul"),
      [=] __device__(const int64_t(&off)[3]) {
        const T ar = pa[off[1]], ai = sign * pa[off[1] + a_im];
        const T br = pb[off[2]], bi = pb[off[2] + b_im];
        po[off[0]] = ar * br - ai * bi;
        po[off[0] + 1] = ar * bi + ai * br;
      },
      "complex_mul");
}

static void complex_mul(Tref a, Tref b, bool conj_a, Tref out) {
  require_cuda(a, "complex_mul", "a");
  require_cuda(b, "complex_mul", "b");
  require_contiguous(out, "complex_mul", "out");
  check_complex_mul_args(a, b, out);
  ENGRAM_DISPATCH_FLOAT(out.dtype(), "complex_mul",
                        [&] { complex_mul_impl<scalar_t>(a, b, conj_a, out); });
}

void register_fft(Backend& b) {
  b.rfft = rfft;
  b.irfft = irfft;
  b.complex_mul = complex_mul;
}

}  // namespace engram::cuda
