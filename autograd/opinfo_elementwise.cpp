// autograd/opinfo_elementwise.cpp — registry entries for pointwise ops.
//
// Unary ops get three shapes (a matrix, a single element, a 3-D tensor with a size-1 dim) drawn
// from a domain where the op is smooth; binary ops add broadcasting cases.
#include "autograd/ops.h"
#include "autograd/registry.h"

namespace engram {

using json = nlohmann::json;
using Inputs = std::vector<Tensor>;

static void unary_entry(std::vector<OpInfo>& r, const std::string& name,
                        std::function<Tensor(const Tensor&, const json&)> f, double lo, double hi,
                        json params = json::object()) {
  OpInfo op;
  op.name = name;
  op.fn = [f](const Inputs& in, const json& p) { return f(in[0], p); };
  op.samples = [lo, hi, params](Generator& g) {
    return std::vector<OpSample>{
        sample("[3, 4]", {runif(g, {3, 4}, lo, hi)}, params),
        sample("[1]", {runif(g, {1}, lo, hi)}, params),
        sample("[2, 1, 3]", {runif(g, {2, 1, 3}, lo, hi)}, params),
    };
  };
  r.push_back(op);
}

static void binary_entry(std::vector<OpInfo>& r, const std::string& name,
                         std::function<Tensor(const Tensor&, const Tensor&)> f, double lo, double hi) {
  OpInfo op;
  op.name = name;
  op.fn = [f](const Inputs& in, const json&) { return f(in[0], in[1]); };
  op.samples = [lo, hi](Generator& g) {
    return std::vector<OpSample>{
        sample("[3, 4] x [3, 4]", {runif(g, {3, 4}, lo, hi), runif(g, {3, 4}, lo, hi)}),
        sample("broadcast [3, 1] x [4]", {runif(g, {3, 1}, lo, hi), runif(g, {4}, lo, hi)}),
        sample("broadcast [1] x [2, 3]", {runif(g, {1}, lo, hi), runif(g, {2, 3}, lo, hi)}),
        sample("scalar [] x [2, 2]", {runif(g, {}, lo, hi), runif(g, {2, 2}, lo, hi)}),
    };
  };
  r.push_back(op);
}

// maximum/minimum also get a sample where b equals a at every other element. At a tie the
// central difference is the mean of the one-sided derivatives, 1/2 for each input, which is
// PyTorch's rule too, so the gradcheck and the golden both hold the split.
static void add_tie_sample(OpInfo& op) {
  op.samples = [base = op.samples](Generator& g) {
    std::vector<OpSample> s = base(g);
    std::vector<double> a = runif(g, {3, 4}, -2, 2).to_vector<double>();
    std::vector<double> b = runif(g, {3, 4}, -2, 2).to_vector<double>();
    for (size_t i = 0; i < a.size(); i += 2) b[i] = a[i];
    s.push_back(sample("ties at every other element of [3, 4]",
                       {from_vector(a, {3, 4}, DType::f64), from_vector(b, {3, 4}, DType::f64)}));
    return s;
  };
}

void register_elementwise_ops(std::vector<OpInfo>& r) {
  binary_entry(r, "add", [](auto& a, auto& b) { return add(a, b); }, -2, 2);
  binary_entry(r, "sub", [](auto& a, auto& b) { return sub(a, b); }, -2, 2);
  binary_entry(r, "mul", [](auto& a, auto& b) { return mul(a, b); }, -2, 2);
  binary_entry(r, "div", [](auto& a, auto& b) { return div(a, b); }, 0.5, 2);
  binary_entry(r, "pow", [](auto& a, auto& b) { return pow(a, b); }, 0.5, 2);
  binary_entry(r, "maximum", [](auto& a, auto& b) { return maximum(a, b); }, -2, 2);
  add_tie_sample(r.back());
  binary_entry(r, "minimum", [](auto& a, auto& b) { return minimum(a, b); }, -2, 2);
  add_tie_sample(r.back());

  unary_entry(r, "neg", [](auto& x, auto&) { return neg(x); }, -2, 2);
  unary_entry(r, "exp", [](auto& x, auto&) { return exp(x); }, -2, 2);
  unary_entry(r, "log", [](auto& x, auto&) { return log(x); }, 0.2, 3);
  unary_entry(r, "sqrt", [](auto& x, auto&) { return sqrt(x); }, 0.2, 3);
  unary_entry(r, "rsqrt", [](auto& x, auto&) { return rsqrt(x); }, 0.2, 3);
  unary_entry(r, "abs", [](auto& x, auto&) { return abs(x); }, -2, 2);
  unary_entry(r, "sin", [](auto& x, auto&) { return sin(x); }, -3, 3);
  unary_entry(r, "cos", [](auto& x, auto&) { return cos(x); }, -3, 3);
  unary_entry(r, "tanh", [](auto& x, auto&) { return tanh(x); }, -2, 2);
  unary_entry(r, "sigmoid", [](auto& x, auto&) { return sigmoid(x); }, -3, 3);
  unary_entry(r, "relu", [](auto& x, auto&) { return relu(x); }, -2, 2);
  unary_entry(r, "leaky_relu", [](auto& x, auto& p) { return leaky_relu(x, p["slope"]); }, -2, 2,
              {{"slope", 0.1}});
  unary_entry(r, "gelu", [](auto& x, auto&) { return gelu(x, false); }, -3, 3);
  unary_entry(r, "gelu_tanh", [](auto& x, auto&) { return gelu(x, true); }, -3, 3);
  unary_entry(r, "silu", [](auto& x, auto&) { return silu(x); }, -3, 3);
  unary_entry(r, "softplus",
              [](auto& x, auto& p) { return softplus(x, p["beta"], p["threshold"]); }, -3, 3,
              {{"beta", 2.0}, {"threshold", 4.0}});
  unary_entry(r, "square", [](auto& x, auto&) { return square(x); }, -2, 2);
  unary_entry(r, "reciprocal", [](auto& x, auto&) { return reciprocal(x); }, 0.5, 2);
  unary_entry(r, "clamp", [](auto& x, auto& p) { return clamp(x, p["min"], p["max"]); }, -2, 2,
              {{"min", -0.5}, {"max", 0.7}});
  unary_entry(r, "add_scalar", [](auto& x, auto& p) { return add(x, double(p["s"])); }, -2, 2,
              {{"s", 1.5}});
  unary_entry(r, "mul_scalar", [](auto& x, auto& p) { return mul(x, double(p["s"])); }, -2, 2,
              {{"s", -2.5}});
  unary_entry(r, "pow_scalar", [](auto& x, auto& p) { return pow(x, double(p["e"])); }, 0.3, 2,
              {{"e", 2.5}});
  unary_entry(r, "rpow_scalar", [](auto& x, auto& p) { return pow(double(p["base"]), x); }, -2, 2,
              {{"base", 1.7}});

  OpInfo wh;
  wh.name = "where";
  wh.fn = [](const Inputs& in, const json&) { return where(in[0], in[1], in[2]); };
  wh.samples = [](Generator& g) {
    auto mask = [&](const Shape& s) { return gt(rn(g, s), zeros({}, DType::f64)); };
    return std::vector<OpSample>{
        sample("[3, 4]", {mask({3, 4}), rn(g, {3, 4}), rn(g, {3, 4})}),
        sample("broadcast cond [3, 1], a [4], b [3, 4]", {mask({3, 1}), rn(g, {4}), rn(g, {3, 4})}),
    };
  };
  r.push_back(wh);
  // the condition is a mask, not a differentiable input
  r.back().samples = [f = wh.samples](Generator& g) {
    auto ss = f(g);
    for (auto& s : ss) s.differentiable[0] = false;
    return ss;
  };

  OpInfo mf;
  mf.name = "masked_fill";
  mf.fn = [](const Inputs& in, const json& p) { return masked_fill(in[0], in[1], p["value"]); };
  mf.samples = [](Generator& g) {
    auto s1 = sample("[3, 4], mask [3, 4]", {rn(g, {3, 4}), gt(rn(g, {3, 4}), zeros({}, DType::f64))},
                     {{"value", -3.0}});
    auto s2 = sample("[2, 3], mask broadcast [3]", {rn(g, {2, 3}), gt(rn(g, {3}), zeros({}, DType::f64))},
                     {{"value", 0.5}});
    s1.differentiable[1] = s2.differentiable[1] = false;
    return std::vector<OpSample>{s1, s2};
  };
  r.push_back(mf);
}

}  // namespace engram
