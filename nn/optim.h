// nn/optim.h — optimizers (SGD, Adam, AdamW), gradient clipping and dynamic loss scaling, with
// torch.optim 1.13's exact update rules (the single-tensor, non-foreach code paths).
//
// For a parameter p with gradient g, learning rate lr and weight decay wd, one step is:
//
//   SGD:    g <- g + wd p
//           b <- g                               on the first step (no dampening applied)
//           b <- momentum b + (1 - dampening) g  afterwards          (only when momentum != 0)
//           d <- g + momentum b  (Nesterov)  or  d <- b   (otherwise; d <- g without momentum)
//           p <- p - lr d
//   Adam:   t <- t + 1;  g <- g + wd p                       (L2 penalty folded into the gradient)
//           m <- beta1 m + (1 - beta1) g
//           v <- beta2 v + (1 - beta2) g^2
//           vmax <- max(vmax, v), used in place of v        (amsgrad only)
//           p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//   AdamW:  as Adam, but the decay is decoupled: p <- p (1 - lr wd) first, and g is left alone.
//
// Every parameter of a group shares the group's hyper-parameters (PyTorch's param_groups), so
// e.g. biases can go in a group without weight decay. State (momentum buffers, moments, step
// counts) is allocated when the optimizer is built, so step() allocates nothing; parameters with
// no gradient are skipped, their step count unchanged. state_tensors() names every state tensor
// ("optim.<group>.<param>.exp_avg", ".step", ...) for checkpoints (nn/checkpoint.h).
//
// The update is one fused loop per parameter over contiguous CPU data; a CUDA version would add a
// fused optimizer kernel to core's table, and until then a non-CPU parameter is refused by name.
//
//   clip_grad_norm: total = ||(g_1, ..., g_n)||_2 over all gradients; when total > max_norm every
//     gradient is scaled by max_norm / (total + 1e-6). Returns total (before clipping).
//   DynamicLossScaler (PyTorch's GradScaler): backward runs on loss * S so small half-precision
//     gradients do not flush to zero; the gradients are divided by S before the step. A step whose
//     gradients hold Inf/NaN is skipped and S halves; after growth_interval good steps S doubles.
#pragma once
#include <span>
#include <string>
#include <vector>

#include "nn/module.h"

namespace engram::nn {

// One parameter group: its tensors and its hyper-parameters. Only the fields of the optimizer in
// use are read (momentum/dampening/nesterov by SGD, betas/eps/amsgrad by Adam and AdamW).
struct ParamGroup {
  std::vector<Tensor> params;
  double lr = 0;
  double initial_lr = 0;  // the base lr schedules scale; 0 = not yet set (the first
                          // LRSchedule::apply takes the group's lr, like PyTorch's schedulers)
  double weight_decay = 0;
  double momentum = 0, dampening = 0;  // SGD
  bool nesterov = false;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // Adam, AdamW
  bool amsgrad = false;
};

struct SGDOptions {
  double lr = 0.01, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
};
struct AdamOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool amsgrad = false;
};
struct AdamWOptions {  // PyTorch's AdamW defaults to weight_decay = 1e-2
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2;
  bool amsgrad = false;
};

// Per-parameter state: the step count (an i64 scalar, so it checkpoints like any tensor) and the
// named buffers of the optimizer ("momentum_buffer", or "exp_avg", "exp_avg_sq", "max_exp_avg_sq").
struct ParamState {
  Tensor step;
  NamedTensors buffers;
  const Tensor& buffer(const std::string& name) const;
  int64_t steps() const { return step.data<int64_t>()[0]; }
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual std::string type_name() const = 0;  // "SGD", "Adam", "AdamW"

  // Updates every parameter that has a gradient, in place, under NoGradGuard.
  void step();
  // Drops every parameter's gradient (set to none, like PyTorch 2's default).
  void zero_grad();

  // Adds a group with the optimizer's defaults and returns it so fields can be changed, e.g.
  // `opt.add_param_group(biases).weight_decay = 0;`.
  ParamGroup& add_param_group(std::vector<Tensor> params);
  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  const ParamState& state(size_t group, size_t index) const {
    sync_state();
    return states_.at(group).at(index);
  }
  void set_lr(double lr);  // every group

  // Every state tensor under "<prefix>.<group>.<index>.<name>" (step counts as "...step"). These
  // are the live tensors: a checkpoint loader copies saved values into them.
  NamedTensors state_tensors(const std::string& prefix = "optim") const;
  // The type and each group's hyper-parameters as JSON text (saved in checkpoint metadata), and
  // their restoration; the JSON must describe the same optimizer type and number of groups.
  std::string hyperparams_json() const;
  void load_hyperparams_json(const std::string& json);

 protected:
  explicit Optimizer(ParamGroup defaults) : defaults_(std::move(defaults)) {}
  // Names of the per-parameter buffers the optimizer needs for a group (allocated as zeros).
  virtual std::span<const char* const> buffer_names(const ParamGroup& group) const = 0;
  // One step for one parameter: p, its gradient g (contiguous, same dtype), and its state whose
  // step count has already been incremented.
  virtual void update(const ParamGroup& group, const Tensor& p, const Tensor& g, ParamState& st) = 0;

 private:
  void sync_state() const;
  ParamGroup defaults_;
  std::vector<ParamGroup> groups_;
  // [group][param]; mutable so that state_tensors() can first bring the buffers in line with the
  // groups' current settings (sync_state), which changes no value a caller could observe.
  mutable std::vector<std::vector<ParamState>> states_;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, SGDOptions opt = {});
  std::string type_name() const override { return "SGD"; }

 protected:
  std::span<const char* const> buffer_names(const ParamGroup& group) const override;
  void update(const ParamGroup& group, const Tensor& p, const Tensor& g, ParamState& st) override;
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, AdamOptions opt = {});
  std::string type_name() const override { return decoupled_ ? "AdamW" : "Adam"; }

 protected:
  Adam(std::vector<Tensor> params, AdamOptions opt, bool decoupled_weight_decay);
  std::span<const char* const> buffer_names(const ParamGroup& group) const override;
  void update(const ParamGroup& group, const Tensor& p, const Tensor& g, ParamState& st) override;

 private:
  bool decoupled_;
};

class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, AdamWOptions opt = {});
};

// Scales gradients so their total 2-norm is at most max_norm; returns the norm before clipping.
// Parameters without a gradient are skipped.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

struct LossScalerOptions {
  double init_scale = 65536.0, growth_factor = 2.0, backoff_factor = 0.5;
  int64_t growth_interval = 2000;  // good steps in a row before the scale grows
};

// Usage, once per iteration:
//   backward(scaler.scale_loss(loss));
//   scaler.unscale(opt);  clip_grad_norm(...);   // optional: clip the true gradients
//   scaler.step(opt);     // skipped when a gradient is Inf/NaN
//   scaler.update();      // back off or grow the scale
class DynamicLossScaler {
 public:
  explicit DynamicLossScaler(LossScalerOptions opt = {});
  Tensor scale_loss(const Tensor& loss) const;  // loss * scale (recorded, so backward sees it)
  // Divides the optimizer's gradients by the scale (once per iteration) and returns whether any
  // gradient holds Inf/NaN.
  bool unscale(Optimizer& opt);
  // Unscales if not done yet, then runs opt.step() unless Inf/NaN was found; true when it stepped.
  bool step(Optimizer& opt);
  // Halves the scale after a skipped step; doubles it after growth_interval good steps.
  void update();

  double scale() const { return scale_.data<double>()[0]; }
  int64_t good_steps() const { return good_steps_.data<int64_t>()[0]; }
  int64_t skipped_steps() const { return skipped_.data<int64_t>()[0]; }
  // "<prefix>.scale" (f64 scalar), "<prefix>.good_steps", "<prefix>.skipped_steps" (i64 scalars):
  // the live tensors, for checkpoints.
  NamedTensors state_tensors(const std::string& prefix = "scaler") const;

 private:
  LossScalerOptions opt_;
  Tensor scale_, good_steps_, skipped_;
  bool unscaled_ = false, found_inf_ = false;
};

}  // namespace engram::nn
