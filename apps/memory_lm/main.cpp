// apps/memory_lm/main.cpp — byte-level language models whose attention sees only a window of W
// tokens, with episodic CMR, Titans' neural memory, or their gated hybrid carrying what is older
// (apps/common/memory_lm.h has the models, memory/cmr and memory/titans the modules).
//
//   build/apps/memory_lm [LM options]            train on fortunes in the crsd_tiny harness
//   build/apps/memory_lm probe [probe options] [LM options]
//        train on a synthetic key-value recall stream (apps/common/kv_recall.h), then measure
//        recall accuracy at distances d from W/2 to 16W: <out>/kv_recall.csv and .png
//        probe options: --probe-bytes N (training stream, 1.5M) --probe-trials N (200 per d)
//        --probe-distances 16,32,... --kv-d-max D (512) --kv-keys K (8) --kv-bind-every N (24)
//        --kv-distractors N (4 other bindings inside each probe's gap)
//   build/apps/memory_lm gates RUN_DIR [--text FILE] [--bytes N]
//        run a trained hybrid model over a text: its gate per token and layer,
//        <run>/gates.csv and a heatmap <run>/gates.png; mean and spread over the text
//
// LM options are crsd_tiny's (--config FILE --data --steps --out --resume --seed --model
// --set key=value --help-config); the default config is configs/hybrid.yaml. Every failure is one
// line `error: ...` on stderr and exit code 2.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "apps/common/curve_plot.h"
#include "apps/common/kv_recall.h"
#include "apps/common/lm_app.h"
#include "apps/common/memory_lm.h"
#include "apps/common/text_data.h"
#include "apps/common/trainer.h"
#include "autograd/ops.h"
#include "autograd/tape.h"
#include "nn/checkpoint.h"

namespace fs = std::filesystem;
using namespace engram;
using namespace engram::apps;

namespace {

const LMAppInfo kInfo{"memory_lm",
                      "Local-attention language models with episodic CMR / Titans memories",
                      "apps/memory_lm/configs/hybrid.yaml"};

int fail(const std::string& what) {
  std::fflush(stdout);
  std::fprintf(stderr, "error: %s\n", what.c_str());
  return 2;
}

// The trained model of a run directory (config.yaml + model.safetensors), in eval mode.
std::unique_ptr<LanguageModel> load_run(const std::string& run, Generator& gen) {
  const fs::path dir(run);
  ENGRAM_CHECK(fs::exists(dir / "config.yaml") && fs::exists(dir / "model.safetensors"),
               "'{}' is not a finished run directory (config.yaml and model.safetensors expected)", run);
  Config cfg(lm_schema(kInfo.name));
  cfg.merge_yaml_file((dir / "config.yaml").string());
  auto lm = make_language_model(cfg, 256, &gen);
  nn::load_checkpoint((dir / "model.safetensors").string(), lm->module());
  lm->module().eval();
  return lm;
}

// ---------------------------------------------------------------- probe

int run_probe(int argc, char** argv) {
  // probe options are taken out; everything else goes to the LM harness unchanged
  KVRecallConfig kv;
  kv.d_min = 8, kv.d_max = 512, kv.bind_every = 24, kv.distractors = 4;
  int64_t corpus_bytes = 1'500'000, trials = 200;
  std::string distances_arg = "16,32,64,128,256,512", out = "runs/memory_lm_probe";
  std::vector<std::string> rest{"memory_lm"};
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
  const int rc = run_lm_app(kInfo, int(args.size()), args.data());
  if (rc != 0) return rc;

  Generator gen(0);
  auto lm = load_run(out, gen);
  Config cfg(lm_schema(kInfo.name));
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
  std::printf("%s\n", line.c_str());
  return 0;
}

// ---------------------------------------------------------------- gates

int run_gates(int argc, char** argv) {
  CLI::App app{"The hybrid gate of a trained memory_lm run over a text", "memory_lm gates"};
  std::string run, text_path;
  int64_t bytes = 160;
  app.add_option("run", run, "run directory of a finished model.kind=hybrid run")->required();
  app.add_option("--text", text_path, "text to run over (default: the start of the run's val split)");
  app.add_option("--bytes", bytes, "bytes to draw in the heatmap (the whole text is measured)")
      ->check(CLI::Range(8, 4096));
  try {
    app.parse(argc - 1, argv + 1);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return std::fputs(app.help().c_str(), stdout), 0;
    return fail(e.what());
  }
  Generator gen(0);
  auto lm = load_run(run, gen);
  ENGRAM_CHECK(lm->kind() == "hybrid", "gates: '{}' trained model.kind={}, not hybrid", run, lm->kind());
  std::string text;
  if (text_path.empty()) {
    Config cfg(lm_schema(kInfo.name));
    cfg.merge_yaml_file((fs::path(run) / "config.yaml").string());
    TextSplits s = split_text(read_corpus(cfg.get_string("data.path")), cfg.get_real("data.val_fraction"),
                              cfg.get_real("data.test_fraction"));
    text = s.val.substr(0, 4096);
  } else {
    Corpus c = read_corpus(text_path);
    text = c.text.substr(0, 4096);
  }
  ENGRAM_CHECK(int64_t(text.size()) >= bytes, "gates: the text has {} bytes, fewer than --bytes {}",
               text.size(), bytes);
  NoGradGuard ng;
  LMState state = lm->initial_state(1);
  std::vector<std::vector<double>> gate;  // [layer][position]
  for (size_t p = 0; p < text.size(); p += 128) {
    std::vector<int64_t> ids;
    for (size_t i = p; i < std::min(text.size(), p + 128); ++i) ids.push_back((unsigned char)text[i]);
    lm->forward(from_vector(ids, {1, int64_t(ids.size())}), state);
    std::vector<Tensor> g = memory_lm_gates(*lm);
    gate.resize(g.size());
    for (size_t l = 0; l < g.size(); ++l) {
      Tensor gl = g[l].dim() == 3 ? select(g[l], 2, 1) : g[l];  // softmax: the neural share
      for (double v : to_dtype(gl, DType::f64).to_vector<double>()) gate[l].push_back(v);
    }
  }
  const std::string csv = (fs::path(run) / "gates.csv").string();
  std::ofstream f(csv);
  f << "layer,position,byte,gate_neural\n";
  std::string summary = "final_gates:";
  for (size_t l = 0; l < gate.size(); ++l) {
    double mean = 0, sq = 0;
    for (size_t i = 0; i < gate[l].size(); ++i) {
      f << l << "," << i << "," << int((unsigned char)text[i]) << "," << gate[l][i] << "\n";
      mean += gate[l][i];
      sq += gate[l][i] * gate[l][i];
    }
    mean /= double(gate[l].size());
    summary += fmt::format(" layer{}_mean={:.3f} layer{}_std={:.3f}", l, mean, l,
                           std::sqrt(std::max(0.0, sq / double(gate[l].size()) - mean * mean)));
  }
  f.close();
  // heatmap: rows = layers, columns = the first `bytes` characters, labelled with the text
  const std::string dat = (fs::path(run) / "gates_heatmap.dat").string(), gp = dat + ".gp",
                    png = (fs::path(run) / "gates.png").string();
  std::ofstream d(dat);
  for (size_t l = 0; l < gate.size(); ++l)
    for (int64_t i = 0; i < bytes; ++i) {
      char c = text[i];
      std::string label = c == '\n' ? "\\\\n" : c == '"' ? "\\\"" : c == ' ' ? "_" : std::string(1, c);
      if (c == '\\') label = "\\\\\\\\";
      d << i << " " << l << " " << gate[l][i] << " \"" << label << "\"\n";
    }
  d.close();
  std::ofstream(gp) << fmt::format(R"(set terminal png size {},{} font ',10'
set output '{}'
set title 'hybrid gate g (weight of the neural memory; 1 - g goes to episodic CMR)'
set xrange [-0.5:{}.5]
set yrange [-1.1:{}.5]
set ytics 0,1
set style fill solid 1.0 noborder
set ylabel 'layer'
unset xtics
set cbrange [0:1]
set palette defined (0 '#2166ac', 0.5 '#f7f7f7', 1 '#b2182b')
plot '{}' using 1:2:(0.5):(0.5):3 with boxxy fc palette notitle, \
  '' using 1:($2 == 0 ? -0.8 : 1/0):4 with labels font ',8' notitle
)", std::max<int64_t>(640, bytes * 11), 120 + 70 * gate.size(), png, bytes - 1, gate.size() - 1, dat);
  const bool drawn = std::system(fmt::format("gnuplot '{}' > '{}.log' 2>&1", gp, gp).c_str()) == 0;
  std::printf("%s, %s\n%s\n", csv.c_str(), drawn ? png.c_str() : "(no PNG: gnuplot failed)", summary.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string sub = argc > 1 ? argv[1] : "";
  try {
    if (sub == "probe") return run_probe(argc, argv);
    if (sub == "gates") return run_gates(argc, argv);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return run_lm_app(kInfo, argc, argv);
}
