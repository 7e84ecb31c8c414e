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
#include "apps/common/kv_probe.h"
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
  auto lm = load_lm_run(kInfo.name, run, gen);
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
    if (sub == "probe") return run_kv_probe(kInfo, argc, argv, "runs/memory_lm_probe");
    if (sub == "gates") return run_gates(argc, argv);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return run_lm_app(kInfo, argc, argv);
}
