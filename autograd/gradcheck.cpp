// autograd/gradcheck.cpp — see gradcheck.h.
//
// Inputs are perturbed in place (their storage is written and restored), so the same routine
// checks a module's parameters: pass the parameter tensors as inputs and let fn ignore its
// argument list and run the module.
#include "autograd/gradcheck.h"

#include <cmath>

#include "autograd/ops.h"

namespace engram {

namespace {

double* f64_data(const Tensor& t) {
  ENGRAM_CHECK(t.dtype() == DType::f64 && t.is_contiguous() && t.device() == Device::cpu,
               "gradcheck: differentiable inputs must be contiguous f64 CPU tensors, got {} {}",
               dtype_name(t.dtype()), shape_str(t.shape()));
  return t.data<double>();
}

// L(x) = sum(w * fn(x)) evaluated without recording.
double projected(const TensorFn& fn, const std::vector<Tensor>& inputs, const Tensor& w) {
  NoGradGuard ng;
  Tensor y = fn(inputs);
  std::vector<double> yv = y.to_vector<double>(), wv = w.to_vector<double>();
  double s = 0;
  for (size_t i = 0; i < yv.size(); ++i) s += yv[i] * wv[i];
  return s;
}

}  // namespace

GradcheckResult gradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs_in,
                          const std::vector<bool>& differentiable, const GradcheckOptions& opt) {
  ENGRAM_CHECK(differentiable.size() == inputs_in.size(), "gradcheck: {} flags for {} inputs",
               differentiable.size(), inputs_in.size());
  std::vector<Tensor> inputs = inputs_in;
  std::vector<bool> saved_flags;
  int64_t n_in = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    saved_flags.push_back(inputs[i].defined() && inputs[i].requires_grad());
    if (!differentiable[i]) continue;
    f64_data(inputs[i]);
    inputs[i].requires_grad_(true);
    n_in += inputs[i].numel();
  }
  auto restore_flags = [&] {
    for (size_t i = 0; i < inputs.size(); ++i)
      if (differentiable[i]) {
        inputs[i].impl()->grad.reset();
        inputs[i].requires_grad_(saved_flags[i]);
      }
  };

  GradcheckResult res;
  Tensor y;
  {
    tape().clear();
    y = fn(inputs);
  }
  if (!y.requires_grad()) {
    restore_flags();
    tape().clear();
    res.ok = false;
    res.message = "output does not require grad: the op recorded no backward";
    return res;
  }
  int64_t n_out = y.numel();
  res.full_jacobian = n_out * n_in <= opt.full_jacobian_max;
  Generator gen(opt.seed);
  // Projections: one-hot rows of the Jacobian, or a single random direction.
  std::vector<Tensor> directions;
  if (res.full_jacobian) {
    for (int64_t j = 0; j < n_out; ++j) {
      std::vector<double> e(n_out, 0.0);
      e[j] = 1.0;
      directions.push_back(from_vector(e, y.shape(), DType::f64));
    }
  } else {
    directions.push_back(randn(y.shape(), DType::f64, &gen));
  }

  for (size_t di = 0; di < directions.size() && res.ok; ++di) {
    const Tensor& w = directions[di];
    for (size_t i = 0; i < inputs.size(); ++i)
      if (differentiable[i]) inputs[i].impl()->grad.reset();
    backward(y, w, /*retain_graph=*/true);
    for (size_t i = 0; i < inputs.size() && res.ok; ++i) {
      if (!differentiable[i]) continue;
      Tensor g = inputs[i].grad();
      std::vector<double> analytic =
          g.defined() ? g.to_vector<double>() : std::vector<double>(inputs[i].numel(), 0.0);
      double* x = f64_data(inputs[i]);
      for (int64_t k = 0; k < inputs[i].numel(); ++k) {
        double orig = x[k];
        x[k] = orig + opt.eps;
        double lp = projected(fn, inputs, w);
        x[k] = orig - opt.eps;
        double lm = projected(fn, inputs, w);
        x[k] = orig;
        double numeric = (lp - lm) / (2 * opt.eps);
        double err = std::abs(analytic[k] - numeric);
        // NaN-safe running maxima (std::max(m, NaN) would keep m): a NaN error reports as inf
        double rel = err / std::max(std::abs(numeric), 1e-12);
        if (!(err <= res.max_abs_err)) res.max_abs_err = std::isnan(err) ? INFINITY : err;
        if (!(rel <= res.max_rel_err)) res.max_rel_err = std::isnan(rel) ? INFINITY : rel;
        if (!(err <= opt.atol + opt.rtol * std::abs(numeric))) {
          res.ok = false;
          res.message = fmt::format("input {} {} element {}{}: analytic {:.8g} vs numeric {:.8g}", i,
                                    shape_str(inputs[i].shape()), k,
                                    res.full_jacobian ? fmt::format(" (output {})", di) : "",
                                    analytic[k], numeric);
          break;
        }
      }
    }
  }
  tape().clear();
  restore_flags();
  return res;
}

}  // namespace engram
