// nn/schedule.h — learning-rate schedules: the lr as a function of the optimizer step.
//
// `step` counts optimizer steps already taken (0 for the first update), and base is a group's
// initial lr (ParamGroup::initial_lr):
//
//   constant:       lr(s) = base
//   step:           lr(s) = base * gamma^floor(s / step_size)            (PyTorch's StepLR)
//   warmup_cosine:  lr(s) = base * s / W                                   for s < W
//                   lr(s) = min_lr + (base - min_lr) * (1 + cos(pi p)) / 2,
//                           p = (s - W) / (total - W)                      for W <= s < total
//                   lr(s) = min_lr                                         for s >= total
//     (linear warmup from 0, then a half cosine down to min_lr at `total` steps — the schedule of
//     Hugging Face's get_cosine_schedule_with_warmup, with a floor).
//
// A schedule holds no state: a resumed run asks for lr_at(step) with the restored step and gets
// the same lr as the run that never stopped. Typical loop:
//     for (int64_t s = 0; s < total; ++s) { sched.apply(opt, s); ...backward...; opt.step(); }
#pragma once
#include <cstdint>
#include <string>

#include "nn/optim.h"

namespace engram::nn {

enum class ScheduleKind { constant, step, warmup_cosine };

struct LRSchedule {
  ScheduleKind kind = ScheduleKind::constant;
  int64_t step_size = 1;  // step
  double gamma = 1.0;     // step
  int64_t warmup_steps = 0, total_steps = 0;  // warmup_cosine
  double min_lr = 0;                          // warmup_cosine

  static LRSchedule constant();
  static LRSchedule step(int64_t step_size, double gamma);
  static LRSchedule warmup_cosine(int64_t warmup_steps, int64_t total_steps, double min_lr = 0);

  double lr_at(int64_t step, double base_lr) const;
  // Sets every group's lr to lr_at(step, group.initial_lr); a group whose initial_lr is still
  // unset (0) first takes its current lr as the base.
  void apply(Optimizer& opt, int64_t step) const;
  std::string str() const;  // "warmup_cosine(warmup=100, total=1000, min_lr=1e-05)"
};

}  // namespace engram::nn
