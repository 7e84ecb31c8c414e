// apps/epinet_split/main.cpp — EpiNet (memory/epinet/) trained continually on split
// Fashion-MNIST classes, against the standard continual-learning baselines.
//
//   build/apps/epinet_split [--method M] [--config FILE] [--set key=value ...] [--seed S] [--out DIR]
//                           [--resume <run>/checkpoints/task_N.safetensors]
//
// Methods (same encoder, decoder, optimizer and budget):
//   finetune       no memory: the lower bound
//   replay         experience replay from a reservoir or class-balanced buffer of the same
//                  capacity (loss = CE(current) + beta CE(replay batch)), no recall path
//   epinet-recall  the recall path (memory read into the decoder), no replay
//   epinet         recall + replay from the episodic memory: the notebook's method
//   joint          every task's data at once for the same number of steps: the upper bound
// Scenarios (run.scenario): class-IL (one 10-way head, no task id at test) or task-IL (logits
// masked to the current task's classes, at train and test). After every task the model is
// tested on every task: R[i][j] (apps/common/continual_metrics.h), ACC, BWT, forgetting.
// Ends with `final: method=... scenario=... tasks=N avg_acc=X bwt=X forgetting=X`. The run itself
// is apps/common/epinet_train.h (checkpoint after every task; --resume continues exactly).
#include <CLI/CLI.hpp>

#include "apps/common/app_main.h"
#include "apps/common/epinet_train.h"
#include "nn/checkpoint.h"

using namespace engram;
using namespace engram::apps;

int main(int argc, char** argv) {
  CLI::App app{"EpiNet and continual-learning baselines on split Fashion-MNIST"};
  ConfigOptions options(app);
  options.shortcut("--method", "run.method", "finetune | replay | epinet-recall | epinet | joint");
  options.shortcut("--seed", "run.seed", "seed of initialisation, batches and memory");
  options.shortcut("--out", "run.out", "run directory");
  std::string resume;
  bool distributed = false;
  app.add_option("--resume", resume, "continue from <run>/checkpoints/task_N.safetensors");
  app.add_flag("--distributed", distributed, "data-parallel over the ranks of mpirun -np N "
               "(train.batch is the global batch)");
  return parse_and_run(app, argc, argv, [&] { return run_maybe_distributed(distributed, [&] {
    if (options.help_printed(*epinet_split_schema())) return 0;
    Config cfg(epinet_split_schema());
    // a resumed run starts from the checkpoint's own settings (the run dir may differ)
    if (!resume.empty()) {
      nn::Metadata meta = nn::load_safetensors(resume).metadata;
      ENGRAM_CHECK(meta.count("config"), "--resume '{}': no config in the checkpoint", resume);
      cfg.merge_yaml(meta.at("config"), resume);
    }
    options.apply(cfg);
    train_epinet_split(cfg, resume);
    return 0;
  }); });
}
