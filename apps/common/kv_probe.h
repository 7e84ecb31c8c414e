// apps/common/kv_probe.h — the `probe` subcommand of the memory LM apps (memory_lm, memnet): train
// a language model on a synthetic key-value recall stream (kv_recall.h), then measure recall
// accuracy at distances d, written to <out>/kv_recall.csv and .png and one closing line
//   final_probe: kind=K window=W acc_d16=... acc_d32=...
//
//   APP probe [probe options] [LM options]
//   probe options: --probe-bytes N (training stream, 1.5M) --probe-trials N (200 per d)
//     --probe-distances 16,32,... --kv-d-max D (512) --kv-keys K (8) --kv-bind-every N (24)
//     --kv-distractors N (4 other bindings inside each probe's gap)
// Everything else goes to the LM harness (lm_app.h) unchanged, with --data set to the stream.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "apps/common/kv_recall.h"
#include "apps/common/lm.h"
#include "apps/common/lm_app.h"

namespace engram::apps {

// The trained model of a run directory (config.yaml + model.safetensors), in eval mode.
std::unique_ptr<LanguageModel> load_lm_run(const std::string& app, const std::string& run, Generator& gen);

// Called after the probe with the trained model; may append " key=value" fields to the line.
using KVProbeHook = std::function<void(LanguageModel& lm, const Config& cfg, const std::string& out,
                                       const KVRecallResult& result, std::string& final_line)>;

// argv[0] is the app, argv[1] "probe". Returns the exit code; throws engram::Error on bad input.
int run_kv_probe(const LMAppInfo& info, int argc, char** argv, const std::string& default_out,
                 const KVProbeHook& after = {});

}  // namespace engram::apps
