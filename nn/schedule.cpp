// nn/schedule.cpp — see schedule.h for the formulas.
#include "nn/schedule.h"

#include <cmath>

namespace engram::nn {

LRSchedule LRSchedule::constant() { return {}; }

LRSchedule LRSchedule::step(int64_t step_size, double gamma) {
  ENGRAM_CHECK(step_size > 0, "LRSchedule::step: step_size must be > 0, got {}", step_size);
  ENGRAM_CHECK(gamma > 0, "LRSchedule::step: gamma must be > 0, got {}", gamma);
  LRSchedule s;
  s.kind = ScheduleKind::step;
  s.step_size = step_size;
  s.gamma = gamma;
  return s;
}

LRSchedule LRSchedule::warmup_cosine(int64_t warmup_steps, int64_t total_steps, double min_lr) {
  ENGRAM_CHECK(warmup_steps >= 0 && total_steps > 0 && total_steps >= warmup_steps,
               "LRSchedule::warmup_cosine: need 0 <= warmup_steps <= total_steps and "
               "total_steps > 0, got warmup_steps={} total_steps={}",
               warmup_steps, total_steps);
  ENGRAM_CHECK(min_lr >= 0, "LRSchedule::warmup_cosine: min_lr must be >= 0, got {}", min_lr);
  LRSchedule s;
  s.kind = ScheduleKind::warmup_cosine;
  s.warmup_steps = warmup_steps;
  s.total_steps = total_steps;
  s.min_lr = min_lr;
  return s;
}

double LRSchedule::lr_at(int64_t step, double base) const {
  ENGRAM_CHECK(step >= 0, "LRSchedule::lr_at: step must be >= 0, got {}", step);
  switch (kind) {
    case ScheduleKind::constant: return base;
    case ScheduleKind::step: return base * std::pow(gamma, double(step / step_size));
    case ScheduleKind::warmup_cosine: {
      if (step < warmup_steps) return base * double(step) / double(warmup_steps);
      if (step >= total_steps) return min_lr;
      double progress = double(step - warmup_steps) / double(total_steps - warmup_steps);
      return min_lr + (base - min_lr) * 0.5 * (1.0 + std::cos(M_PI * progress));
    }
  }
  return base;
}

void LRSchedule::apply(Optimizer& opt, int64_t step) const {
  for (ParamGroup& g : opt.param_groups()) {
    if (g.initial_lr == 0) g.initial_lr = g.lr;
    g.lr = lr_at(step, g.initial_lr);
  }
}

std::string LRSchedule::str() const {
  switch (kind) {
    case ScheduleKind::constant: return "constant";
    case ScheduleKind::step: return fmt::format("step(step_size={}, gamma={})", step_size, gamma);
    case ScheduleKind::warmup_cosine:
      return fmt::format("warmup_cosine(warmup={}, total={}, min_lr={})", warmup_steps,
                         total_steps, min_lr);
  }
  return "?";
}

}  // namespace engram::nn
