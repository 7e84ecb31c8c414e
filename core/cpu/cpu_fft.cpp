// core/cpu/cpu_fft.cpp — real FFTs along the last dim on the CPU, through FFTW (fftw3 for f64,
// fftw3f for f32). Both kernels are unnormalised (FFTW's convention; autograd/fft.cpp scales):
//
//   rfft  x [.., n] -> out [.., n/2+1, 2]:  out[.., k] = X_k = sum_m x_m e^{-2 pi i k m / n}
//   irfft X [.., n/2+1, 2] -> out [.., n]:  out[.., m] = sum_{k=0}^{n-1} X_k e^{+2 pi i k m / n}
//         with X_{n-k} = conj(X_k) filling the missing half (FFTW's c2r). The imag parts of X_0
//         and, for even n, of X_{n/2} do not enter (they are treated as 0).
//
// A contiguous [.., n/2+1, 2] tensor is exactly FFTW's interleaved fftw_complex array, so
// tensors are handed over without repacking; non-contiguous inputs are made contiguous first,
// non-contiguous outputs are written through a temporary.
//
// Plans: FFTW's planner is not thread-safe, its executor is (fftw_execute_dft_r2c/c2r on new
// arrays, provided they have the alignment the plan was made for). So plans are made under one
// mutex, with FFTW_ESTIMATE (fast, deterministic, and it leaves the arrays untouched), and cached
// by (n, rows, alignment of in, alignment of out). To keep that cache bounded whatever batch
// sizes arrive, the rows are cut into power-of-two blocks of at most kMaxBlock rows (binary
// decomposition of the row count), so only ~log2(kMaxBlock) row counts per n ever get a plan;
// the blocks double as the units of OpenMP parallelism. c2r destroys its input, so irfft always
// runs on a private copy of X.
//
// complex_mul, complex as trailing [re, im]: out = op(a) b elementwise, op = conj when conj_a
// (the backward's conj(b) g), a and b any strides of out's shape (stride-0 broadcasts read in
// place), out contiguous. One pass over the complex elements through for_each_strided, each
// product in the tensor's dtype in the order (ar br - ai bi, ar bi + ai br) of the four real
// multiplies it replaces, so the forward is bit-identical to them.
#include <fftw3.h>

#include <climits>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "core/backend.h"
#include "core/kernel_args.h"
#include "core/cpu/strided.h"

namespace engram::cpu {

// The double/float halves of FFTW's API behind one interface.
template <typename T> struct Fftw;
template <> struct Fftw<double> {
  using Plan = fftw_plan;
  using Cpx = fftw_complex;
  static Plan plan_r2c(int n, int rows, double* in, double* out) {
    return fftw_plan_many_dft_r2c(1, &n, rows, in, nullptr, 1, n, reinterpret_cast<Cpx*>(out),
                                  nullptr, 1, n / 2 + 1, FFTW_ESTIMATE);
  }
  static Plan plan_c2r(int n, int rows, double* in, double* out) {
    return fftw_plan_many_dft_c2r(1, &n, rows, reinterpret_cast<Cpx*>(in), nullptr, 1, n / 2 + 1,
                                  out, nullptr, 1, n, FFTW_ESTIMATE | FFTW_DESTROY_INPUT);
  }
  static void exec_r2c(Plan p, double* in, double* out) {
    fftw_execute_dft_r2c(p, in, reinterpret_cast<Cpx*>(out));
  }
  static void exec_c2r(Plan p, double* in, double* out) {
    fftw_execute_dft_c2r(p, reinterpret_cast<Cpx*>(in), out);
  }
  static int alignment(double* p) { return fftw_alignment_of(p); }
};
template <> struct Fftw<float> {
  using Plan = fftwf_plan;
  using Cpx = fftwf_complex;
  static Plan plan_r2c(int n, int rows, float* in, float* out) {
    return fftwf_plan_many_dft_r2c(1, &n, rows, in, nullptr, 1, n, reinterpret_cast<Cpx*>(out),
                                   nullptr, 1, n / 2 + 1, FFTW_ESTIMATE);
  }
  static Plan plan_c2r(int n, int rows, float* in, float* out) {
    return fftwf_plan_many_dft_c2r(1, &n, rows, reinterpret_cast<Cpx*>(in), nullptr, 1, n / 2 + 1,
                                   out, nullptr, 1, n, FFTW_ESTIMATE | FFTW_DESTROY_INPUT);
  }
  static void exec_r2c(Plan p, float* in, float* out) {
    fftwf_execute_dft_r2c(p, in, reinterpret_cast<Cpx*>(out));
  }
  static void exec_c2r(Plan p, float* in, float* out) {
    fftwf_execute_dft_c2r(p, reinterpret_cast<Cpx*>(in), out);
  }
  static int alignment(float* p) { return fftwf_alignment_of(p); }
};

constexpr int64_t kMaxBlock = 256;  // rows per plan execution at most

static std::mutex& planner_mutex() {
  static std::mutex m;  // one for fftw and fftwf alike: simplest, and planning is rare
  return m;
}

// The cached plan for `rows` transforms of length n between arrays aligned like in/out.
// Plans live until exit (a handful per n, see the block decomposition above).
template <typename T>
static typename Fftw<T>::Plan get_plan(bool forward, int n, int rows, T* in, T* out) {
  using Key = std::tuple<bool, int, int, int, int>;
  // Never destroyed: no plan dies at exit under a thread still running one (and leak checkers
  // see the plans as reachable). Guarded by planner_mutex().
  static auto* cache = new std::map<Key, typename Fftw<T>::Plan>();
  Key key{forward, n, rows, Fftw<T>::alignment(in), Fftw<T>::alignment(out)};
  std::lock_guard<std::mutex> lock(planner_mutex());
  auto it = cache->find(key);
  if (it != cache->end()) return it->second;
  auto plan = forward ? Fftw<T>::plan_r2c(n, rows, in, out) : Fftw<T>::plan_c2r(n, rows, in, out);
  ENGRAM_CHECK(plan != nullptr, "{}: FFTW could not plan a transform of length {} over {} rows",
               forward ? "rfft" : "irfft", n, rows);
  cache->emplace(key, plan);
  return plan;
}

// Row blocks [start, count): full kMaxBlock blocks, then the binary digits of the remainder.
static std::vector<std::pair<int64_t, int64_t>> row_blocks(int64_t rows) {
  std::vector<std::pair<int64_t, int64_t>> blocks;
  int64_t r = 0;
  for (; rows - r >= kMaxBlock; r += kMaxBlock) blocks.emplace_back(r, kMaxBlock);
  for (int64_t b = kMaxBlock / 2; b >= 1; b /= 2)
    if (rows - r >= b) {
      blocks.emplace_back(r, b);
      r += b;
    }
  return blocks;
}

// Runs every block: in rows of in_len elements, out rows of out_len elements. Plans are fetched
// first, serially (planning may throw; nothing may throw inside an OpenMP region), then run.
template <typename T>
static void run_blocks(bool forward, int64_t n, int64_t rows, T* in, int64_t in_len, T* out,
                       int64_t out_len) {
  const auto blocks = row_blocks(rows);
  const int64_t nb = (int64_t)blocks.size();
  std::vector<typename Fftw<T>::Plan> plans(nb);
  for (int64_t i = 0; i < nb; ++i)
    plans[i] = get_plan<T>(forward, (int)n, (int)blocks[i].second, in + blocks[i].first * in_len,
                           out + blocks[i].first * out_len);
#pragma omp parallel for if (rows * n > kParallelGrain && nb > 1) schedule(dynamic, 1)
  for (int64_t i = 0; i < nb; ++i) {
    T* bi = in + blocks[i].first * in_len;
    T* bo = out + blocks[i].first * out_len;
    if (forward) Fftw<T>::exec_r2c(plans[i], bi, bo);
    else Fftw<T>::exec_c2r(plans[i], bi, bo);
  }
}

template <typename T> static void rfft_typed(Tref x, Tref out) {
  const int64_t n = x.shape().back(), rows = n > 0 ? x.numel() / n : 0;
  Tensor xc = raw::contiguous(x);
  Tensor oc = out.is_contiguous() ? out : empty(out.shape(), out.dtype(), out.device());
  // FFTW's r2c leaves its input alone (out-of-place), so x's own buffer is safe to pass.
  if (rows > 0) run_blocks<T>(true, n, rows, xc.data<T>(), n, oc.data<T>(), (n / 2 + 1) * 2);
  if (!oc.same(out)) raw::copy_(out, oc);
}

template <typename T> static void irfft_typed(Tref x, int64_t n, Tref out) {
  const int64_t rows = n > 0 ? out.numel() / n : 0;
  Tensor xc = raw::clone(x);  // c2r overwrites its input
  Tensor oc = out.is_contiguous() ? out : empty(out.shape(), out.dtype(), out.device());
  if (rows > 0) run_blocks<T>(false, n, rows, xc.data<T>(), (n / 2 + 1) * 2, oc.data<T>(), n);
  if (!oc.same(out)) raw::copy_(out, oc);
}

static void rfft(Tref x, Tref out) {
  ENGRAM_CHECK(x.dim() >= 1 && x.shape().back() >= 1 && x.shape().back() <= INT_MAX,
               "rfft: expected a signal [.., n] with 1 <= n < 2^31, got {}", shape_str(x.shape()));
  const int64_t n = x.shape().back();
  Shape want = x.shape();
  want.back() = n / 2 + 1;
  want.push_back(2);
  ENGRAM_CHECK(out.shape() == want && out.dtype() == x.dtype(),
               "rfft: output {} {} does not match input {} {} (expected {})", dtype_name(out.dtype()),
               shape_str(out.shape()), dtype_name(x.dtype()), shape_str(x.shape()), shape_str(want));
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "rfft", [&] { rfft_typed<scalar_t>(x, out); });
}

static void irfft(Tref x, int64_t n, Tref out) {
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
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "irfft", [&] { irfft_typed<scalar_t>(x, n, out); });
}

template <typename T> static void complex_mul_typed(Tref a, Tref b, bool conj_a, Tref out) {
  const Shape lead = without_last(out.shape());
  const T *pa = a.data<T>(), *pb = b.data<T>();
  T* po = out.data<T>();
  const int64_t a_im = a.strides().back(), b_im = b.strides().back();
  const T sign = conj_a ? T(-1) : T(1);
  for_each_strided<3>(lead, {without_last(out.strides()), without_last(a.strides()), without_last(b.strides())},
                      [=](const std::array<int64_t, 3>& off, int64_t n,
                          const std::array<int64_t, 3>& inner) {
                        const T *x = pa + off[1], *y = pb + off[2];
                        T* o = po + off[0];
                        for (int64_t i = 0; i < n; ++i) {
                          const T ar = x[i * inner[1]], ai = sign * x[i * inner[1] + a_im];
                          const T br = y[i * inner[2]], bi = y[i * inner[2] + b_im];
                          o[i * inner[0]] = ar * br - ai * bi;
                          o[i * inner[0] + 1] = ar * bi + ai * br;
                        }
                      });
}

static void complex_mul(Tref a, Tref b, bool conj_a, Tref out) {
  check_complex_mul_args(a, b, out);
  ENGRAM_CHECK(out.is_contiguous(), "complex_mul: expected a contiguous output, got strides {}",
               shape_str(out.strides()));
  ENGRAM_DISPATCH_FLOAT(out.dtype(), "complex_mul",
                        [&] { complex_mul_typed<scalar_t>(a, b, conj_a, out); });
}

void register_fft(Backend& b) {
  b.rfft = rfft;
  b.irfft = irfft;
  b.complex_mul = complex_mul;
}

}  // namespace engram::cpu
