// nn/optim.cpp — see optim.h for the update rules.
//
// The per-element loops (core/cpu/cpu_optim.cpp, cuda/cuda_optim.cu, reached through the kernel
// table so a parameter is updated on its own device) follow torch.optim 1.13's single-tensor code
// line by line, in the parameter's own precision (PyTorch casts Python scalars such as 1 - beta1
// to the tensor's dtype and computes each in-place op in it), so float64 runs agree with PyTorch
// to rounding.
#include "nn/optim.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "autograd/raw_ops.h"

namespace engram::nn {

const Tensor& ParamState::buffer(const std::string& name) const {
  for (auto& [n, t] : buffers)
    if (n == name) return t;
  ENGRAM_FAIL("optimizer state has no buffer '{}'", name);
}

// ---------------------------------------------------------------- Optimizer

ParamGroup& Optimizer::add_param_group(std::vector<Tensor> params) {
  size_t gi = groups_.size();
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& p = params[i];
    ENGRAM_CHECK(p.defined() && is_floating(p.dtype()),
                 "{}: parameter {} of group {} must be a defined f32/f64 tensor", type_name(), i, gi);
    for (const ParamGroup& g : groups_)
      for (const Tensor& q : g.params)
        ENGRAM_CHECK(!q.same(p), "{}: parameter {} of group {} (shape {}) is already in another group",
                     type_name(), i, gi, shape_str(p.shape()));
  }
  ParamGroup group = defaults_;
  group.params = std::move(params);
  std::vector<ParamState> states;
  for (const Tensor& p : group.params) {
    ParamState st;
    st.step = zeros({}, DType::i64);
    for (const char* name : buffer_names(group)) st.buffers.emplace_back(name, zeros_like(p));
    states.push_back(std::move(st));
  }
  groups_.push_back(std::move(group));
  states_.push_back(std::move(states));
  return groups_.back();
}

void Optimizer::set_lr(double lr) {
  for (ParamGroup& g : groups_) g.lr = lr;
}

void Optimizer::zero_grad() {
  for (const ParamGroup& g : groups_) engram::zero_grad(g.params);
}

// A group's settings may change after it was added (amsgrad turned on or off, momentum set):
// keep each parameter's buffers exactly those the update reads, new ones starting at zero.
void Optimizer::sync_state() const {
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
      ParamState& st = states_[gi][i];
      std::span<const char* const> names = buffer_names(groups_[gi]);
      bool same = st.buffers.size() == names.size();
      for (size_t k = 0; same && k < names.size(); ++k) same = st.buffers[k].first == names[k];
      if (same) continue;  // the usual case: nothing to do, nothing allocated
      NamedTensors synced;
      for (const char* name : names) {
        auto it = std::find_if(st.buffers.begin(), st.buffers.end(),
                               [&](auto& b) { return b.first == name; });
        synced.emplace_back(name, it != st.buffers.end() ? it->second : zeros_like(groups_[gi].params[i]));
      }
      st.buffers = std::move(synced);
    }
}

void Optimizer::step() {
  NoGradGuard no_grad;
  sync_state();
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& group = groups_[gi];
    for (size_t i = 0; i < group.params.size(); ++i) {
      const Tensor& p = group.params[i];
      if (!p.impl()->grad) continue;  // no gradient this iteration: PyTorch skips it too
      Tensor g = p.grad();
      ENGRAM_CHECK(g.device() == p.device(),
                   "{}: parameter {} of group {} is on {} but its gradient is on {}", type_name(),
                   i, gi, device_name(p.device()), device_name(g.device()));
      ENGRAM_CHECK(p.is_contiguous(), "{}: parameter {} of group {} (shape {}) must be contiguous",
                   type_name(), i, gi, shape_str(p.shape()));
      ENGRAM_CHECK(g.shape() == p.shape() && g.dtype() == p.dtype(),
                   "{}: gradient {} {} does not match parameter {} of group {}: {} {}", type_name(),
                   dtype_name(g.dtype()), shape_str(g.shape()), i, gi, dtype_name(p.dtype()),
                   shape_str(p.shape()));
      if (!g.is_contiguous()) g = raw::contiguous(g);
      ParamState& st = states_[gi][i];
      for (auto& [name, buf] : st.buffers)
        ENGRAM_CHECK(buf.shape() == p.shape() && buf.dtype() == p.dtype(),
                     "{}: state '{}' of parameter {} of group {} is {} {} but the parameter is "
                     "{} {} (was the module converted after the optimizer was built?)",
                     type_name(), name, i, gi, dtype_name(buf.dtype()), shape_str(buf.shape()),
                     dtype_name(p.dtype()), shape_str(p.shape()));
      st.step.data<int64_t>()[0] += 1;
      update(group, p, g, st);
      raw::mark_modified(p);  // a graph that saved p before this step can no longer backward
    }
  }
}

NamedTensors Optimizer::state_tensors(const std::string& prefix) const {
  sync_state();
  NamedTensors out;
  for (size_t gi = 0; gi < states_.size(); ++gi)
    for (size_t i = 0; i < states_[gi].size(); ++i) {
      std::string base = fmt::format("{}.{}.{}.", prefix, gi, i);
      out.emplace_back(base + "step", states_[gi][i].step);
      for (auto& [name, t] : states_[gi][i].buffers) out.emplace_back(base + name, t);
    }
  return out;
}

std::string Optimizer::hyperparams_json() const {
  nlohmann::ordered_json j;
  j["type"] = type_name();
  j["groups"] = nlohmann::json::array();
  for (const ParamGroup& g : groups_)
    j["groups"].push_back({{"num_params", g.params.size()}, {"lr", g.lr},
                           {"initial_lr", g.initial_lr}, {"weight_decay", g.weight_decay},
                           {"momentum", g.momentum}, {"dampening", g.dampening},
                           {"nesterov", g.nesterov}, {"beta1", g.beta1}, {"beta2", g.beta2},
                           {"eps", g.eps}, {"amsgrad", g.amsgrad}});
  return j.dump();  // doubles are printed with 17 digits, so they read back exactly
}

void Optimizer::load_hyperparams_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
    ENGRAM_CHECK(j.at("type").get<std::string>() == type_name(),
                 "{}: saved hyper-parameters belong to a {} optimizer", type_name(),
                 j.at("type").get<std::string>());
    const auto& groups = j.at("groups");
    ENGRAM_CHECK(groups.size() == groups_.size(),
                 "{}: saved hyper-parameters have {} parameter groups, this optimizer has {}",
                 type_name(), groups.size(), groups_.size());
    for (size_t gi = 0; gi < groups_.size(); ++gi) {
      const auto& s = groups[gi];
      ParamGroup& g = groups_[gi];
      ENGRAM_CHECK(s.at("num_params").get<size_t>() == g.params.size(),
                   "{}: saved group {} has {} parameters, this optimizer's has {}", type_name(), gi,
                   s.at("num_params").get<size_t>(), g.params.size());
      s.at("lr").get_to(g.lr);
      s.at("initial_lr").get_to(g.initial_lr);
      s.at("weight_decay").get_to(g.weight_decay);
      s.at("momentum").get_to(g.momentum);
      s.at("dampening").get_to(g.dampening);
      s.at("nesterov").get_to(g.nesterov);
      s.at("beta1").get_to(g.beta1);
      s.at("beta2").get_to(g.beta2);
      s.at("eps").get_to(g.eps);
      s.at("amsgrad").get_to(g.amsgrad);
    }
  } catch (const nlohmann::json::exception& e) {
    ENGRAM_FAIL("{}: malformed saved hyper-parameters: {}", type_name(), e.what());
  }
}

// ---------------------------------------------------------------- SGD

SGD::SGD(std::vector<Tensor> params, SGDOptions o)
    : Optimizer([&] {
        ParamGroup d;
        d.lr = o.lr;
        d.momentum = o.momentum;
        d.dampening = o.dampening;
        d.weight_decay = o.weight_decay;
        d.nesterov = o.nesterov;
        return d;
      }()) {
  ENGRAM_CHECK(o.lr >= 0 && o.momentum >= 0 && o.weight_decay >= 0,
               "SGD: lr {}, momentum {} and weight_decay {} must be >= 0", o.lr, o.momentum,
               o.weight_decay);
  ENGRAM_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
               "SGD: Nesterov momentum needs momentum > 0 and dampening = 0 (got {} and {})",
               o.momentum, o.dampening);
  add_param_group(std::move(params));
}

std::span<const char* const> SGD::buffer_names(const ParamGroup& group) const {
  static const char* const with_momentum[] = {"momentum_buffer"};
  if (group.momentum == 0) return {};
  return with_momentum;
}

void SGD::update(const ParamGroup& group, const Tensor& p, const Tensor& g, ParamState& st) {
  Tensor buf = group.momentum != 0 ? st.buffer("momentum_buffer") : Tensor();
  SgdStepArgs a{group.lr, group.momentum, group.dampening, group.weight_decay, group.nesterov,
                st.steps() == 1};
  ENGRAM_KERNEL(p.device(), sgd_step)(p, g, buf, a);  // core/cpu/cpu_optim.cpp, cuda/cuda_optim.cu
}

// ---------------------------------------------------------------- Adam, AdamW

static AdamOptions to_adam(const AdamWOptions& o) {
  return {o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, o.amsgrad};
}

Adam::Adam(std::vector<Tensor> params, AdamOptions o) : Adam(std::move(params), o, false) {}
AdamW::AdamW(std::vector<Tensor> params, AdamWOptions o) : Adam(std::move(params), to_adam(o), true) {}

Adam::Adam(std::vector<Tensor> params, AdamOptions o, bool decoupled)
    : Optimizer([&] {
        ParamGroup d;
        d.lr = o.lr;
        d.beta1 = o.beta1;
        d.beta2 = o.beta2;
        d.eps = o.eps;
        d.weight_decay = o.weight_decay;
        d.amsgrad = o.amsgrad;
        return d;
      }()),
      decoupled_(decoupled) {
  const char* name = decoupled ? "AdamW" : "Adam";
  ENGRAM_CHECK(o.lr >= 0 && o.eps >= 0 && o.weight_decay >= 0,
               "{}: lr {}, eps {} and weight_decay {} must be >= 0", name, o.lr, o.eps, o.weight_decay);
  ENGRAM_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1,
               "{}: betas must lie in [0, 1), got ({}, {})", name, o.beta1, o.beta2);
  add_param_group(std::move(params));
}

std::span<const char* const> Adam::buffer_names(const ParamGroup& group) const {
  static const char* const names[] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  return std::span(names).first(group.amsgrad ? 3 : 2);
}

void Adam::update(const ParamGroup& group, const Tensor& p, const Tensor& g, ParamState& st) {
  const Tensor& m = st.buffer("exp_avg");
  const Tensor& v = st.buffer("exp_avg_sq");
  Tensor vmax = group.amsgrad ? st.buffer("max_exp_avg_sq") : Tensor();
  // The scalars in double, as PyTorch's Python code computes them; `step` counts this step.
  const double step = double(st.steps());
  AdamStepArgs a{group.beta1, group.beta2, group.eps, group.weight_decay,
                 1 - group.lr * group.weight_decay,
                 -(group.lr / (1 - std::pow(group.beta1, step))),
                 std::sqrt(1 - std::pow(group.beta2, step)), decoupled_};
  ENGRAM_KERNEL(p.device(), adam_step)(p, g, m, v, vmax, a);  // core/cpu/cpu_optim.cpp, cuda/
}

// ---------------------------------------------------------------- clip_grad_norm

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  NoGradGuard no_grad;
  ENGRAM_CHECK(max_norm >= 0, "clip_grad_norm: max_norm must be >= 0, got {}", max_norm);
  double sum_sq = 0;
  for (const Tensor& p : params)
    if (p.impl()->grad) sum_sq += rk::sum_all(rk::unary(UnaryOp::square, p.grad())).item();
  double total = std::sqrt(sum_sq);
  double coef = max_norm / (total + 1e-6);
  if (coef < 1)  // (also when total is Inf/NaN: the gradients become NaN, as in PyTorch)
    for (const Tensor& p : params)
      if (p.impl()->grad) {
        Tensor g = p.grad();
        ENGRAM_KERNEL(g.device(), unary)(UnaryOp::mul_scalar, g, coef, 0.0, g);
      }
  return total;
}

// ---------------------------------------------------------------- DynamicLossScaler

DynamicLossScaler::DynamicLossScaler(LossScalerOptions o)
    : opt_(o),
      scale_(full({}, o.init_scale, DType::f64)),
      good_steps_(zeros({}, DType::i64)),
      skipped_(zeros({}, DType::i64)) {
  ENGRAM_CHECK(o.init_scale > 0 && o.growth_factor > 1 && o.backoff_factor > 0 &&
                   o.backoff_factor < 1 && o.growth_interval > 0,
               "DynamicLossScaler: need init_scale > 0, growth_factor > 1, 0 < backoff_factor < 1 "
               "and growth_interval > 0 (got {}, {}, {}, {})",
               o.init_scale, o.growth_factor, o.backoff_factor, o.growth_interval);
}

Tensor DynamicLossScaler::scale_loss(const Tensor& loss) const { return mul(loss, scale()); }

bool DynamicLossScaler::unscale(Optimizer& opt) {
  if (unscaled_) return found_inf_;
  NoGradGuard no_grad;
  const double inv_scale = 1.0 / scale();
  bool found = false;
  for (const ParamGroup& group : opt.param_groups())
    for (const Tensor& p : group.params) {
      if (!p.impl()->grad) continue;
      Tensor g = p.grad();
      if (!g.is_contiguous()) {  // the in-place kernel below wants a plain buffer
        g = raw::contiguous(g);
        Tensor(p).set_grad(g);
      }
      ENGRAM_KERNEL(g.device(), unary)(UnaryOp::mul_scalar, g, inv_scale, 0.0, g);
      // g * 0 is 0 for every finite element and NaN for Inf/NaN, so its sum is NaN exactly when
      // some element is not finite (a sum of squares could overflow on large finite values).
      double probe = rk::sum_all(rk::unary(UnaryOp::mul_scalar, g, 0.0)).item();
      if (std::isnan(probe)) found = true;
    }
  unscaled_ = true;
  found_inf_ = found;
  return found;
}

bool DynamicLossScaler::step(Optimizer& opt) {
  if (unscale(opt)) return false;
  opt.step();
  return true;
}

void DynamicLossScaler::update() {
  ENGRAM_CHECK(unscaled_, "DynamicLossScaler::update: no step() or unscale() ran since the last "
               "update, so there is no Inf/NaN check to act on");
  double& scale = scale_.data<double>()[0];
  int64_t& good = good_steps_.data<int64_t>()[0];
  if (found_inf_) {
    scale *= opt_.backoff_factor;
    good = 0;
    skipped_.data<int64_t>()[0] += 1;
  } else if (++good >= opt_.growth_interval) {
    scale *= opt_.growth_factor;
    good = 0;
  }
  unscaled_ = found_inf_ = false;
}

NamedTensors DynamicLossScaler::state_tensors(const std::string& prefix) const {
  return {{prefix + ".scale", scale_},
          {prefix + ".good_steps", good_steps_},
          {prefix + ".skipped_steps", skipped_}};
}

}  // namespace engram::nn
