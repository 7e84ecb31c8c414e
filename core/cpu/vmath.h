// core/cpu/vmath.h — vectorisable exp, sigmoid and tanh for the CPU kernels' inner loops.
//
// libm's expf/tanhf/erff are scalar calls: inside a loop that should run 4 or 8 lanes at once they
// run one element at a time and dominate the kernel (a selective scan, an LSTM cell). These are
// branch-free polynomials the compiler turns into vector code (with `#pragma omp simd`, or
// plainly at -O3). Accuracy: vexp about 1 ulp (float) / 2 ulp (double) over the normal range;
// vsigmoid a few ulp; vtanh ~1e-7 relative in float; verf (float only) 1.5e-7 absolute.
//
// ENGRAM_SIMD_CLONES marks a function g++ compiles twice on x86-64, for the baseline (SSE2) and
// for x86-64-v3 (AVX2 + FMA, twice the vector width); the loader picks the one the CPU runs
// (target_clones; clang 14 cannot clone templates, so it builds the baseline only).
// valgrind cannot decode some of the AVX2 clone's instructions: check a file under valgrind
// with the macro defined empty.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

namespace engram::cpu {

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define ENGRAM_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define ENGRAM_SIMD_CLONES
#endif

// c ? a : b on bits: g++ (with its default -ftrapping-math) will not turn a floating-point
// compare-and-select into vector code, but integer and/or on the bits it will.
static inline float vblend(bool c, float a, float b) {
  const uint32_t m = 0u - uint32_t(c);
  return std::bit_cast<float>((std::bit_cast<uint32_t>(a) & m) | (std::bit_cast<uint32_t>(b) & ~m));
}
static inline double vblend(bool c, double a, double b) {
  const uint64_t m = 0ull - uint64_t(c);
  return std::bit_cast<double>((std::bit_cast<uint64_t>(a) & m) | (std::bit_cast<uint64_t>(b) & ~m));
}

// ---------------------------------------------------------------- a vectorisable exp
// exp(x) = 2^k e^r with k = round(x / ln2) and |r| <= ln2 / 2: r by Cody-Waite reduction (ln2
// split into a head whose products with k are exact, and a tail), e^r by its Taylor series
// (degree 13 for double, 7 for float: truncation below one ulp), 2^k written straight into the
// exponent bits. k comes from adding 1.5 * 2^52 (2^23): the sum rounds x / ln2 to an integer
// that sits in the low mantissa bits. x is clamped to the normal range first (with vblend), so
// huge negative arguments and -inf give ~1e-308 (1e-38) instead of 0 and +inf gives ~1e308
// (1.6e38): harmless where it is used (decay factors, sigmoid, tanh); NaN stays NaN.
static inline double vexp(double x) {
  x = vblend(x < -708.0, -708.0, vblend(x > 709.0, 709.0, x));
  const double shift = 0x1.8p52;
  double kd = x * 1.4426950408889634 + shift;
  const uint64_t ki = std::bit_cast<uint64_t>(kd);
  kd -= shift;
  const double r = (x - kd * 6.93147180369123816490e-01) - kd * 1.90821492927058770002e-10;
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  return p * std::bit_cast<double>((ki + 1023) << 52);
}

static inline float vexp(float x) {
  x = vblend(x < -87.0f, -87.0f, vblend(x > 88.0f, 88.0f, x));
  const float shift = 0x1.8p23f;
  float kf = x * 1.44269504f + shift;
  const uint32_t ki = std::bit_cast<uint32_t>(kf);
  kf -= shift;
  const float r = (x - kf * 0.693359375f) - kf * -2.12194440e-4f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return p * std::bit_cast<float>((ki + 127) << 23);
}

// exp for a softmax's shifted scores (x <= 0, -inf for a score that must vanish): vexp with
// what underflows (x < -87.33, below float's smallest normal) flushed to exactly 0, so a -inf
// score gives weight 0 as with libm. Double keeps std::exp (the gradchecks' reference).
static inline float vexp_softmax(float x) { return vblend(x < -87.33f, 0.0f, vexp(x)); }
static inline double vexp_softmax(double x) { return std::exp(x); }

template <typename T> static inline T vsigmoid(T x) { return T(1) / (T(1) + vexp(-x)); }

// tanh: 1 - 2 / (1 + e^{2x}) away from 0 (e^{2x} saturates at the clamp, giving exactly +-1 far
// out); near 0 that form cancels, so |x| < 0.625 uses Cephes' odd polynomial instead (tanhf.c,
// relative error ~1e-7). Both branches are computed and blended (vblend). The double version is for the f64 kernels: there the polynomial
// would be too short, so it keeps the exp form only where it is exact enough (|x| >= 0.625:
// cancellation costs < 2 bits) and calls std::tanh below.
static inline float vtanh(float x) {
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float near_zero = p * z * x + x;
  const float far = 1.0f - 2.0f / (1.0f + vexp(2.0f * x));
  return vblend((x < 0.625f) & (x > -0.625f), near_zero, far);
}
static inline double vtanh(double x) {
  if (x < 0.625 && x > -0.625) return std::tanh(x);
  return 1.0 - 2.0 / (1.0 + vexp(2.0 * x));
}

// erf for float, Abramowitz & Stegun 7.1.26 (as PyTorch's Vectorized<float>::erf): with
// t = 1 / (1 + p |x|), erf(|x|) = 1 - t (a1 + t (a2 + ... a5)) e^{-x^2}, |error| <= 1.5e-7.
// |x| is capped at 9 (erf = 1 in float there), so +-inf give +-1 and NaN stays NaN.
static inline float verf(float x) {
  const float ax = vblend(std::fabs(x) > 9.0f, 9.0f, std::fabs(x));
  const float t = 1.0f / (1.0f + 0.3275911f * ax);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const float r = 1.0f - p * t * vexp(-ax * ax);
  return std::copysign(r, x);
}

}  // namespace engram::cpu
