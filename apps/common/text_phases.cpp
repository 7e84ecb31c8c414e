// apps/common/text_phases.cpp — see text_phases.h: the phase settings, the loss-matrix metrics,
// the continual training loop with its phase-boundary checkpoints, and the CSV / JSON / plot
// writers.
#include "apps/common/text_phases.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <numeric>
#include <sstream>

#include "apps/common/continual_metrics.h"
#include "apps/common/curve_plot.h"
#include "apps/common/lm.h"
#include "apps/common/text_data.h"
#include "apps/common/tokenizer.h"
#include "apps/common/trainer.h"
#include "autograd/tape.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "nn/schedule.h"

namespace engram::apps {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---------------------------------------------------------------- settings

std::vector<FieldSpec> text_phase_fields() {
  const int64_t big = 1'000'000'000;
  return {
      string_field("phases.topics", "art,computers,science,law,songs-poems",
                   "topic files, comma-separated, one phase each in this order"),
      string_field("phases.dir", kDefaultCorpus, "directory of the topic files (Debian's fortunes)"),
      int_field("phases.steps", 200, 1, big, "optimizer steps per phase"),
      int_field("phases.eval_batches", 0, 0, big, "val batches per topic per evaluation (0 = all)"),
      int_field("phases.max_bytes", 0, 0, int64_t(1) << 40, "use the first N bytes of each topic "
                "(0 = all)"),
      bool_field("phases.eval_before", true, "evaluate the untrained model on every topic (for fwt)"),
      choice_field("phases.schedule", "constant", {"constant", "cosine"}, "lr: warmup then "
                   "train.lr (constant) or warmup_cosine to train.min_lr over all phases"),
      bool_field("phases.checkpoint", true, "checkpoint after every phase (resume from it)"),
  };
}

std::shared_ptr<const Schema> text_phase_schema(const std::string& app) {
  // The LM trainer's settings that mean the same here; train.steps, the periodic evaluation,
  // sampling and the tokenizer choice do not apply (phases.* and the byte tokenizer replace them).
  static const std::vector<std::string> used = {
      "data.val_fraction", "data.test_fraction", "data.block_size", "data.max_pad_share",
      "data.max_nul_share", "data.max_binary_share", "train.batch", "train.seq_len",
      "train.optimizer", "train.lr", "train.min_lr", "train.warmup", "train.weight_decay",
      "train.beta2", "train.grad_clip", "train.loss_scaling", "train.anomaly", "train.carry_state",
      "train.seed", "run.out", "run.plots"};
  std::vector<FieldSpec> fields = lm_model_fields();
  for (FieldSpec& f : lm_train_fields(app))
    if (std::find(used.begin(), used.end(), f.key) != used.end()) fields.push_back(std::move(f));
  for (FieldSpec& f : text_phase_fields()) fields.push_back(std::move(f));
  return std::make_shared<const Schema>(app, std::move(fields));
}

TextPhaseConfig text_phase_config(const Config& cfg) {
  TextPhaseConfig c;
  c.dir = cfg.get_string("phases.dir");
  c.steps = cfg.get_int("phases.steps");
  c.eval_batches = cfg.get_int("phases.eval_batches");
  c.max_bytes = cfg.get_int("phases.max_bytes");
  c.eval_before = cfg.get_bool("phases.eval_before");
  c.checkpoint = cfg.get_bool("phases.checkpoint");
  c.schedule = cfg.get_string("phases.schedule");
  const std::string& list = cfg.get_string("phases.topics");
  std::error_code ec;
  ENGRAM_CHECK(fs::is_directory(c.dir, ec), "phases.dir='{}': not a directory{}", c.dir,
               c.dir == kDefaultCorpus ? " (install Debian's fortunes package)" : "");
  std::stringstream ss(list);
  for (std::string name; std::getline(ss, name, ',');) {
    const size_t a = name.find_first_not_of(" \t"), b = name.find_last_not_of(" \t");
    name = a == std::string::npos ? "" : name.substr(a, b - a + 1);
    ENGRAM_CHECK(!name.empty(), "phases.topics='{}': an empty topic name", list);
    ENGRAM_CHECK(name.find('/') == std::string::npos, "phases.topics='{}': topic '{}' is a path; "
                 "give file names inside phases.dir", list, name);
    ENGRAM_CHECK(std::find(c.topics.begin(), c.topics.end(), name) == c.topics.end(),
                 "phases.topics='{}': topic '{}' appears twice", list, name);
    ENGRAM_CHECK(fs::is_regular_file(fs::path(c.dir) / name, ec), "phases.topics='{}': topic '{}' "
                 "is not a file of phases.dir='{}'", list, name, c.dir);
    c.topics.push_back(name);
  }
  ENGRAM_CHECK(!c.topics.empty(), "phases.topics='{}': no topic", list);
  return c;
}

// ---------------------------------------------------------------- metrics

TextPhaseMetrics text_phase_metrics(const LossMatrix& L, const std::vector<double>& before,
                                    int64_t k) {
  const int64_t T = int64_t(L.size());
  if (k < 0) k = T - 1;
  ENGRAM_CHECK(k >= 0 && k < T, "text_phase_metrics: phase {} outside 0..{}", k, T - 1);
  ENGRAM_CHECK(before.empty() || int64_t(before.size()) == T, "text_phase_metrics: {} 'before' "
               "losses for {} topics", before.size(), T);
  // The accuracy-matrix metrics on R = -L keep their signs (bwt < 0, forgetting > 0: forgot).
  AccuracyMatrix R = L;
  for (auto& row : R)
    for (double& v : row) v = -v;
  const ContinualSummary s = summarize(R, k);  // checks squareness and that the entries exist
  TextPhaseMetrics m;
  m.phases = k + 1;
  m.avg_loss = -s.avg_acc;
  m.bwt = s.bwt;
  m.forgetting = s.forgetting;
  double learned = 0;
  for (int64_t j = 0; j <= k; ++j) learned += L[j][j];
  m.avg_learned_loss = learned / double(k + 1);
  for (int64_t j = 0; j < k; ++j) {
    m.drop.push_back(L[k][j] - L[j][j]);
    double best = INFINITY;  // as continual_metrics' forgetting: rows l < j count when measured
    for (int64_t l = 0; l < k; ++l)
      if (!std::isnan(L[l][j])) best = std::min(best, L[l][j]);
    m.forgetting_per_topic.push_back(L[k][j] - best);
  }
  if (!before.empty() && k >= 1) {
    double f = 0;
    for (int64_t j = 1; j <= k; ++j) f += before[j] - L[j - 1][j];
    m.fwt = f / double(k);
  }
  return m;
}

namespace {

// ---------------------------------------------------------------- data

struct Topic {
  std::string name;
  TokenSplit train, val;
};

// Topic file -> first max_bytes bytes -> split -> byte ids; the splits are checked by the
// batchers the caller builds.
std::vector<Topic> read_topics(const Config& cfg, const TextPhaseConfig& pc, const Tokenizer& tok) {
  std::vector<Topic> out;
  for (const std::string& name : pc.topics) {
    Corpus c = read_corpus((fs::path(pc.dir) / name).string(), cfg.get_real("data.max_nul_share"),
                           cfg.get_real("data.max_binary_share"));
    if (pc.max_bytes > 0 && int64_t(c.text.size()) > pc.max_bytes) c.text.resize(size_t(pc.max_bytes));
    c.enwik8 = false;  // a topic is never the enwik8 benchmark file
    TextSplits s = split_text(c, cfg.get_real("data.val_fraction"), cfg.get_real("data.test_fraction"),
                              cfg.get_int("data.block_size"));
    out.push_back({name, tokenize_split(name + "/train", s.train, tok),
                   tokenize_split(name + "/val", s.val, tok)});
  }
  return out;
}

// AdamW or Adam with the train.* hyperparameters (train_loop.cpp's make_optimizer, which is
// file-local there).
std::vector<double> from_json(const json& a) {  // null (a NaN written out) back to NaN
  std::vector<double> v;
  for (const json& x : a) v.push_back(x.is_null() ? NAN : x.get<double>());
  return v;
}

// ---------------------------------------------------------------- writers

std::string num(double v) { return std::isfinite(v) ? fmt::format("{:.6g}", v) : std::string(); }

void write_csv(const std::string& path, const TextPhaseResult& r) {
  std::ofstream f(path);
  ENGRAM_CHECK(f.good(), "cannot write {}", path);
  f << "phase,trained";
  for (const std::string& t : r.topics) f << "," << t;
  f << "\n";
  if (!r.before.empty()) {
    f << "0,before";
    for (double v : r.before) f << "," << num(v);
    f << "\n";
  }
  for (size_t i = 0; i < r.loss.size(); ++i) {
    f << i + 1 << "," << r.topics[i];
    for (double v : r.loss[i]) f << "," << num(v);
    f << "\n";
  }
  ENGRAM_CHECK(f.good(), "cannot write {}", path);
}

void write_json(const std::string& path, const TextPhaseResult& r, const Config& cfg,
                const std::string& kind) {
  auto bpc = [](std::vector<double> v) {
    for (double& x : v) x /= std::numbers::ln2;
    return v;
  };
  nlohmann::ordered_json j;  // members in the order written: topics and matrix first
  j["topics"] = r.topics;
  j["loss_unit"] = "nats per byte (bpc = loss / ln 2)";
  j["before"] = r.before;
  j["loss"] = r.loss;
  json b = json::array();
  for (const auto& row : r.loss) b.push_back(bpc(row));
  j["bpc"] = b;
  const TextPhaseMetrics& m = r.metrics;
  j["metrics"] = {{"phases", m.phases}, {"avg_loss", m.avg_loss}, {"avg_bpc", m.avg_loss / std::numbers::ln2},
                  {"avg_learned_loss", m.avg_learned_loss}, {"bwt", m.bwt},
                  {"forgetting", m.forgetting}, {"fwt", m.fwt}, {"drop", m.drop},
                  {"forgetting_per_topic", m.forgetting_per_topic}};
  j["train_loss"] = r.train_loss;
  j["phase_seconds"] = r.phase_seconds;
  j["topic_train_bytes"] = r.topic_bytes;
  j["model"] = kind;
  j["parameters"] = r.parameters;
  j["steps_per_phase"] = r.steps_per_phase;
  j["seed"] = cfg.get_int("train.seed");
  j["config"] = cfg.to_yaml();
  std::ofstream f(path);
  f << j.dump(2) << "\n";  // NaN (not measured) is written as null
  ENGRAM_CHECK(f.good(), "cannot write {}", path);
}

// Val loss of every topic against the phases trained (1..T), one line per topic.
std::string write_forgetting_plot(const std::string& dir, const TextPhaseResult& r) {
  CurvePlot p{"forgetting_curves", "Val loss per topic after each phase", "phases trained",
              "val loss (nats/byte)", {}, {}, 0, 1};
  double lo = INFINITY, hi = -INFINITY;
  for (size_t i = 0; i < r.loss.size(); ++i) p.x.push_back(double(i + 1));
  for (size_t j = 0; j < r.topics.size(); ++j) {
    CurveSeries s{r.topics[j], {}};
    for (const auto& row : r.loss) {
      s.y.push_back(row[j]);
      if (std::isfinite(row[j])) lo = std::min(lo, row[j]), hi = std::max(hi, row[j]);
    }
    p.series.push_back(std::move(s));
  }
  if (std::isfinite(lo)) {
    const double pad = std::max(0.05, 0.1 * (hi - lo));
    p.ymin = std::floor((lo - pad) * 10) / 10, p.ymax = std::ceil((hi + pad) * 10) / 10;
  }
  return write_curve_plot(dir, p);
}

// ---------------------------------------------------------------- resume

struct Resumed {
  int64_t phases_done = 0;
  nn::Metadata meta;
};

// Checks that `path` is a phase checkpoint of this config (only run.* and train.anomaly may
// differ) over the same data, and reads its rows into r.
Resumed read_resume(const std::string& path, const Config& cfg, TextPhaseResult& r) {
  Resumed out;
  out.meta = nn::load_safetensors(path).metadata;
  const nn::Metadata& m = out.meta;
  ENGRAM_CHECK(m.count("text_phases.phase") && m.count("text_phases.rows"), "resume '{}' is not a "
               "phase checkpoint of run_text_phases (no text_phases.* metadata)", path);
  const Config saved = checkpoint_config(path, cfg.schema_ptr());
  for (const std::string& key : cfg.diff(saved))
    ENGRAM_CHECK(key.starts_with("run.") || key == "train.anomaly", "resume '{}': '{}' cannot change "
                 "when resuming (checkpoint: {}, now: {})", path, key, saved.value_str(key),
                 cfg.value_str(key));
  const std::vector<int64_t> bytes = json::parse(m.at("text_phases.topic_bytes")).get<std::vector<int64_t>>();
  ENGRAM_CHECK(bytes == r.topic_bytes, "resume '{}': the topics' data changed since the checkpoint "
               "(train bytes then [{}], now [{}])", path, fmt::join(bytes, ", "),
               fmt::join(r.topic_bytes, ", "));
  out.phases_done = std::stoll(m.at("text_phases.phase"));
  const json rows = json::parse(m.at("text_phases.rows"));
  ENGRAM_CHECK(out.phases_done >= 1 && out.phases_done <= int64_t(r.topics.size()) &&
                   int64_t(rows.size()) == out.phases_done,
               "resume '{}': malformed text_phases metadata (phase {}, {} rows)", path,
               out.phases_done, rows.size());
  for (int64_t i = 0; i < out.phases_done; ++i) r.loss[size_t(i)] = from_json(rows[size_t(i)]);
  r.before = from_json(json::parse(m.at("text_phases.before")));
  r.train_loss = from_json(json::parse(m.at("text_phases.train_loss")));
  r.phase_seconds = from_json(json::parse(m.at("text_phases.seconds")));
  return out;
}

}  // namespace

// ---------------------------------------------------------------- the run

namespace {

// What the phases train with, built once for the whole run (the one optimizer among it).
struct PhaseLearner {
  std::unique_ptr<LanguageModel> lm;
  std::vector<Tensor> params;
  std::unique_ptr<nn::Optimizer> opt;
  nn::LRSchedule schedule;
  std::unique_ptr<nn::DynamicLossScaler> scaler;  // null with train.loss_scaling off
};

// phases.steps steps on one topic's train stream (the header's protocol); returns the mean of
// the last (up to) 20 step losses. `first_step` is the global index of its first step.
double train_phase(PhaseLearner& p, const Config& cfg, const StreamBatcher& data, int64_t steps,
                   int64_t first_step, const std::string& what) {
  const int64_t B = data.batch();
  const double clip = cfg.get_real("train.grad_clip");
  const bool carry = cfg.get_bool("train.carry_state");
  LanguageModel& lm = *p.lm;
  LMState state = lm.initial_state(B);  // the previous topic's stream has ended
  std::deque<double> recent;
  for (int64_t k = 0, batch = 0; k < steps; ++k, ++batch) {
    if (batch == data.batches_per_epoch()) batch = 0, state = lm.initial_state(B);  // wrap around
    if (!carry) state = lm.initial_state(B);
    const Batch b = data.get(batch);
    p.schedule.apply(*p.opt, first_step + k);
    Tensor logits = lm.forward(b.inputs, state);
    Tensor loss = cross_entropy(reshape(logits, {-1, logits.size(2)}), reshape(b.targets, {-1}),
                                kIgnoreIndex);
    Tensor total = loss;
    if (Tensor aux = lm.auxiliary_loss(); aux.defined()) total = add(loss, aux);
    p.opt->zero_grad();
    backward(p.scaler ? p.scaler->scale_loss(total) : total);
    if (p.scaler) p.scaler->unscale(*p.opt);
    const double norm = nn::clip_grad_norm(p.params, clip > 0 ? clip : INFINITY);
    if (p.scaler) {  // skips the step when a gradient is Inf/NaN
      p.scaler->step(*p.opt);
      p.scaler->update();
    } else {
      p.opt->step();
    }
    lm.detach_state(state);  // truncated backprop through time
    const double l = loss.item();
    ENGRAM_CHECK(std::isfinite(l) && (p.scaler || std::isfinite(norm)), "training diverged in {} "
                 "at step {}: loss {}, gradient norm {} (lower train.lr, or turn train.grad_clip/"
                 "train.loss_scaling on)", what, first_step + k + 1, l, norm);
    recent.push_back(l);
    if (recent.size() > 20) recent.pop_front();
  }
  return std::accumulate(recent.begin(), recent.end(), 0.0) / double(recent.size());
}

// <dir>/checkpoints/phase_<done>.safetensors: everything the next phases depend on.
void save_phase_checkpoint(const std::string& dir, int64_t done, PhaseLearner& p, Generator& rng,
                           const Config& cfg, const TextPhaseResult& r) {
  json rows = json::array();
  for (int64_t l = 0; l < done; ++l) rows.push_back(r.loss[size_t(l)]);
  const std::string path =
      (fs::path(dir) / "checkpoints" / fmt::format("phase_{}.safetensors", done)).string();
  nn::save_checkpoint(path, p.lm->module(), {p.opt.get(), p.scaler.get(), &rng},
                      {{"app", cfg.schema().name()}, {"model", p.lm->kind()},
                       {"config", cfg.to_yaml()}, {"text_phases.phase", std::to_string(done)},
                       {"text_phases.rows", rows.dump()},
                       {"text_phases.before", json(r.before).dump()},
                       {"text_phases.train_loss", json(r.train_loss).dump()},
                       {"text_phases.seconds", json(r.phase_seconds).dump()},
                       {"text_phases.topic_bytes", json(r.topic_bytes).dump()}});
}

}  // namespace

TextPhaseResult run_text_phases(const Config& cfg, const std::string& out_dir,
                                const std::string& resume, std::FILE* log) {
  struct AnomalyScope {  // train.anomaly for this run only, as the LM trainer does
    bool before = anomaly_mode();
    explicit AnomalyScope(bool on) { set_anomaly_mode(on || before); }
    ~AnomalyScope() { set_anomaly_mode(before); }
  } anomaly(cfg.get_bool("train.anomaly"));
  const TextPhaseConfig pc = text_phase_config(cfg);
  const int64_t T = int64_t(pc.topics.size()), B = cfg.get_int("train.batch"),
                S = cfg.get_int("train.seq_len");
  const std::string dir = out_dir.empty() ? cfg.get_string("run.out") : out_dir;

  // Data first, so a topic too small for B streams fails before anything is built.
  std::unique_ptr<Tokenizer> tok = make_byte_tokenizer();
  const std::vector<Topic> topics = read_topics(cfg, pc, *tok);
  std::vector<StreamBatcher> train, val;
  for (const Topic& t : topics) {
    train.emplace_back(t.train, B, S);
    val.emplace_back(t.val, B, S);
    check_split(train.back(), tok->vocab_size(), cfg.get_real("data.max_pad_share"));
    // A val split may be mostly padding (a small topic cut into B streams): that costs compute,
    // not correctness, since the loss skips padded targets and divides by the real ones.
    check_split(val.back(), tok->vocab_size(), 1.0);
  }
  TextPhaseResult r;
  r.topics = pc.topics;
  r.loss.assign(size_t(T), std::vector<double>(size_t(T), NAN));
  r.steps_per_phase = pc.steps;
  r.run_dir = dir;
  for (const Topic& t : topics) r.topic_bytes.push_back(t.train.chars);

  // The model, one optimizer, one schedule and the loss scaler, for all phases.
  Generator rng(uint64_t(cfg.get_int("train.seed")));
  PhaseLearner p;
  p.lm = make_language_model(cfg, tok->vocab_size(), &rng);
  p.params = p.lm->module().parameters();
  p.opt = make_optimizer(cfg, p.params);
  const int64_t total = T * pc.steps, warmup = std::min(cfg.get_int("train.warmup"), total);
  // constant: warmup_cosine whose floor is the peak lr itself
  p.schedule = nn::LRSchedule::warmup_cosine(warmup, total, cfg.get_real(
      pc.schedule == "constant" ? "train.lr" : "train.min_lr"));
  if (cfg.get_bool("train.loss_scaling")) p.scaler = std::make_unique<nn::DynamicLossScaler>();
  r.parameters = p.lm->module().num_parameters();

  if (!resume.empty()) {
    r.first_phase = read_resume(resume, cfg, r).phases_done;
    nn::load_checkpoint(resume, p.lm->module(), {p.opt.get(), p.scaler.get(), &rng}, true);
  } else if (pc.eval_before) {
    for (const StreamBatcher& v : val) r.before.push_back(evaluate(*p.lm, v, pc.eval_batches).loss);
  }
  fs::create_directories(fs::path(dir) / "checkpoints");
  std::ofstream(fs::path(dir) / "config.yaml") << cfg.to_yaml();
  fmt::print(log, "{}: {} model, {} parameters | {} phases of {} steps, [{}, {}] batches | "
             "topics {} ({} train bytes) | {} lr={} {}, clip={}{}\n", cfg.schema().name(),
             p.lm->kind(), r.parameters, T, pc.steps, B, S, fmt::join(pc.topics, ","),
             fmt::join(r.topic_bytes, ","), p.opt->type_name(), cfg.get_real("train.lr"),
             pc.schedule == "constant" ? fmt::format("constant after {} warmup steps", warmup)
                                       : p.schedule.str(),
             cfg.get_real("train.grad_clip"),
             resume.empty() ? "" : fmt::format(" | resumed after phase {} from {}", r.first_phase,
                                               resume));
  std::fflush(log);

  for (int64_t i = r.first_phase; i < T; ++i) {
    const std::string& name = pc.topics[size_t(i)];
    const auto t0 = std::chrono::steady_clock::now();
    r.train_loss.push_back(train_phase(p, cfg, train[size_t(i)], pc.steps, i * pc.steps,
                                       fmt::format("phase {} ({})", i + 1, name)));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.phase_seconds.push_back(seconds);
    std::string vals;
    for (int64_t j = 0; j < T; ++j) {
      r.loss[size_t(i)][size_t(j)] = evaluate(*p.lm, val[size_t(j)], pc.eval_batches).loss;
      vals += fmt::format(" {} {:.4f}", pc.topics[size_t(j)], r.loss[size_t(i)][size_t(j)]);
    }
    r.metrics = text_phase_metrics(r.loss, r.before, i);
    fmt::print(log, "phase {}/{} {}: train {:.4f} | val{} | seen {:.4f} | forgetting {} | "
               "{:.1f}s, {:.0f} tok/s\n", i + 1, T, name, r.train_loss.back(), vals,
               r.metrics.avg_loss, i == 0 ? "-" : fmt::format("{:.4f}", r.metrics.forgetting),
               seconds, double(pc.steps * B * S) / std::max(seconds, 1e-9));
    std::fflush(log);
    // after the evaluations, so the saved RNG is the one the next phase starts from
    if (pc.checkpoint) save_phase_checkpoint(dir, i + 1, p, rng, cfg, r);
    write_csv((fs::path(dir) / "loss_matrix.csv").string(), r);
    write_json((fs::path(dir) / "text_phases.json").string(), r, cfg, p.lm->kind());
  }
  if (r.first_phase == T) r.metrics = text_phase_metrics(r.loss, r.before, T - 1);
  r.plot = cfg.get_bool("run.plots") ? write_forgetting_plot(dir, r) : "off (run.plots=false)";
  fmt::print(log, "loss matrix: {}/loss_matrix.csv | summary: {}/text_phases.json | plot: {}\n",
             dir, dir, r.plot);
  std::fflush(log);
  return r;
}

std::string text_phase_final_line(const TextPhaseResult& r) {
  const TextPhaseMetrics& m = r.metrics;
  return fmt::format("final: {} phases | loss {:.4f} (bpc {:.3f}) | learned {:.4f} | forgetting {:.4f} "
                     "| bwt {:+.4f} | fwt {:+.4f} | {} parameters", m.phases, m.avg_loss,
                     m.avg_loss / std::numbers::ln2, m.avg_learned_loss, m.forgetting, m.bwt, m.fwt,
                     r.parameters);
}

}  // namespace engram::apps
