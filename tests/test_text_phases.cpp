// tests/test_text_phases.cpp — the continual text-phase trainer (apps/common/text_phases.h): the
// phases.* validation, the loss-matrix metrics on a hand-made matrix, a tiny run per baseline
// kind (matrix shape, a phase lowers its own topic's loss, the files it leaves) and exact resume
// from a phase-boundary checkpoint. The topics are tiny fortune files written to a temp dir.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "apps/common/text_phases.h"
#include "tests/test_util.h"

using namespace engram;
using namespace engram::apps;
namespace fs = std::filesystem;
using engram::testing::contains;
using engram::testing::error_of;
using engram::testing::TempDir;

namespace {

// A fortune file (with the strfile index beside it, so '%' lines are separators) of `n` fortunes,
// each a few words drawn from `words`: every topic has its own alphabet, so the phases differ.
void write_topic(const TempDir& dir, const std::string& name, std::vector<std::string> words, int n,
                 uint64_t seed) {
  std::string text;
  uint64_t x = seed;
  for (int i = 0; i < n; ++i) {
    for (int w = 0; w < 8; ++w) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      text += words[(x >> 33) % words.size()] + (w == 7 ? ".\n" : " ");
    }
    text += "%\n";
  }
  dir.write(name, text);
  dir.write(name + ".dat", "");
}

void write_topics(const TempDir& dir) {
  write_topic(dir, "alpha", {"abba", "cab", "dace", "bead", "faded", "baggage"}, 200, 1);
  write_topic(dir, "beta", {"ZIP", "QUIZ", "JUMP", "WOLF", "VEX", "KNOT"}, 200, 2);
  write_topic(dir, "gamma", {"1+2", "3*4=12", "(7)", "0.5", "99%", "[8]"}, 200, 3);
}

// A tiny model and short phases: a few milliseconds per step.
Config tiny_phase_config(const TempDir& dir, const std::string& kind) {
  Config cfg(text_phase_schema("text_phases_test"));
  for (const char* s : {"model.d_model=16", "model.layers=1", "model.heads=2", "model.ff_mult=2",
                        "train.batch=2", "train.seq_len=16", "train.lr=0.01", "data.val_fraction=0.1", "train.warmup=2",
                        "phases.steps=20", "phases.eval_batches=4", "phases.topics=alpha,beta,gamma",
                        "run.plots=false"})
    cfg.apply_override(s);
  cfg.set("model.kind", kind, "test");
  cfg.set("phases.dir", dir.path.string(), "test");
  return cfg;
}

}  // namespace

TEST_CASE("text phases: phases.* settings are validated, each error naming the key and value") {
  TempDir dir;
  write_topics(dir);
  Config cfg = tiny_phase_config(dir, "lstm");
  TextPhaseConfig pc = text_phase_config(cfg);
  CHECK(pc.topics == std::vector<std::string>{"alpha", "beta", "gamma"});
  CHECK(pc.steps == 20);
  CHECK(pc.eval_batches == 4);
  CHECK(pc.schedule == "constant");
  CHECK(Config(text_phase_schema("t")).get_string("phases.dir") == "/usr/share/games/fortunes");
  // spaces around names are trimmed
  cfg.set("phases.topics", " gamma , alpha", "test");
  CHECK(text_phase_config(cfg).topics == std::vector<std::string>{"gamma", "alpha"});

  auto topics_error = [&](const std::string& v) {
    Config c = cfg;
    c.set("phases.topics", v, "test");
    return error_of([&] { text_phase_config(c); });
  };
  CHECK(contains(topics_error("alpha,nope"), "phases.topics='alpha,nope': topic 'nope' is not a file"));
  CHECK(contains(topics_error("alpha,beta,alpha"), "topic 'alpha' appears twice"));
  CHECK(contains(topics_error("alpha,,beta"), "phases.topics='alpha,,beta': an empty topic name"));
  CHECK(contains(topics_error("../alpha"), "topic '../alpha' is a path"));
  CHECK(contains(topics_error(""), "phases.topics='': no topic"));
  Config c = cfg;
  c.set("phases.dir", dir.file("missing"), "test");
  CHECK(contains(error_of([&] { text_phase_config(c); }), "phases.dir='" + dir.file("missing") + "': not a directory"));
  // ranges and choices go through the config machinery
  CHECK(contains(error_of([&] { cfg.apply_override("phases.steps=0"); }), "phases.steps"));
  CHECK(contains(error_of([&] { cfg.apply_override("phases.eval_batches=-1"); }), "phases.eval_batches"));
  CHECK(contains(error_of([&] { cfg.apply_override("phases.schedule=linear"); }), "phases.schedule"));
  // the LM trainer's settings that do not apply here are unknown keys, not silently ignored
  CHECK(contains(error_of([&] { cfg.apply_override("train.steps=5"); }), "train.steps"));
  // a topic too small for its streams fails before training, naming the split
  dir.write("tiny", "just a few bytes\n");
  c = cfg;
  c.set("phases.topics", "alpha,tiny", "test");
  std::FILE* quiet = std::tmpfile();
  CHECK(contains(error_of([&] { run_text_phases(c, dir.file("run"), "", quiet); }), "tiny/"));
  std::fclose(quiet);
}

TEST_CASE("text phases: metrics of a hand-made loss matrix") {
  // 3 topics; the loss on a topic falls when it is trained and rises after.
  const LossMatrix L = {{2.0, 4.0, 5.0},   // after phase 1 (topic 0)
                        {2.5, 1.5, 4.5},   // after phase 2 (topic 1)
                        {3.0, 2.0, 1.0}};  // after phase 3 (topic 2)
  const std::vector<double> before = {5.5, 5.0, 5.5};
  TextPhaseMetrics m = text_phase_metrics(L, before);
  CHECK(m.phases == 3);
  CHECK(m.avg_loss == doctest::Approx(2.0));                 // (3 + 2 + 1) / 3
  CHECK(m.avg_learned_loss == doctest::Approx(1.5));         // (2 + 1.5 + 1) / 3
  REQUIRE(m.drop.size() == 2);
  CHECK(m.drop[0] == doctest::Approx(1.0));                  // 3 - 2
  CHECK(m.drop[1] == doctest::Approx(0.5));                  // 2 - 1.5
  CHECK(m.bwt == doctest::Approx(-0.75));                    // -(1 + 0.5) / 2: negative = forgot
  REQUIRE(m.forgetting_per_topic.size() == 2);
  CHECK(m.forgetting_per_topic[0] == doctest::Approx(1.0));  // 3 - min(2, 2.5)
  CHECK(m.forgetting_per_topic[1] == doctest::Approx(0.5));  // 2 - min(4, 1.5)
  CHECK(m.forgetting == doctest::Approx(0.75));
  CHECK(m.fwt == doctest::Approx(1.0));                      // ((5 - 4) + (5.5 - 4.5)) / 2
  // forgetting counts against the best loss ever, not the one just after training
  const LossMatrix L2 = {{2.0, 4.0}, {1.0, 1.5}};  // topic 0 improved further in phase 2
  m = text_phase_metrics(L2, {});
  CHECK(m.forgetting_per_topic[0] == doctest::Approx(-1.0));  // 1 - min_{l<1} L[l][0] = 1 - 2
  CHECK(m.drop[0] == doctest::Approx(-1.0));
  CHECK(m.bwt == doctest::Approx(1.0));                       // positive backward transfer
  CHECK(std::isnan(m.fwt));                                   // no 'before' row
  // after the first phase only: nothing to forget yet
  m = text_phase_metrics(L, before, 0);
  CHECK(m.phases == 1);
  CHECK(m.avg_loss == doctest::Approx(2.0));
  CHECK(std::isnan(m.bwt));
  CHECK(std::isnan(m.forgetting));
  CHECK(std::isnan(m.fwt));
  CHECK(contains(error_of([&] { text_phase_metrics(L, {1.0}); }), "1 'before' losses for 3 topics"));
  CHECK(contains(error_of([&] { text_phase_metrics(L, before, 3); }), "phase 3 outside 0..2"));
  const LossMatrix gap = {{2.0, NAN}, {NAN, 1.0}};  // an entry that is read but was not measured
  CHECK(contains(error_of([&] { text_phase_metrics(gap, {}); }), "was not measured"));
}

TEST_CASE("text phases: each phase lowers its topic's loss; the matrix and files of a run") {
  TempDir dir;
  write_topics(dir);
  for (const std::string kind : {"lstm", "transformer"}) {
    CAPTURE(kind);
    Config cfg = tiny_phase_config(dir, kind);
    const std::string out = dir.file("run_" + kind);
    std::FILE* quiet = std::tmpfile();
    TextPhaseResult r = run_text_phases(cfg, out, "", quiet);
    std::rewind(quiet);
    std::string log(4096, '\0');
    log.resize(std::fread(log.data(), 1, log.size(), quiet));
    std::fclose(quiet);
    CHECK(contains(log, "phase 1/3 alpha: train"));
    CHECK(contains(log, "phase 3/3 gamma: train"));
    REQUIRE(r.loss.size() == 3);
    REQUIRE(r.before.size() == 3);
    for (const auto& row : r.loss) {
      REQUIRE(row.size() == 3);
      for (double v : row) CHECK(std::isfinite(v));
    }
    for (double b : r.before) CHECK(b == doctest::Approx(std::log(256.0)).epsilon(0.1));  // ~uniform
    for (size_t i = 0; i < 3; ++i) {
      CAPTURE(i);
      CHECK(r.loss[i][i] < r.before[i] - 1.0);  // training on a topic lowers its val loss
      if (i > 0) CHECK(r.loss[i][i] < r.loss[i - 1][i]);  // ... below what the last phase left
    }
    CHECK(r.parameters > 0);
    CHECK(r.train_loss.size() == 3);
    CHECK(r.metrics.phases == 3);
    CHECK(r.metrics.avg_loss == doctest::Approx((r.loss[2][0] + r.loss[2][1] + r.loss[2][2]) / 3));
    // files: the CSV (header, before row, one row per phase), the JSON summary, the checkpoints
    std::ifstream csv(out + "/loss_matrix.csv");
    std::vector<std::string> lines;
    for (std::string l; std::getline(csv, l);) lines.push_back(l);
    REQUIRE(lines.size() == 5);
    CHECK(lines[0] == "phase,trained,alpha,beta,gamma");
    CHECK(lines[1].starts_with("0,before,"));
    CHECK(lines[4].starts_with("3,gamma,"));
    std::ifstream jf(out + "/text_phases.json");
    nlohmann::json j = nlohmann::json::parse(jf);
    CHECK(j["topics"].size() == 3);
    CHECK(j["loss"][1][2].get<double>() == r.loss[1][2]);
    CHECK(j["metrics"]["forgetting"].get<double>() == doctest::Approx(r.metrics.forgetting));
    CHECK(j["parameters"].get<int64_t>() == r.parameters);
    CHECK(j["model"] == kind);
    for (int p = 1; p <= 3; ++p) CHECK(fs::exists(fmt::format("{}/checkpoints/phase_{}.safetensors", out, p)));
    CHECK(contains(text_phase_final_line(r), "final: 3 phases | loss "));
  }
}

TEST_CASE("text phases: resuming after phase k gives the later rows bit for bit") {
  TempDir dir;
  write_topics(dir);
  Config cfg = tiny_phase_config(dir, "lstm");
  for (const char* s : {"model.layers=2", "model.dropout=0.2",  // the RNG state matters too
                        "phases.steps=8", "phases.eval_before=false"})
    cfg.apply_override(s);
  std::FILE* quiet = std::tmpfile();
  const TextPhaseResult full = run_text_phases(cfg, dir.file("a"), "", quiet);
  const std::string ckpt = dir.file("a") + "/checkpoints/phase_1.safetensors";
  Config again = cfg;
  again.set("run.out", dir.file("elsewhere"), "test");  // run.* may change
  const TextPhaseResult resumed = run_text_phases(again, dir.file("b"), ckpt, quiet);
  CHECK(resumed.first_phase == 1);
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = 0; j < 3; ++j) CHECK(resumed.loss[i][j] == full.loss[i][j]);  // exact
  CHECK(resumed.train_loss == full.train_loss);
  CHECK(resumed.metrics.forgetting == full.metrics.forgetting);
  // what the numbers depend on may not change
  Config other = cfg;
  other.set("train.lr", "0.02", "test");
  CHECK(contains(error_of([&] { run_text_phases(other, dir.file("c"), ckpt, quiet); }),
                 "'train.lr' cannot change when resuming"));
  // nor the data
  write_topic(dir, "beta", {"ZIP", "QUIZ"}, 100, 9);
  CHECK(contains(error_of([&] { run_text_phases(cfg, dir.file("c"), ckpt, quiet); }),
                 "the topics' data changed"));
  std::fclose(quiet);
}
