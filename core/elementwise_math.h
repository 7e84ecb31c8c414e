// core/elementwise_math.h — the pointwise formulas of core/backend.h's UnaryOp and BinaryOp,
// written once for the CPU (core/cpu/cpu_elementwise.cpp) and the CUDA backend
// (cuda/cuda_elementwise.cu), so the two cannot disagree.
//
// Each unary op appears once in unary_f with its forward y = f(x; p0, p1) and once in unary_df
// with its derivative dy/dx (given x and y), so the backward formulas are checked against the
// forwards by reading one table. T is float or double; std:: math is callable from device code.
#pragma once
#include <cmath>

#include "core/backend.h"
#include "core/host_device.h"

namespace engram {

constexpr double kSqrt2OverPi = 0.7978845608028654;  // sqrt(2/pi)
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;  // 1/sqrt(2*pi)
constexpr double kGeluC = 0.044715;

// std::max/min's exact rules (NaN handling included) without their host-only constexpr
template <typename T> ENGRAM_HOST_DEVICE inline T max_of(T a, T b) { return a < b ? b : a; }
template <typename T> ENGRAM_HOST_DEVICE inline T min_of(T a, T b) { return b < a ? b : a; }

template <typename T> ENGRAM_HOST_DEVICE inline T sigm(T x) { return T(1) / (T(1) + std::exp(-x)); }

// y = f(x)
template <typename T> ENGRAM_HOST_DEVICE inline T unary_f(UnaryOp op, T x, T p0, T p1) {
  switch (op) {
    case UnaryOp::neg: return -x;
    case UnaryOp::exp: return std::exp(x);
    case UnaryOp::log: return std::log(x);
    case UnaryOp::sqrt: return std::sqrt(x);
    case UnaryOp::rsqrt: return T(1) / std::sqrt(x);
    case UnaryOp::abs: return std::fabs(x);
    case UnaryOp::sin: return std::sin(x);
    case UnaryOp::cos: return std::cos(x);
    case UnaryOp::tanh: return std::tanh(x);
    case UnaryOp::sigmoid: return sigm(x);
    case UnaryOp::relu: return max_of(x, T(0));
    case UnaryOp::leaky_relu: return x > T(0) ? x : p0 * x;
    case UnaryOp::gelu: return T(0.5) * x * (T(1) + std::erf(x * T(kInvSqrt2)));
    case UnaryOp::gelu_tanh:
      return T(0.5) * x * (T(1) + std::tanh(T(kSqrt2OverPi) * (x + T(kGeluC) * x * x * x)));
    case UnaryOp::silu: return x * sigm(x);
    case UnaryOp::softplus: return p0 * x > p1 ? x : std::log1p(std::exp(p0 * x)) / p0;
    case UnaryOp::square: return x * x;
    case UnaryOp::reciprocal: return T(1) / x;
    case UnaryOp::sign: return T((x > T(0)) - (x < T(0)));
    case UnaryOp::add_scalar: return x + p0;
    case UnaryOp::mul_scalar: return x * p0;
    case UnaryOp::pow_scalar: return std::pow(x, p0);
    case UnaryOp::rpow_scalar: return std::pow(p0, x);
    case UnaryOp::clamp: return min_of(max_of(x, p0), p1);
    case UnaryOp::step_mask: return T(x > p0 && x < p1);
  }
  return x;
}

// dy/dx, given x and y = f(x)
template <typename T> ENGRAM_HOST_DEVICE inline T unary_df(UnaryOp op, T x, T y, T p0, T p1) {
  switch (op) {
    case UnaryOp::neg: return T(-1);
    case UnaryOp::exp: return y;
    case UnaryOp::log: return T(1) / x;
    case UnaryOp::sqrt: return T(0.5) / y;
    case UnaryOp::rsqrt: return T(-0.5) * y * y * y;
    case UnaryOp::abs: return T((x > T(0)) - (x < T(0)));
    case UnaryOp::sin: return std::cos(x);
    case UnaryOp::cos: return -std::sin(x);
    case UnaryOp::tanh: return T(1) - y * y;
    case UnaryOp::sigmoid: return y * (T(1) - y);
    case UnaryOp::relu: return T(x > T(0));
    case UnaryOp::leaky_relu: return x > T(0) ? T(1) : p0;
    case UnaryOp::gelu:  // Phi(x) + x * phi(x)
      return T(0.5) * (T(1) + std::erf(x * T(kInvSqrt2))) +
             x * T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
    case UnaryOp::gelu_tanh: {  // 0.5(1+t) + 0.5x(1-t^2) * sqrt(2/pi)(1 + 3c x^2)
      T t = std::tanh(T(kSqrt2OverPi) * (x + T(kGeluC) * x * x * x));
      return T(0.5) * (T(1) + t) +
             T(0.5) * x * (T(1) - t * t) * T(kSqrt2OverPi) * (T(1) + T(3 * kGeluC) * x * x);
    }
    case UnaryOp::silu: {  // s(x) (1 + x (1 - s(x)))
      T s = sigm(x);
      return s * (T(1) + x * (T(1) - s));
    }
    case UnaryOp::softplus: return p0 * x > p1 ? T(1) : sigm(p0 * x);
    case UnaryOp::square: return T(2) * x;
    case UnaryOp::reciprocal: return -y * y;
    case UnaryOp::sign: return T(0);
    case UnaryOp::add_scalar: return T(1);
    case UnaryOp::mul_scalar: return p0;
    case UnaryOp::pow_scalar: return p0 * std::pow(x, p0 - T(1));
    case UnaryOp::rpow_scalar: return y * std::log(p0);
    case UnaryOp::clamp: return T(x >= p0 && x <= p1);
    case UnaryOp::step_mask: return T(0);
  }
  return T(0);
}

// a (op) b; comparisons give 0/1 in T
template <typename T> ENGRAM_HOST_DEVICE inline T binary_f(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::div: return a / b;
    case BinaryOp::pow: return std::pow(a, b);
    case BinaryOp::maximum: return a > b ? a : b;
    case BinaryOp::minimum: return a < b ? a : b;
    case BinaryOp::gt: return T(a > b);
    case BinaryOp::lt: return T(a < b);
    case BinaryOp::ge: return T(a >= b);
    case BinaryOp::le: return T(a <= b);
    case BinaryOp::eq: return T(a == b);
  }
  return a;
}

// Every UnaryOp, for the switches that turn the runtime op into a template argument.
#define ENGRAM_FOR_EACH_UNARY_OP(X)                                                            \
  X(neg) X(exp) X(log) X(sqrt) X(rsqrt) X(abs) X(sin) X(cos) X(tanh) X(sigmoid) X(relu)          \
  X(leaky_relu) X(gelu) X(gelu_tanh) X(silu) X(softplus) X(square) X(reciprocal) X(sign)         \
  X(add_scalar) X(mul_scalar) X(pow_scalar) X(rpow_scalar) X(clamp) X(step_mask)
#define ENGRAM_FOR_EACH_BINARY_OP(X) \
  X(add) X(sub) X(mul) X(div) X(pow) X(maximum) X(minimum) X(gt) X(lt) X(ge) X(le) X(eq)

}  // namespace engram
