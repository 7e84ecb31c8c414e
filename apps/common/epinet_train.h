// apps/common/epinet_train.h — the EpiNet continual-learning run behind apps/epinet_split:
// split Fashion-MNIST tasks trained in order with one of five methods (finetune, replay,
// epinet-recall, epinet, joint), tested after every task on every task, with a checkpoint after
// every task (model, optimizer, generator, episodic memory or replay buffer, the results so far)
// from which `resume` continues exactly: a resumed run gives the same losses, bit for bit, as one
// that never stopped (tests/test_epinet.cpp).
#pragma once
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "apps/common/config.h"
#include "apps/common/continual_metrics.h"

namespace engram::apps {

std::shared_ptr<const Schema> epinet_split_schema();

struct EpinetRun {
  AccuracyMatrix R;
  ContinualSummary summary;
  std::vector<double> losses;  // every training step's loss, from the first task on
  int64_t steps = 0;
  std::string final_line;
};

// Trains as configured; `resume` is a <run>/checkpoints/task_N.safetensors of the same config.
// Prints progress to `out`; writes the run directory (run.out).
EpinetRun train_epinet_split(const Config& cfg, const std::string& resume = "", std::FILE* out = stdout);

}  // namespace engram::apps
