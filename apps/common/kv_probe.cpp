// apps/common/kv_probe.cpp — see kv_probe.h.
#include "apps/common/kv_probe.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "apps/common/curve_plot.h"
#include "apps/common/trainer.h"
#include "nn/checkpoint.h"

namespace fs = std::filesystem;

namespace engram::apps {

// The trained model of a run directory (config.yaml + model.safetensors), in eval mode.
std::unique_ptr<LanguageModel> load_lm_run(const std::string& app, const std::string& run, Generator& gen) {
  const fs::path dir(run);
  ENGRAM_CHECK(fs::exists(dir / "config.yaml") && fs::exists(dir / "model.safetensors"),
               "'{}' is not a finished run directory (config.yaml and model.safetensors expected)", run);
  Config cfg(lm_schema(app));
  cfg.merge_yaml_file((dir / "config.yaml").string());
  auto lm = make_language_model(cfg, 256, &gen);
  nn::load_checkpoint((dir / "model.safetensors").string(), lm->module());
  lm->module().eval();
  return lm;
}

int run_kv_probe(const LMAppInfo& info, int argc, char** argv, const std::string& default_out,
                 const KVProbeHook& after) {
  // probe options are taken out; everything else goes to the LM harness unchanged
  KVRecallConfig kv;
  kv.d_min = 8, kv.d_max = 512, kv.bind_every = 24, kv.distractors = 4;
  int64_t corpus_bytes = 1'500'000, trials = 200;
  std::string distances_arg = "16,32,64,128,256,512", out = default_out;
  std::vector<std::string> rest{info.name};
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* name) {
      ENGRAM_CHECK(i + 1 < argc, "probe: {} needs a value", name);
      return std::string(argv[++i]);
    };
    if (a == "--probe-bytes") corpus_bytes = std::stoll(value("--probe-bytes"));
    else if (a == "--probe-trials") trials = std::stoll(value("--probe-trials"));
    else if (a == "--probe-distances") distances_arg = value("--probe-distances");
    else if (a == "--kv-d-max") kv.d_max = std::stoll(value("--kv-d-max"));
    else if (a == "--kv-keys") kv.keys = int(std::stoll(value("--kv-keys")));
    else if (a == "--kv-bind-every") kv.bind_every = std::stoll(value("--kv-bind-every"));
    else if (a == "--kv-distractors") kv.distractors = int(std::stoll(value("--kv-distractors")));
    else {
      if (a == "--out" && i + 1 < argc) out = argv[i + 1];
      rest.push_back(a);
    }
  }
  check_kv_recall_config(kv, "probe");
  ENGRAM_CHECK(corpus_bytes >= 10'000, "probe: --probe-bytes must be >= 10000, got {}", corpus_bytes);
  ENGRAM_CHECK(trials >= 1, "probe: --probe-trials must be >= 1, got {}", trials);
  std::vector<int64_t> distances;
  for (size_t p = 0; p < distances_arg.size();) {
    size_t q = distances_arg.find(',', p);
    std::string item = distances_arg.substr(p, q == std::string::npos ? std::string::npos : q - p);
    int64_t d = 0;
    ENGRAM_CHECK(!item.empty() && item.find_first_not_of("0123456789") == std::string::npos &&
                     (d = std::stoll(item)) >= 3,
                 "probe: --probe-distances wants comma-separated integers >= 3, got '{}'", item);
    distances.push_back(d);
    if (q == std::string::npos) break;
    p = q + 1;
  }
  if (std::find(rest.begin(), rest.end(), "--out") == rest.end()) rest.insert(rest.end(), {"--out", out});
  fs::create_directories(out);
  const std::string corpus = (fs::path(out) / "kv_corpus.txt").string();
  write_kv_recall_corpus(corpus, kv, corpus_bytes, 2024);
  rest.insert(rest.end(), {"--data", corpus});
  std::vector<const char*> args;
  for (auto& s : rest) args.push_back(s.c_str());
  const int rc = run_lm_app(info, int(args.size()), args.data());
  if (rc != 0) return rc;

  Generator gen(0);
  auto lm = load_lm_run(info.name, out, gen);
  Config cfg(lm_schema(info.name));
  cfg.merge_yaml_file((fs::path(out) / "config.yaml").string());
  const int64_t seq = cfg.get_int("train.seq_len");
  KVRecallResult r = evaluate_kv_recall(*lm, kv, distances, trials, seq, 7);
  CurvePlot plot;
  plot.file = "kv_recall";
  plot.title = fmt::format("key-value recall, {} (window {})", lm->kind(), cfg.get_int("model.window"));
  plot.xlabel = "distance d (tokens)", plot.ylabel = "accuracy among the 10 digits";
  std::vector<double> xs(r.distances.begin(), r.distances.end());
  plot.x = xs;
  plot.series.push_back({lm->kind(), r.accuracy});
  plot.series.push_back({"chance", std::vector<double>(xs.size(), 1.0 / kv.values)});
  std::printf("%s\n", write_curve_plot(out, plot).c_str());
  std::string line = fmt::format("final_probe: kind={} window={}", lm->kind(), cfg.get_int("model.window"));
  for (size_t i = 0; i < r.distances.size(); ++i) line += fmt::format(" acc_d{}={:.3f}", r.distances[i], r.accuracy[i]);
  if (after) after(*lm, cfg, out, r, line);
  std::printf("%s\n", line.c_str());
  return 0;
}

}  // namespace engram::apps
