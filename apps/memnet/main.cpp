// apps/memnet/main.cpp — MemNet's three experiments (memory/memnet/, apps/common/memnet_lm.h):
//
//   build/apps/memnet [LM options]
//        train on fortunes in the crsd_tiny harness (default config apps/memnet/configs/memnet.yaml)
//   build/apps/memnet probe [probe options] [LM options]                          experiment 1
//        train on the key-value recall stream (apps/common/kv_recall.h), then recall accuracy at
//        distances d (apps/common/kv_probe.h): <out>/kv_recall.csv/.png and `final_probe:`; for
//        memnet also the memory's read entropy, slot reuse and policy shares on the stream
//   build/apps/memnet continual [--config F] [--model K] [--seed S] [--out D] [--resume CKPT]
//        [--set key=value]...                                                      experiment 2
//        one fortunes topic per phase, loss on every topic after every phase
//        (apps/common/text_phases.h; default config apps/memnet/configs/continual.yaml)
//   build/apps/memnet dynamics RUN_DIR [--tokens N] [--heatmap-tokens N]           experiment 3
//        run a trained memnet (a probe run) over a fresh key-value stream: heatmaps of reads and
//        writes per slot, slot lifetimes and survival curves (apps/common/memnet_dynamics.h),
//        write frequency per slot, and the read entropy / policy over training (metrics.jsonl)
//
// Every failure is one line `error: ...` on stderr and exit code 2.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "apps/common/curve_plot.h"
#include "apps/common/kv_probe.h"
#include "apps/common/memnet_dynamics.h"
#include "apps/common/memnet_lm.h"
#include "apps/common/text_phases.h"
#include "apps/common/trainer.h"
#include "autograd/ops.h"
#include "autograd/tape.h"

namespace fs = std::filesystem;
using namespace engram;
using namespace engram::apps;

namespace {

const LMAppInfo kInfo{"memnet", "MemNet: a windowed Transformer with an active graph memory",
                      "apps/memnet/configs/memnet.yaml"};

int fail(const std::string& what) {
  std::fflush(stdout);
  std::fprintf(stderr, "error: %s\n", what.c_str());
  return 2;
}

// The memory's statistics over `batches` batches of a fresh stream in eval mode, averaged.
std::vector<std::pair<std::string, double>> memory_statistics(LanguageModel& lm, const std::string& text,
                                                              int64_t seq, int64_t batches) {
  NoGradGuard ng;
  const int64_t B = 8;
  LMState state = lm.initial_state(B);
  std::map<std::string, double> sum;
  std::vector<std::string> order;
  const int64_t stream = int64_t(text.size()) / B;
  int64_t done = 0;
  for (int64_t k = 0; k < batches && (k + 1) * seq <= stream; ++k, ++done) {
    std::vector<int64_t> ids(size_t(B * seq));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < seq; ++t) ids[size_t(b * seq + t)] = (unsigned char)text[size_t(b * stream + k * seq + t)];
    lm.forward(from_vector(ids, {B, seq}), state);
    for (auto& [name, v] : lm.diagnostics()) {
      if (!sum.count(name)) order.push_back(name);
      sum[name] += v;
    }
  }
  std::vector<std::pair<std::string, double>> out;
  for (const std::string& name : order) out.emplace_back(name, sum[name] / double(std::max<int64_t>(done, 1)));
  return out;
}

int run_probe(int argc, char** argv) {
  return run_kv_probe(kInfo, argc, argv, "runs/memnet_probe",
                      [](LanguageModel& lm, const Config& cfg, const std::string&, const KVRecallResult&,
                         std::string& line) {
    if (lm.kind() != "memnet" || !cfg.get_bool("model.memnet_memory")) return;
    KVRecallConfig kv;
    kv.d_min = 8, kv.d_max = 128, kv.bind_every = 8;
    const std::string text = kv_recall_stream(kv, 8 * 128 * 16, 4242);
    for (auto& [name, v] : memory_statistics(lm, text, cfg.get_int("train.seq_len"), 16))
      if (name == "memnet.read_entropy" || name == "memnet.slot_reuse" || name.starts_with("memnet.policy."))
        line += fmt::format(" {}={:.3f}", name.substr(7), v);
  });
}

// ---------------------------------------------------------------- continual (experiment 2)

int run_continual(int argc, char** argv) {
  CLI::App app{"MemNet experiment 2: one fortunes topic per phase, loss on every topic after each",
               "memnet continual"};
  std::string config_file, model, out, resume;
  int64_t seed = -1;
  std::vector<std::string> sets;
  app.add_option("--config", config_file, "YAML config (default apps/memnet/configs/continual.yaml)");
  app.add_option("--model", model, "model.kind (memnet, lstm, transformer, ...)");
  app.add_option("--seed", seed, "train.seed");
  app.add_option("--out", out, "run directory (run.out)");
  app.add_option("--resume", resume, "a phase checkpoint <run>/checkpoints/phase_N.safetensors");
  app.add_option("--set", sets, "key=value, applied last, in order");
  try {
    app.parse(argc - 1, argv + 1);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return std::fputs(app.help().c_str(), stdout), 0;
    return fail(e.what());
  }
  Config cfg(text_phase_schema("memnet_continual"));
  if (config_file.empty() && fs::exists("apps/memnet/configs/continual.yaml"))
    config_file = "apps/memnet/configs/continual.yaml";
  if (!config_file.empty()) cfg.merge_yaml_file(config_file);
  if (!model.empty()) cfg.set("model.kind", model, "--model");
  if (seed >= 0) cfg.set("train.seed", std::to_string(seed), "--seed");
  if (!out.empty()) cfg.set("run.out", out, "--out");
  for (const std::string& s : sets) cfg.apply_override(s);
  TextPhaseResult r = run_text_phases(cfg, "", resume);
  std::printf("%s\n", text_phase_final_line(r).c_str());
  return 0;
}

// ---------------------------------------------------------------- dynamics (experiment 3)

// metrics.jsonl's train rows: step -> the memory's logged statistics, as curves over training.
std::string training_curves(const std::string& run) {
  std::ifstream f(fs::path(run) / "metrics.jsonl");
  ENGRAM_CHECK(f.good(), "dynamics: '{}/metrics.jsonl' is missing", run);
  CurvePlot p;
  p.file = "memory_over_training";
  p.title = "MemNet reads over training";
  p.xlabel = "step", p.ylabel = "share / normalised entropy";
  const std::vector<std::string> keys{"memnet.read_entropy", "memnet.sparsity", "memnet.policy.top_k",
                                      "memnet.policy.uniform", "memnet.policy.random", "memnet.spread"};
  const std::vector<std::string> names{"read entropy H(W) / log N", "L_sparse (top-k entropy)",
                                       "policy: top-k", "policy: uniform", "policy: random",
                                       "spread a"};  // no '_': gnuplot would subscript it
  p.series.resize(keys.size());
  for (size_t k = 0; k < keys.size(); ++k) p.series[k].name = names[k];
  std::string line;
  while (std::getline(f, line)) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || j.value("split", "") != "train" || !j.contains("memnet.sparsity")) continue;
    p.x.push_back(j["step"].get<double>());
    for (size_t k = 0; k < keys.size(); ++k)
      p.series[k].y.push_back(j.contains(keys[k]) ? j[keys[k]].get<double>() : NAN);
  }
  ENGRAM_CHECK(!p.x.empty(), "dynamics: '{}/metrics.jsonl' has no memnet train rows", run);
  return write_curve_plot(run, p);
}

int run_dynamics(int argc, char** argv) {
  CLI::App app{"MemNet experiment 3: slot lifetimes, survival curves and heatmaps of a trained run",
               "memnet dynamics"};
  std::string run;
  int64_t tokens = 4096, heatmap_tokens = 256;
  app.add_option("run", run, "run directory of a finished memnet run (e.g. memnet probe --out)")->required();
  app.add_option("--tokens", tokens, "length of the key-value stream to run over")->check(CLI::Range(256, 1 << 22));
  app.add_option("--heatmap-tokens", heatmap_tokens, "tokens drawn in the read heatmap")->check(CLI::Range(16, 4096));
  try {
    app.parse(argc - 1, argv + 1);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return std::fputs(app.help().c_str(), stdout), 0;
    return fail(e.what());
  }
  Generator gen(0);
  auto lm = load_lm_run(kInfo.name, run, gen);
  ENGRAM_CHECK(lm->kind() == "memnet" && memnet_of(*lm)->cfg.memory, "dynamics: '{}' is a {} run "
               "without memory; it needs model.kind=memnet", run, lm->kind());
  const memnet::MemNetConfig& mc = memnet_of(*lm)->cfg;
  KVRecallConfig kv;
  kv.d_min = 8, kv.d_max = 128, kv.bind_every = 8;
  const std::string text = kv_recall_stream(kv, tokens, 777);
  memnet::MemNetTrace trace;
  set_memnet_trace(*lm, &trace);
  {
    NoGradGuard ng;
    LMState state = lm->initial_state(1);
    for (int64_t p = 0; p < tokens; p += 128) {
      std::vector<int64_t> ids;
      for (int64_t i = p; i < std::min(tokens, p + 128); ++i) ids.push_back((unsigned char)text[size_t(i)]);
      lm->forward(from_vector(ids, {1, int64_t(ids.size())}), state);
    }
  }
  set_memnet_trace(*lm, nullptr);
  const int64_t N = mc.bank.slots;
  std::vector<std::vector<float>> reads(trace.reads.begin(),
                                        trace.reads.begin() + std::min<size_t>(trace.reads.size(), size_t(heatmap_tokens)));
  std::vector<std::vector<float>> writes(trace.writes.begin(),
      trace.writes.begin() + std::min<size_t>(trace.writes.size(), size_t(heatmap_tokens / mc.segment)));
  std::printf("%s\n", write_heatmap(run, "reads_heatmap", reads, fmt::format(
      "mean read weight per slot, first {} tokens", reads.size()), "token").c_str());
  std::printf("%s\n", write_heatmap(run, "writes_heatmap", writes, fmt::format(
      "write weight per slot (summed over heads), one row per segment of {} tokens", mc.segment),
      "segment").c_str());
  // lifetimes, survival, write frequency per slot
  std::vector<WriteLifetime> life = write_lifetimes(trace, text, mc.segment);
  CurvePlot surv;
  surv.file = "slot_survival";
  surv.title = "fraction of slot contents surviving past each age (Kaplan-Meier, kept >= 1/2)";
  surv.xlabel = "age (tokens)", surv.ylabel = "survival";
  for (double a = 0; a <= 1024; a += 8) surv.x.push_back(a);
  surv.series.push_back({"all writes", kaplan_meier(life, surv.x, WriteKind::all)});
  surv.series.push_back({"binding (K=v) segments", kaplan_meier(life, surv.x, WriteKind::binding)});
  surv.series.push_back({"filler segments", kaplan_meier(life, surv.x, WriteKind::filler)});
  std::printf("%s\n", write_curve_plot(run, surv).c_str());
  std::vector<double> mass(size_t(N), 0.0), argmax_count(size_t(N), 0.0);
  for (size_t s = 0; s < trace.writes.size(); ++s)
    for (int64_t i = 0; i < N; ++i) mass[size_t(i)] += trace.writes[s][size_t(i)];
  for (const WriteLifetime& l : life) argmax_count[size_t(l.slot)] += 1;
  {
    std::ofstream f(fs::path(run) / "slot_writes.csv");
    f << "slot,write_mass,main_writes\n";
    for (int64_t i = 0; i < N; ++i) f << i << "," << mass[size_t(i)] << "," << argmax_count[size_t(i)] << "\n";
  }
  int64_t used = 0;
  for (double c : argmax_count) used += c > 0;
  std::printf("%s\n", training_curves(run).c_str());
  int64_t bindings = 0;
  for (const WriteLifetime& l : life) bindings += l.binding;
  std::printf("final_dynamics: writes=%zu binding_writes=%lld slots_used_as_main=%lld/%lld "
              "median_lifetime_all=%.0f median_lifetime_binding=%.0f median_lifetime_filler=%.0f\n",
              life.size(), (long long)bindings, (long long)used, (long long)N,
              median_lifetime(life, WriteKind::all), median_lifetime(life, WriteKind::binding),
              median_lifetime(life, WriteKind::filler));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string sub = argc > 1 ? argv[1] : "";
  try {
    if (sub == "probe") return run_probe(argc, argv);
    if (sub == "continual") return run_continual(argc, argv);
    if (sub == "dynamics") return run_dynamics(argc, argv);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return run_lm_app(kInfo, argc, argv);
}
