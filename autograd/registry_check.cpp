// autograd/registry_check.cpp — see registry_check.h.
#include "autograd/registry_check.h"

#include <cmath>
#include <limits>

#include "autograd/ops.h"
#include "autograd/tape.h"

namespace engram {

GradcheckResult check_gradient(const OpInfo& op, const OpSample& s) {
  GradcheckOptions opt;
  opt.atol = op.grad_atol;
  opt.rtol = op.grad_rtol;
  opt.eps = op.grad_eps;
  auto fn = [&](const std::vector<Tensor>& in) { return op.fn(in, s.params); };
  try {
    return gradcheck(fn, s.inputs, s.differentiable, opt);
  } catch (const std::exception& e) {
    tape().clear();
    GradcheckResult r;
    r.ok = false;
    r.message = e.what();
    return r;
  }
}

namespace {

// What one run of the op produced: its output and the gradient of every input (empty where the
// input is not differentiable or got no gradient).
struct Run {
  std::vector<double> output;
  std::vector<std::vector<double>> grads;
};

// Runs op on `inputs` (each used as given: a view stays a view) as fresh leaves, and
// backpropagates sum(w * y). `w` is drawn on the first call and reused, so runs compare alike.
Run run_op(const OpInfo& op, const OpSample& s, const std::vector<Tensor>& inputs, Tensor& w) {
  std::vector<Tensor> in;
  for (size_t i = 0; i < inputs.size(); ++i) {
    // A new handle on the same storage, so requires_grad and .grad are this run's alone.
    Tensor t = raw::as_strided(inputs[i], inputs[i].shape(), inputs[i].strides(), inputs[i].offset());
    if (s.differentiable[i]) t.requires_grad_(true);
    in.push_back(t);
  }
  tape().clear();
  Run r;
  Tensor y = op.fn(in, s.params);
  r.output = y.to_vector<double>();
  if (y.requires_grad()) {
    if (!w.defined()) {
      Generator g(99);
      w = randn(y.shape(), DType::f64, &g);
    }
    backward(y, raw::to_device(raw::to_dtype(w, y.dtype()), y.device()));
  }
  tape().clear();
  for (size_t i = 0; i < in.size(); ++i)
    r.grads.push_back(s.differentiable[i] && in[i].grad().defined() ? in[i].grad().to_vector<double>()
                                                                      : std::vector<double>{});
  return r;
}

struct Variant {
  std::string name;
  Tensor contiguous;  // the values, contiguous (the reference run uses these)
  Tensor strided;     // the same values through a non-contiguous view
};

// Values that a kernel reading outside the view would pick up instead of the real ones.
Tensor poisoned(const Shape& shape, DType dtype) {
  if (is_floating(dtype)) return full(shape, std::numeric_limits<double>::quiet_NaN(), dtype);
  return full(shape, double(int64_t(1) << 40), dtype);
}

std::vector<Variant> variants_of(const Tensor& x) {
  std::vector<Variant> v;
  int64_t d = x.dim();
  if (d == 0 || x.numel() == 0) return v;
  const Shape& sh = x.shape();
  if (d >= 2 && sh[d - 2] > 1 && sh[d - 1] > 1) {
    Tensor base = raw::contiguous(raw::transpose(x, d - 2, d - 1));
    v.push_back({"transposed", x, raw::transpose(base, d - 2, d - 1)});
  }
  {
    Shape padded = sh;
    padded[d - 1] *= 2;
    Tensor base = poisoned(padded, x.dtype());
    Shape strides = base.strides();
    strides[d - 1] = 2;
    Tensor view = raw::as_strided(base, sh, strides, 0);
    raw::copy_(view, x);
    v.push_back({"stepped", x, view});
  }
  if (sh[0] > 1) {
    Tensor row = raw::clone(raw::narrow(x, 0, 0, 1));
    v.push_back({"expanded", raw::clone(raw::expand(row, sh)), raw::expand(row, sh)});
  }
  return v;
}

// First element where |a - b| > 1e-10 (1 + |b|), NaN counting as a difference; -1 if none.
int64_t first_mismatch(const std::vector<double>& a, const std::vector<double>& b, double& worst) {
  if (a.size() != b.size()) {
    worst = std::numeric_limits<double>::infinity();
    return 0;
  }
  for (size_t k = 0; k < a.size(); ++k) {
    if (std::isnan(a[k]) && std::isnan(b[k])) continue;  // NaN where the reference has NaN too
    double err = std::abs(a[k] - b[k]);
    if (!(err <= worst)) worst = std::isnan(err) ? std::numeric_limits<double>::infinity() : err;
    if (!(err <= 1e-10 * (1 + std::abs(b[k])))) return (int64_t)k;
  }
  return -1;
}

}  // namespace

StridedResult check_strided(const OpInfo& op, const OpSample& s) {
  StridedResult res;
  for (size_t i = 0; i < s.inputs.size() && res.ok; ++i) {
    if (!s.inputs[i].defined()) continue;
    for (const Variant& var : variants_of(s.inputs[i])) {
      std::vector<Tensor> ref_in = s.inputs, view_in = s.inputs;
      ref_in[i] = var.contiguous;
      view_in[i] = var.strided;
      ++res.variants;
      std::string where = fmt::format("input {} {} {}", i, shape_str(s.inputs[i].shape()), var.name);
      Tensor w;
      Run ref, got;
      try {
        ref = run_op(op, s, ref_in, w);
      } catch (const std::exception& e) {
        tape().clear();
        res.ok = false;
        res.message = fmt::format("{}: the contiguous reference run failed: {}", where, e.what());
        break;
      }
      try {
        got = run_op(op, s, view_in, w);
      } catch (const std::exception& e) {
        tape().clear();
        res.ok = false;
        res.message = fmt::format("{}: {}", where, e.what());
        break;
      }
      auto compare = [&](const std::vector<double>& g, const std::vector<double>& r,
                         const std::string& what) {
        int64_t k = first_mismatch(g, r, res.max_abs_err);
        if (k < 0 || !res.ok) return;
        res.ok = false;
        res.message = g.size() != r.size()
                          ? fmt::format("{}: {} has {} elements, contiguous run {}", where, what,
                                        g.size(), r.size())
                          : fmt::format("{}: {} element {} is {:.10g}, contiguous run {:.10g}", where,
                                        what, k, g[k], r[k]);
      };
      compare(got.output, ref.output, "output");
      for (size_t j = 0; j < ref.grads.size(); ++j)
        compare(got.grads[j], ref.grads[j], fmt::format("gradient of input {}", j));
      if (!res.ok) break;
    }
  }
  return res;
}

// ---------------------------------------------------------------- device against CPU

namespace {
// ||a - b|| / ||b|| (0 when both are zero; NaN on one side only counts as infinite), and the
// element with the largest |a - b|.
double rel_norm_err(const std::vector<double>& a, const std::vector<double>& b, int64_t& worst_k) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double num = 0, den = 0, worst = -1;
  worst_k = -1;
  for (size_t k = 0; k < a.size(); ++k) {
    if (std::isnan(a[k]) && std::isnan(b[k])) continue;
    double d = a[k] - b[k];
    if (std::isnan(d)) {
      worst_k = (int64_t)k;
      return std::numeric_limits<double>::infinity();
    }
    num += d * d;
    den += b[k] * b[k];
    if (std::abs(d) > worst) worst = std::abs(d), worst_k = (int64_t)k;
  }
  if (num == 0) return 0;
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
}
}  // namespace

DeviceResult check_device(const OpInfo& op, const OpSample& s, Device dev, DType dtype,
                          double rtol) {
  DeviceResult res;
  std::vector<Tensor> cpu_in, dev_in;
  for (const Tensor& t : s.inputs) {
    if (!t.defined()) {
      cpu_in.push_back(t), dev_in.push_back(t);
      continue;
    }
    Tensor c = is_floating(t.dtype()) ? raw::contiguous(raw::to_dtype(t, dtype)) : t;
    cpu_in.push_back(c);
    dev_in.push_back(raw::to_device(c, dev));
  }
  Tensor w;
  Run ref, got;
  try {
    ref = run_op(op, s, cpu_in, w);
  } catch (const std::exception& e) {
    tape().clear();
    res.ok = false;
    res.message = fmt::format("the CPU reference run failed: {}", e.what());
    return res;
  }
  try {
    got = run_op(op, s, dev_in, w);
  } catch (const std::exception& e) {
    tape().clear();
    res.ok = false;
    res.message = fmt::format("on {}: {}", device_name(dev), e.what());
    return res;
  }
  auto compare = [&](const std::vector<double>& g, const std::vector<double>& r,
                     const std::string& what) {
    int64_t k = -1;
    double err = rel_norm_err(g, r, k);
    res.worst_rel = std::max(res.worst_rel, err);
    if (err <= rtol || !res.ok) return;
    res.ok = false;
    res.message = g.size() != r.size()
                      ? fmt::format("{} has {} elements on {}, {} on the CPU", what, g.size(),
                                    device_name(dev), r.size())
                      : fmt::format("{}: relative error {:.3g} > {:.1g}; worst element {}: {:.10g} "
                                    "on {}, {:.10g} on the CPU",
                                    what, err, rtol, k, g[k], device_name(dev), r[k]);
  };
  compare(got.output, ref.output, "output");
  for (size_t j = 0; j < ref.grads.size(); ++j)
    compare(got.grads[j], ref.grads[j], fmt::format("gradient of input {}", j));
  return res;
}

}  // namespace engram
