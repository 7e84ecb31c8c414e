// autograd/elementwise.cpp — pointwise ops with broadcasting, and their backwards.
//
// Binary ops return gradients in the broadcast output shape; the tape sums them back to each
// input's shape (unbroadcast). Unary ops share one pattern: forward y = f(x) through the
// `unary` kernel, backward dx = dy * f'(x) through `unary_backward`, whose derivative table sits
// beside the forward table in core/cpu/cpu_elementwise.cpp.
#include "autograd/ops.h"
#include "autograd/raw_ops.h"

namespace engram {

// ---------------------------------------------------------------- binary
// y = a + b; da += dy, db += dy
Tensor add(const Tensor& a, const Tensor& b) {
  Tensor y = rk::binary(BinaryOp::add, a, b, "add");
  record1("add", {a, b}, y, [](const Tensor& dy) { return std::vector<Tensor>{dy, dy}; });
  return y;
}
// y = a - b; da += dy, db -= dy
Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor y = rk::binary(BinaryOp::sub, a, b, "sub");
  record1("sub", {a, b}, y, [](const Tensor& dy) {
    return std::vector<Tensor>{dy, rk::unary(UnaryOp::neg, dy)};
  });
  return y;
}
// y = a * b; da += dy * b, db += dy * a
Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor y = rk::binary(BinaryOp::mul, a, b, "mul");
  record1("mul", {a, b}, y, [a, b](const Tensor& dy) {
    return std::vector<Tensor>{a.requires_grad() ? rk::mul(dy, b) : Tensor(),
                               b.requires_grad() ? rk::mul(dy, a) : Tensor()};
  });
  return y;
}
// y = a / b; da += dy / b, db -= dy * y / b
Tensor div(const Tensor& a, const Tensor& b) {
  Tensor y = rk::binary(BinaryOp::div, a, b, "div");
  record1("div", {a, b}, y, [b, y](const Tensor& dy) {
    Tensor da = rk::div(dy, b);
    return std::vector<Tensor>{da, rk::unary(UnaryOp::neg, rk::mul(da, y))};
  });
  return y;
}
// y = a ^ b; da += dy * b * a^(b-1), db += dy * y * log(a)
Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor y = rk::binary(BinaryOp::pow, a, b, "pow");
  record1("pow", {a, b}, y, [a, b, y](const Tensor& dy) {
    Tensor da, db;
    if (a.requires_grad())
      da = rk::mul(dy, rk::mul(b, rk::binary(BinaryOp::pow, a, rk::unary(UnaryOp::add_scalar, b, -1))));
    if (b.requires_grad()) db = rk::mul(dy, rk::mul(y, rk::unary(UnaryOp::log, a)));
    return std::vector<Tensor>{da, db};
  });
  return y;
}
// y = max(a, b); the gradient goes to the larger input, split evenly on ties as in PyTorch:
// da += dy * ([a > b] + [a == b] / 2), db += dy - da (the one-sided derivatives' mean, so central
// differences agree at a tie too)
static Tensor extremum(const Tensor& a, const Tensor& b, bool is_max) {
  const char* name = is_max ? "maximum" : "minimum";
  Tensor y = rk::binary(is_max ? BinaryOp::maximum : BinaryOp::minimum, a, b, name);
  record1(name, {a, b}, y, [a, b, is_max](const Tensor& dy) {
    Tensor wins = rk::binary(is_max ? BinaryOp::gt : BinaryOp::lt, a, b);
    Tensor ties = rk::binary(BinaryOp::eq, a, b);
    Tensor pick_a = rk::add(wins, rk::unary(UnaryOp::mul_scalar, ties, 0.5));
    Tensor da = rk::mul(dy, pick_a);
    return std::vector<Tensor>{da, rk::sub(dy, da)};
  });
  return y;
}
Tensor maximum(const Tensor& a, const Tensor& b) { return extremum(a, b, true); }
Tensor minimum(const Tensor& a, const Tensor& b) { return extremum(a, b, false); }

static Tensor compare(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  return rk::binary(op, a, b, name);  // piecewise constant: no gradient, never recorded
}
Tensor gt(const Tensor& a, const Tensor& b) { return compare(BinaryOp::gt, a, b, "gt"); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare(BinaryOp::lt, a, b, "lt"); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare(BinaryOp::ge, a, b, "ge"); }
Tensor le(const Tensor& a, const Tensor& b) { return compare(BinaryOp::le, a, b, "le"); }
Tensor eq(const Tensor& a, const Tensor& b) { return compare(BinaryOp::eq, a, b, "eq"); }

// ---------------------------------------------------------------- unary
// What each derivative (core/elementwise_math.h's unary_df) reads: x, y = f(x), or neither. The
// backward keeps only that one alive, and hands it to the kernel for both: relu's T(x > 0) is
// T(y > 0) exactly; a derivative that reads nothing gets dy as a stand-in of the right shape.
// (Keeping both held a ReLU's input and output, two activations, where one is enough.)
enum class UnaryReads { x, y, none };
static UnaryReads backward_reads(UnaryOp op) {
  switch (op) {
    case UnaryOp::exp: case UnaryOp::sqrt: case UnaryOp::rsqrt: case UnaryOp::tanh:
    case UnaryOp::sigmoid: case UnaryOp::relu: case UnaryOp::reciprocal: case UnaryOp::rpow_scalar:
      return UnaryReads::y;
    case UnaryOp::neg: case UnaryOp::sign: case UnaryOp::add_scalar: case UnaryOp::mul_scalar:
    case UnaryOp::step_mask:
      return UnaryReads::none;
    default:
      return UnaryReads::x;
  }
}

static Tensor unary_op(const char* name, UnaryOp op, const Tensor& x, double p0 = 0, double p1 = 0) {
  ENGRAM_CHECK(is_floating(x.dtype()), "{}: expected a floating tensor, got {}", name,
               dtype_name(x.dtype()));
  Tensor y = rk::unary(op, x, p0, p1);
  const UnaryReads reads = backward_reads(op);
  Tensor saved = reads == UnaryReads::x ? x : reads == UnaryReads::y ? y : Tensor();
  record1(name, {x}, y, [op, saved, p0, p1](const Tensor& dy) {
    const Tensor& s = saved.defined() ? saved : dy;
    Tensor dx = empty(dy.shape(), dy.dtype(), dy.device());
    ENGRAM_KERNEL(dy.device(), unary_backward)(op, s, s, dy, p0, p1, dx);
    return std::vector<Tensor>{dx};
  });
  return y;
}
// The derivative of each is in core/cpu/cpu_elementwise.cpp (unary_df), e.g. tanh: 1 - y^2.
Tensor neg(const Tensor& x) { return unary_op("neg", UnaryOp::neg, x); }
Tensor exp(const Tensor& x) { return unary_op("exp", UnaryOp::exp, x); }
Tensor log(const Tensor& x) { return unary_op("log", UnaryOp::log, x); }
Tensor sqrt(const Tensor& x) { return unary_op("sqrt", UnaryOp::sqrt, x); }
Tensor rsqrt(const Tensor& x) { return unary_op("rsqrt", UnaryOp::rsqrt, x); }
Tensor abs(const Tensor& x) { return unary_op("abs", UnaryOp::abs, x); }
Tensor sin(const Tensor& x) { return unary_op("sin", UnaryOp::sin, x); }
Tensor cos(const Tensor& x) { return unary_op("cos", UnaryOp::cos, x); }
Tensor tanh(const Tensor& x) { return unary_op("tanh", UnaryOp::tanh, x); }
Tensor sigmoid(const Tensor& x) { return unary_op("sigmoid", UnaryOp::sigmoid, x); }
Tensor relu(const Tensor& x) { return unary_op("relu", UnaryOp::relu, x); }
Tensor leaky_relu(const Tensor& x, double slope) {
  return unary_op("leaky_relu", UnaryOp::leaky_relu, x, slope);
}
Tensor gelu(const Tensor& x, bool tanh_approximation) {
  return tanh_approximation ? unary_op("gelu_tanh", UnaryOp::gelu_tanh, x)
                            : unary_op("gelu", UnaryOp::gelu, x);
}
Tensor silu(const Tensor& x) { return unary_op("silu", UnaryOp::silu, x); }
Tensor softplus(const Tensor& x, double beta, double threshold) {
  ENGRAM_CHECK(beta > 0, "softplus: beta must be positive, got {}", beta);
  return unary_op("softplus", UnaryOp::softplus, x, beta, threshold);
}
Tensor square(const Tensor& x) { return unary_op("square", UnaryOp::square, x); }
Tensor reciprocal(const Tensor& x) { return unary_op("reciprocal", UnaryOp::reciprocal, x); }
Tensor clamp(const Tensor& x, double lo, double hi) {
  ENGRAM_CHECK(lo <= hi, "clamp: min {} > max {}", lo, hi);
  return unary_op("clamp", UnaryOp::clamp, x, lo, hi);
}
Tensor add(const Tensor& a, double s) { return unary_op("add_scalar", UnaryOp::add_scalar, a, s); }
Tensor mul(const Tensor& a, double s) { return unary_op("mul_scalar", UnaryOp::mul_scalar, a, s); }
Tensor pow(const Tensor& a, double e) { return unary_op("pow_scalar", UnaryOp::pow_scalar, a, e); }
Tensor pow(double base, const Tensor& x) {
  ENGRAM_CHECK(base > 0, "pow(base, x): base must be positive, got {}", base);
  return unary_op("rpow_scalar", UnaryOp::rpow_scalar, x, base);
}

// ---------------------------------------------------------------- selection
// y = cond ? a : b; da += dy * cond, db += dy * (1 - cond)
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  rk::check_same(a, b, "where");
  Shape s = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor y = empty(s, a.dtype(), a.device());
  ENGRAM_KERNEL(a.device(), where)(raw::expand(cond, s), raw::expand(a, s), raw::expand(b, s), y);
  record1("where", {cond, a, b}, y, [cond, a, s](const Tensor& dy) {
    Tensor z = zeros({}, dy.dtype(), dy.device());
    Tensor da = empty(s, dy.dtype(), dy.device()), db = empty(s, dy.dtype(), dy.device());
    ENGRAM_KERNEL(dy.device(), where)(raw::expand(cond, s), dy, raw::expand(z, s), da);
    ENGRAM_KERNEL(dy.device(), where)(raw::expand(cond, s), raw::expand(z, s), dy, db);
    return std::vector<Tensor>{Tensor(), da, db};
  });
  return y;
}
// y = mask ? value : x; dx += dy * (1 - mask)
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  Tensor v = full({}, value, x.dtype(), x.device());
  return where(mask, v, x);
}

// ---------------------------------------------------------------- operators
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, double s) { return add(a, s); }
Tensor operator+(double s, const Tensor& a) { return add(a, s); }
Tensor operator-(const Tensor& a, double s) { return add(a, -s); }
Tensor operator-(double s, const Tensor& a) { return add(neg(a), s); }
Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
Tensor operator/(const Tensor& a, double s) { return mul(a, 1.0 / s); }
Tensor operator/(double s, const Tensor& a) { return mul(reciprocal(a), s); }

}  // namespace engram
