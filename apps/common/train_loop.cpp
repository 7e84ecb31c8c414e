// apps/common/train_loop.cpp — train_language_model (see trainer.h), in named steps:
//
//   read_resume_checkpoint    check the checkpoint a run resumes from (if any)
//   TrainingRun(...)          data, model, optimizer, schedule, loss scaler
//   restore_position          step 0, or the checkpoint's parameters, optimizer, RNG, position
//   open_run_dir              config.yaml, tokenizer.txt, metrics files
//   print_banner              what is trained on what, and how
//   train_step / log_step / evaluate_and_checkpoint, once per step
//   finish                    final validation, checkpoint, model.safetensors, plots, sample
//
// Data parallel (--distributed under mpirun, nn/distributed.h): train.batch is the global batch;
// rank r trains on streams [r*b, (r+1)*b) of it (b = train.batch / ranks), its loss weighted as
// its share of the global mean, and the gradients are summed across ranks during backward, so N
// ranks take exactly the steps of one process on the whole batch. Validation is split the same
// way and reduced. Only rank 0 prints and writes (metrics, plots, checkpoints, the sample);
// checkpoints hold the whole batch's carried state (gathered from every rank), so a run resumes
// on any number of ranks that divides train.batch.
//
// The settings, the evaluation and the checkpoint's config are in trainer.cpp.
#include <nlohmann/json.hpp>

#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <numeric>
#include <optional>

#include "apps/common/metrics.h"
#include "autograd/tape.h"
#include "nn/ssm/mixer.h"
#include "apps/common/trainer.h"
#include "core/backend.h"
#include "nn/distributed.h"
#include "nn/optim.h"
#include "nn/schedule.h"

namespace engram::apps {

namespace fs = std::filesystem;
namespace dist = nn::dist;

namespace {

struct LMData {
  std::unique_ptr<Tokenizer> tokenizer;
  TokenSplit train, val;
  int64_t corpus_bytes = 0, files = 0;
};

// Corpus -> split -> tokenizer (the checkpoint's, a saved file, or built from the train split)
// -> token ids.
LMData prepare_data(const Config& cfg, const nn::Metadata* checkpoint) {
  Corpus corpus = read_corpus(cfg.get_string("data.path"), cfg.get_real("data.max_nul_share"),
                              cfg.get_real("data.max_binary_share"));
  TextSplits text = split_text(corpus, cfg.get_real("data.val_fraction"),
                               cfg.get_real("data.test_fraction"), cfg.get_int("data.block_size"));
  LMData d;
  d.corpus_bytes = int64_t(corpus.text.size());
  d.files = int64_t(corpus.files.size());
  const std::string kind = cfg.get_string("data.tokenizer");
  const std::string file = cfg.get_string("data.tokenizer_file");
  if (checkpoint && checkpoint->count("tokenizer"))
    d.tokenizer = deserialize_tokenizer(checkpoint->at("tokenizer"), "checkpoint tokenizer");
  else if (!file.empty())
    d.tokenizer = load_tokenizer(file);
  else if (kind == "word" || kind == "sentencepiece") {
    // built once, by rank 0, so that every rank of a distributed run has the same vocabulary
    std::string built;
    if (dist::is_lead()) {
      d.tokenizer = kind == "word" ? build_word_tokenizer(text.train, cfg.get_int("data.vocab_size"),
                                                          cfg.get_int("data.min_freq"))
                                   : train_sentencepiece_tokenizer(text.train, cfg.get_int("data.vocab_size"));
      if (dist::size() > 1) built = d.tokenizer->serialize();
    }
    if (dist::size() > 1) {
      built = dist::broadcast_string(built, "rank 0's tokenizer");
      if (!dist::is_lead()) d.tokenizer = deserialize_tokenizer(built, "rank 0's tokenizer");
    }
  } else {
    d.tokenizer = make_byte_tokenizer();
  }
  d.train = tokenize_split("train", text.train, *d.tokenizer);
  d.val = tokenize_split("val", text.val, *d.tokenizer);
  return d;
}

// A training checkpoint is an nn checkpoint (parameters, buffers, "optim.*", "scaler.*", and the
// optimizer's and RNG's metadata under nn/checkpoint.h's key names) plus the carried state under
// "carry.*", so nn::load_checkpoint restores everything but the carry, read back separately.
void save_training_checkpoint(const std::string& path, LanguageModel& lm, const nn::Optimizer& opt,
                              const nn::DynamicLossScaler* scaler, const Generator& rng,
                              const LMState& carry, nn::Metadata meta) {
  nn::NamedTensors all = lm.module().named_parameters();
  for (auto& [name, b] : lm.module().named_buffers())
    if (b.defined()) all.emplace_back(name, b);
  nn::NamedTensors o = opt.state_tensors("optim");
  all.insert(all.end(), o.begin(), o.end());
  if (scaler) {
    nn::NamedTensors s = scaler->state_tensors("scaler");
    all.insert(all.end(), s.begin(), s.end());
  }
  for (auto& [name, t] : carry)
    if (t.defined()) all.emplace_back("carry." + name, t);
  meta["format"] = "pt";
  meta["engram.optimizer"] = opt.hyperparams_json();
  meta["engram.rng"] = rng.state();
  nn::save_safetensors(path, all, meta);
}

LMState load_training_checkpoint(const std::string& path, LanguageModel& lm, nn::Optimizer& opt,
                                 nn::DynamicLossScaler* scaler, Generator& rng, int64_t batch) {
  nn::LoadReport report = nn::load_checkpoint(path, lm.module(), {&opt, scaler, &rng}, false);
  std::vector<std::string> problems;
  for (auto& k : report.missing_keys) problems.push_back("missing " + k);
  for (auto& k : report.mismatched_keys) problems.push_back("mismatched " + k);
  for (auto& k : report.unexpected_keys)
    if (!k.starts_with("carry.")) problems.push_back("unexpected " + k);
  ENGRAM_CHECK(problems.empty(), "--resume '{}' does not fit this model: {}", path,
               fmt::join(problems, "; "));
  LMState carry;
  for (auto& [name, t] : nn::load_safetensors(path).tensors)
    if (name.starts_with("carry.")) carry.emplace_back(name.substr(6), t);
  LMState expect = lm.initial_state(batch);
  if (expect.empty()) return carry;  // a state of varying shape (the Transformer's context)
  ENGRAM_CHECK(carry.size() == expect.size(), "--resume '{}': {} carried state tensors, the model "
               "has {}", path, carry.size(), expect.size());
  for (size_t i = 0; i < carry.size(); ++i)
    ENGRAM_CHECK(carry[i].first == expect[i].first && carry[i].second.shape() == expect[i].second.shape(),
                 "--resume '{}': carried state '{}' {} does not match the model's '{}' {}", path,
                 carry[i].first, shape_str(carry[i].second.shape()), expect[i].first,
                 shape_str(expect[i].second.shape()));
  return carry;
}

int64_t meta_int(const nn::Metadata& m, const std::string& key, const std::string& path) {
  ENGRAM_CHECK(m.count(key), "checkpoint '{}': metadata '{}' missing", path, key);
  try {
    return std::stoll(m.at(key));
  } catch (...) {
    ENGRAM_FAIL("checkpoint '{}': metadata '{}' is not an integer: '{}'", path, key, m.at(key));
  }
}

std::string tensor_stats(const Tensor& t) {
  std::vector<double> v = t.to_vector<double>();
  double sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY;
  for (double x : v) sum += x, sq += x * x, lo = std::min(lo, x), hi = std::max(hi, x);
  const double n = double(std::max<size_t>(1, v.size())), mean = sum / n;
  return fmt::format("{:<16} mean {:+.4f}  std {:.4f}  min {:+.4f}  max {:+.4f}", shape_str(t.shape()),
                     mean, std::sqrt(std::max(0.0, sq / n - mean * mean)), lo, hi);
}

// --trace, before the first step: the batch as ids and text, then every stage's output.
void trace_batch(ProgressLine& out, const Batch& b, const Tokenizer& tok) {
  const int64_t T = b.inputs.size(1), n = std::min<int64_t>(T, 32);
  std::vector<int64_t> in = b.inputs.to_vector<int64_t>(), tg = b.targets.to_vector<int64_t>();
  std::string ids, pieces, targets;
  std::vector<int32_t> row(in.begin(), in.begin() + T);
  for (int64_t t = 0; t < n; ++t) {
    ids += fmt::format(" {}", in[t]);
    pieces += fmt::format(" '{}'", tok.token_repr(int32_t(in[t])));
    targets += fmt::format(" {}", tg[t]);
  }
  out.print(fmt::format("trace: batch inputs {} targets {} ({} real targets, {} padding); row 0, "
                        "first {} tokens:", shape_str(b.inputs.shape()), shape_str(b.targets.shape()),
                        b.real_targets, b.pad_targets, n));
  out.print("  ids:    " + ids);
  out.print("  tokens: " + pieces);
  out.print("  targets:" + targets + "   (the inputs shifted by one)");
  std::string text;
  for (int32_t id : row) text += tok.token_repr(id);
  out.print(fmt::format("  row 0 decoded: \"{}\"", text));
}

// Reads the checkpoint `path` a run resumes from and checks that it is a training checkpoint
// whose config differs from `cfg` only where may_change_on_resume allows; "" (a fresh run) gives {}.
nn::Metadata read_resume_checkpoint(const Config& cfg, const std::string& path) {
  if (path.empty()) return {};
  nn::Metadata ckpt = nn::load_safetensors(path).metadata;
  ENGRAM_CHECK(ckpt.count("train_tokens") && ckpt.count("engram.optimizer"), "--resume '{}' is "
               "not a training checkpoint (no optimizer state or data position; a run's "
               "model.safetensors holds the parameters alone): resume from "
               "<run>/checkpoints/step_N.safetensors", path);
  Config saved = checkpoint_config(path, cfg.schema_ptr());
  for (const std::string& key : cfg.diff(saved))
    ENGRAM_CHECK(may_change_on_resume(key), "--resume '{}': '{}' cannot change when resuming "
                 "(checkpoint: {}, now: {})", path, key, saved.value_str(key), cfg.value_str(key));
  return ckpt;
}

// What one training step hands to the logging after it.
struct StepStats {
  double loss = NAN, lr = NAN, grad_norm = NAN;
  int64_t real_targets = 0;  // the batch's non-pad targets (the throughput counts these)
  bool trace = false;        // --trace and the session's first step
  nn::NamedTensors stages;   // every stage's output, when traced
};

// One training session: what it trains with, where it stands and what it leaves behind. The
// constructor builds the first group; train_language_model calls the steps below in order. It
// holds pointers into itself (the batchers into `data`, the model to `rng`), so it never moves.
struct TrainingRun {
  TrainingRun(const Config& config, const TrainOptions& options, nn::Metadata checkpoint);
  TrainingRun(const TrainingRun&) = delete;
  TrainingRun& operator=(const TrainingRun&) = delete;

  void restore_position();
  void open_run_dir();
  void print_banner();
  StepStats train_step();
  void log_step(const StepStats& s);
  void check_divergence(const StepStats& s);
  void print_trace(const StepStats& s);
  void evaluate_and_checkpoint();
  std::string write_checkpoint();
  LMState gather_carry() const;
  LMState shard_carry(const LMState& whole) const;
  TrainResult finish();
  std::string generate_sample();
  double train_bpc(double loss) const { return loss / std::numbers::ln2 / train_cpt; }

  // What it trains with (built by the constructor, in this order).
  const Config& cfg;
  const TrainOptions& opt;
  const bool resuming;
  const nn::Metadata ckpt;  // the resume checkpoint's metadata ({} for a fresh run)
  const int64_t steps, B, T;  // B: the global batch (all ranks together)
  const bool lead;            // rank 0 (the only rank of a plain run): prints and writes
  const dist::Shard rows;     // this rank's streams of the B
  LMData data;
  const Tokenizer& tok;
  StreamBatcher train, val;
  const double train_cpt;  // characters per token of the train split (for bpc)
  const double clip;
  const bool carry_state;
  Generator rng;
  std::unique_ptr<LanguageModel> lm;
  std::vector<Tensor> params;
  std::unique_ptr<nn::Optimizer> optimizer;
  nn::LRSchedule schedule;
  std::unique_ptr<nn::DynamicLossScaler> scaler;  // null with train.loss_scaling off
  std::unique_ptr<dist::DataParallel> dp;         // with more than one rank
  std::vector<int64_t> carry_batch_dims;          // each carried state tensor's batch dim (ranks > 1)

  // Where it stands: the step done last, and the next batch (epoch, index) to take.
  int64_t step = 0, epoch = 0, batch_index = 0;
  LMState state;
  std::deque<double> recent;  // the last 20 losses (the final line's train_loss)
  int64_t first_step = 1;     // the first step this session runs
  int64_t last_ckpt = -1;     // the step of the last checkpoint written or resumed from
  // Divergence watch (check_divergence): the lowest loss so far, whether
  // the far-above warning was given, and the loss scaler's skips in a row.
  double min_loss = INFINITY;
  bool warned_rise = false;
  int64_t skips_in_a_row = 0, skips_seen = 0;

  // What it leaves behind.
  const std::string dir;
  ProgressLine progress;
  std::optional<MetricsLog> metrics;  // opened by open_run_dir, once the position is known
  TrainResult result;
  double train_seconds = 0, window_loss = 0;  // window: the steps since the last plain line
  double comm_seconds = 0;                    // of train_seconds: inside the gradient all-reduce
  int64_t tokens_done = 0, window_steps = 0;
};

}  // namespace

// AdamW or Adam (train.optimizer) over `params`, with the train.* hyperparameters.
std::unique_ptr<nn::Optimizer> make_optimizer(const Config& cfg, const std::vector<Tensor>& params) {
  const double lr = cfg.get_real("train.lr"), beta2 = cfg.get_real("train.beta2"),
               weight_decay = cfg.get_real("train.weight_decay");
  if (cfg.get_string("train.optimizer") == "adamw")
    return std::make_unique<nn::AdamW>(params, nn::AdamWOptions{lr, 0.9, beta2, 1e-8, weight_decay});
  return std::make_unique<nn::Adam>(params, nn::AdamOptions{lr, 0.9, beta2, 1e-8, weight_decay});
}

// The whole run as its steps, each a function below.
TrainResult train_language_model(const Config& cfg, const TrainOptions& opt) {
  // train.anomaly: every op checks its output for NaN/Inf, for this run only
  struct AnomalyScope {
    bool before = anomaly_mode();
    explicit AnomalyScope(bool on) { set_anomaly_mode(on || before); }
    ~AnomalyScope() { set_anomaly_mode(before); }
  } anomaly(cfg.get_bool("train.anomaly"));
  dist::check_same_as_lead(cfg.to_yaml(), "config");  // every rank trains the same run
  TrainingRun run(cfg, opt, read_resume_checkpoint(cfg, opt.resume));
  run.restore_position();
  run.open_run_dir();
  run.print_banner();
  while (run.step < run.steps) {  // each pass runs step run.step + 1
    const StepStats s = run.train_step();
    run.log_step(s);
    run.evaluate_and_checkpoint();
  }
  return run.finish();
}

namespace {

// The data (tokenizer, splits, batchers, checked), then the model, optimizer, lr schedule and
// loss scaler; the checks run before the model is built, so a bad split fails first.
TrainingRun::TrainingRun(const Config& config, const TrainOptions& options, nn::Metadata checkpoint)
    : cfg(config), opt(options), resuming(!options.resume.empty()), ckpt(std::move(checkpoint)),
      steps(cfg.get_int("train.steps")), B(cfg.get_int("train.batch")),
      T(cfg.get_int("train.seq_len")), lead(dist::is_lead()),
      rows(dist::shard_rows(B, "train.batch (the global batch)")),
      data(prepare_data(cfg, resuming ? &ckpt : nullptr)),
      tok(*data.tokenizer), train(data.train, B, T), val(data.val, B, T),
      train_cpt(data.train.chars_per_token()), clip(cfg.get_real("train.grad_clip")),
      carry_state(cfg.get_bool("train.carry_state")), rng(uint64_t(cfg.get_int("train.seed"))),
      dir(cfg.get_string("run.out")),
      progress(steps, cfg.get_int("train.log_every"), dist::lead_output(opt.out)) {
  check_split(train, tok.vocab_size(), cfg.get_real("data.max_pad_share"));
  check_split(val, tok.vocab_size(), cfg.get_real("data.max_pad_share"));
  if (dist::size() > 1) train.set_rows(rows.begin, rows.count), val.set_rows(rows.begin, rows.count);
  lm = make_language_model(cfg, tok.vocab_size(), &rng);
  params = lm->module().parameters();
  optimizer = make_optimizer(cfg, params);
  schedule = nn::LRSchedule::warmup_cosine(std::min(cfg.get_int("train.warmup"), steps), steps,
                                           cfg.get_real("train.min_lr"));
  if (cfg.get_bool("train.loss_scaling")) scaler = std::make_unique<nn::DynamicLossScaler>();
}

// Where the session starts: step 0 with a fresh state, or (resuming) everything the checkpoint
// saved — parameters, optimizer, scaler, RNG, carried state, step, data position, last losses.
void TrainingRun::restore_position() {
  if (dist::size() > 1) {  // the batch dim of each carried tensor: where B and b differ
    LMState whole = lm->initial_state(B), mine = lm->initial_state(rows.count);
    for (size_t i = 0; i < whole.size(); ++i) {
      int64_t dim = -1;
      for (int64_t d = 0; d < whole[i].second.dim(); ++d)
        if (whole[i].second.size(d) != mine[i].second.size(d)) dim = d;
      ENGRAM_CHECK(dim >= 0, "--distributed: the carried state '{}' {} has no batch dimension (it "
                   "is shared by all streams), so ranks training on their own streams would "
                   "diverge; this model cannot be trained data-parallel", whole[i].first,
                   shape_str(whole[i].second.shape()));
      carry_batch_dims.push_back(dim);
    }
  }
  state = lm->initial_state(rows.count);
  if (resuming) {
    ENGRAM_CHECK(meta_int(ckpt, "train_tokens", opt.resume) == int64_t(data.train.ids.size()),
                 "--resume '{}': the training data changed since the checkpoint ({} tokens then, "
                 "{} now)", opt.resume, ckpt.at("train_tokens"), data.train.ids.size());
    state = shard_carry(load_training_checkpoint(opt.resume, *lm, *optimizer, scaler.get(), rng, B));
    step = meta_int(ckpt, "step", opt.resume);
    ENGRAM_CHECK(step <= steps, "--resume '{}': the checkpoint is at step {}, beyond train.steps={}: "
                 "pass --steps N with N >= {}", opt.resume, step, steps, step);
    epoch = meta_int(ckpt, "epoch", opt.resume);
    batch_index = meta_int(ckpt, "batch", opt.resume);
    for (auto& l : nlohmann::json::parse(ckpt.count("recent_losses") ? ckpt.at("recent_losses") : "[]"))
      recent.push_back(l.get<double>());
  }
  first_step = step + 1;
  last_ckpt = resuming ? step : -1;
  if (dist::size() > 1) {
    dp = std::make_unique<dist::DataParallel>(lm->module());  // rank 0's parameters everywhere
  }
}

// The whole batch's carried state from every rank's streams (ranks > 1: every rank calls it).
LMState TrainingRun::gather_carry() const {
  if (dist::size() == 1 || carry_batch_dims.empty()) return state;
  LMState whole;
  for (size_t i = 0; i < state.size(); ++i)
    whole.emplace_back(state[i].first, dist::allgather_cat(state[i].second, carry_batch_dims[i],
                                                           "checkpoint: carried state"));
  return whole;
}

// This rank's streams of a whole batch's carried state (a checkpoint's).
LMState TrainingRun::shard_carry(const LMState& whole) const {
  if (dist::size() == 1 || carry_batch_dims.empty()) return whole;
  LMState mine;
  for (size_t i = 0; i < whole.size(); ++i)
    mine.emplace_back(whole[i].first, contiguous(raw::narrow(whole[i].second, carry_batch_dims[i],
                                                        rows.begin, rows.count)));
  return mine;
}

// The run directory with config.yaml and tokenizer.txt, and the metrics files (a resumed run
// keeps their rows up to its step, so they read as one uninterrupted run).
void TrainingRun::open_run_dir() {
  if (!lead) return;
  fs::create_directories(fs::path(dir) / "checkpoints");
  std::ofstream(fs::path(dir) / "config.yaml") << cfg.to_yaml();
  tok.save((fs::path(dir) / "tokenizer.txt").string());
  metrics.emplace(dir, resuming ? step : -1);
}

// Two lines on the model, data and optimizer, and for the word tokenizer a note on its <unk>s.
void TrainingRun::print_banner() {
  progress.print(fmt::format(
      "{}: {} model, {} parameters | data {} ({} files, {} bytes) | {} tokenizer, vocab {} | "
      "train {} tokens ({} batches of [{}, {}] per epoch), val {} tokens | {} threads{}",
      cfg.schema().name(), lm->kind(), lm->module().num_parameters(), cfg.get_string("data.path"),
      data.files, data.corpus_bytes, tok.kind(), tok.vocab_size(), data.train.ids.size(),
      train.batches_per_epoch(), B, T, data.val.ids.size(), num_threads(),
      dist::size() > 1 ? fmt::format(" per rank, {} ranks x batch {} (data parallel, {} gradient "
                                     "buckets of {:.2f} MB in all)", dist::size(), rows.count,
                                     dp->buckets(), double(dp->gradient_bytes()) / 1e6)
                       : std::string()));
  progress.print(fmt::format("{} {} lr={} {}, clip={}, loss scaling {}, run dir {}{}",
                             optimizer->type_name(), steps, cfg.get_real("train.lr"), schedule.str(),
                             clip, scaler ? "on" : "off", dir,
                             resuming ? fmt::format(", resumed at step {} from {}", step, opt.resume)
                                      : ""));
  if (tok.kind() == "word") {
    const double unk = double(std::count(data.val.ids.begin(), data.val.ids.end(), 0));
    progress.print(fmt::format("note: {:.1f}% of the val tokens are <unk>; word-level bpc does not "
                               "pay for their spelling, so it is a lower bound, not comparable with "
                               "byte-level bpc", 100.0 * unk / double(data.val.ids.size())));
  }
}

// Runs step step+1: the next batch (fresh streams at an epoch boundary), the scheduled lr,
// forward, loss, backward of the scaled loss, unscale, clip, the optimizer step (which the scaler
// skips on Inf/NaN gradients), and the cut of the carried state's graph (truncated BPTT).
StepStats TrainingRun::train_step() {
  using clock = std::chrono::steady_clock;
  ++step;
  auto t0 = clock::now();
  if (batch_index == train.batches_per_epoch()) {  // epoch boundary: start the streams afresh
    ++epoch, batch_index = 0;
    state = lm->initial_state(rows.count);
  }
  Batch batch = train.get(batch_index++);
  // Dropout and the models' other draws on ranks > 0: a stream of their own, seeded by (seed,
  // rank, step) so that a resumed run draws what the interrupted one would have (rank 0 keeps
  // the plain run's generator, which the checkpoint saves).
  if (!lead) rng.manual_seed(uint64_t(cfg.get_int("train.seed")) * 0x9E3779B97F4A7C15ull +
                             uint64_t(dist::rank()) * 0xBF58476D1CE4E5B9ull + uint64_t(step));
  if (!carry_state) state = lm->initial_state(rows.count);
  StepStats s;
  s.trace = opt.trace && step == first_step;
  if (s.trace) trace_batch(progress, batch, tok);
  schedule.apply(*optimizer, step - 1);

  Tensor logits;
  {
    // the state is detached after the step (below), so a graph behind it would only hold memory
    // through the backward: the layers hand it back as values (nn/ssm/mixer.h)
    nn::ssm::NoStateGradGuard state_values_only;
    logits = s.trace ? lm->forward_traced(batch.inputs, state, s.stages)
                     : lm->forward(batch.inputs, state);
  }
  Tensor loss = cross_entropy(reshape(logits, {-1, logits.size(2)}), reshape(batch.targets, {-1}),
                              kIgnoreIndex);
  // With ranks, this rank's share of the global mean: its targets' loss sum / all ranks' targets
  // (the auxiliary terms, means over rows, by this rank's share of the rows).
  const double share = dp ? double(batch.real_targets) / double(batch.global_real_targets) : 1.0;
  if (dp) loss = mul(loss, share);
  Tensor total = loss;
  if (Tensor aux = lm->auxiliary_loss(); aux.defined())
    total = add(loss, dp ? mul(aux, double(rows.count) / double(B)) : aux);
  optimizer->zero_grad();
  if (dp) {
    dp->backward(scaler ? scaler->scale_loss(total) : total);
    comm_seconds += dp->last_comm_seconds();
  } else {
    backward(scaler ? scaler->scale_loss(total) : total);
  }
  if (scaler) scaler->unscale(*optimizer);
  s.grad_norm = nn::clip_grad_norm(params, clip > 0 ? clip : INFINITY);
  if (scaler) {
    scaler->step(*optimizer);
    scaler->update();
  } else {
    optimizer->step();
  }
  lm->detach_state(state);
  train_seconds += std::chrono::duration<double>(clock::now() - t0).count();

  s.loss = dp ? dist::allreduce_sum(loss.item(), "the step's loss") : loss.item();
  s.lr = optimizer->param_groups()[0].lr;
  s.real_targets = dp ? batch.global_real_targets : batch.real_targets;
  check_divergence(s);
  return s;
}

// A run that diverges stops here with one line, instead of finishing with a NaN loss and exit 0:
//   - a NaN/Inf loss is an error at once (no checkpoint is written after it, so the last one on
//     disk is the last good state);
//   - a NaN/Inf gradient norm is an error without a loss scaler; with one it is a skipped step,
//     counted, and an error after kMaxSkipsInARow in a row (the scale cannot recover);
//   - a 5-step mean loss far above the lowest loss so far (by max(1 nat, half of it)) is warned
//     about once.
constexpr int64_t kMaxSkipsInARow = 25;

void TrainingRun::check_divergence(const StepStats& s) {
  const std::string last = last_ckpt >= 0
      ? fmt::format("the last good checkpoint is {}/checkpoints/step_{:08d}.safetensors", dir, last_ckpt)
      : std::string("no checkpoint was written yet");
  const std::string hint = "lower train.lr, or turn train.grad_clip/train.loss_scaling on; "
                           "--set train.anomaly=true names the first op that made a NaN";
  ENGRAM_CHECK(std::isfinite(s.loss), "training diverged at step {}: the loss is {} ({}; {})", step,
               s.loss, last, hint);
  if (!std::isfinite(s.grad_norm)) {
    ENGRAM_CHECK(scaler != nullptr, "training diverged at step {}: the gradient norm is {} ({}; {})",
                 step, s.grad_norm, last, hint);
    ++skips_seen;
    ENGRAM_CHECK(++skips_in_a_row < kMaxSkipsInARow, "training diverged at step {}: the loss scaler "
                 "skipped {} steps in a row (gradients Inf/NaN at every scale down to {:g}; {}; {})",
                 step, skips_in_a_row, scaler->scale(), last, hint);
  } else {
    skips_in_a_row = 0;
  }
  // the mean of the last 5 losses (this one included) against the lowest single loss so far
  min_loss = std::min(min_loss, s.loss);
  double mean = s.loss;
  const size_t n = std::min<size_t>(4, recent.size());
  for (size_t i = recent.size() - n; i < recent.size(); ++i) mean += recent[i];
  mean /= double(n + 1);
  if (!warned_rise && n == 4 && mean > min_loss + std::max(1.0, 0.5 * min_loss)) {
    warned_rise = true;
    progress.print(fmt::format("warning: step {}: the 5-step mean loss {:.4f} is far above its "
                               "running minimum {:.4f} (the run may be diverging; {})", step, mean,
                               min_loss, hint));
  }
}

// The step's loss kept (result, last 20 for the checkpoint), a metrics row, the trace of a
// traced step, and the progress line with the mean loss since the last plain line.
void TrainingRun::log_step(const StepStats& s) {
  const double l = s.loss;
  result.losses.push_back(l);
  recent.push_back(l);
  if (recent.size() > 20) recent.pop_front();
  tokens_done += s.real_targets;
  window_loss += l, ++window_steps;
  const double tps = double(tokens_done) / train_seconds;
  if (metrics) metrics->write({step, "train", l, train_bpc(l), std::exp(l), NAN, s.lr, s.grad_norm,
                              tps, train_seconds}, lm->diagnostics());
  if (s.trace) print_trace(s);
  const double mean = window_loss / double(window_steps);
  progress.step(step, mean, train_bpc(mean), tps,
                train_seconds / double(step - first_step + 1) * double(steps - step));
  if (step % cfg.get_int("train.log_every") == 0) window_loss = 0, window_steps = 0;
  if (metrics) metrics->flush();
}

// --trace, after the first step: every stage's output, the loss, gradient norm and lr, and the
// module tree.
void TrainingRun::print_trace(const StepStats& s) {
  progress.print(fmt::format("trace: stage outputs of step {}:", step));
  for (auto& [name, t] : s.stages) progress.print(fmt::format("  {:<12} {}", name, tensor_stats(t)));
  progress.print(fmt::format("trace: loss {:.4f}, gradient norm {:.4f}, lr {:.3g}; modules "
                             "(with their last output shapes):\n{}", s.loss, s.grad_norm, s.lr,
                             lm->module().summary()));
}

// Every eval_every steps a validation on eval_batches batches (not at the last step: finish
// validates then), and every checkpoint_every steps a checkpoint.
void TrainingRun::evaluate_and_checkpoint() {
  const int64_t eval_every = cfg.get_int("train.eval_every"),
                ckpt_every = cfg.get_int("train.checkpoint_every");
  if (eval_every > 0 && step % eval_every == 0 && step != steps) {
    EvalResult v = evaluate(*lm, val, cfg.get_int("train.eval_batches"));
    if (metrics) metrics->write({step, "val", v.loss, v.bpc, v.ppl, v.acc, NAN, NAN, NAN,
                                 train_seconds}, lm->diagnostics());
    progress.print(fmt::format("val @ step {}: loss {:.4f} | bpc {:.3f} | ppl {:.2f} | acc {:.3f} "
                               "({} tokens)", step, v.loss, v.bpc, v.ppl, v.acc, v.tokens));
  }
  if (ckpt_every > 0 && step % ckpt_every == 0) {
    progress.print("checkpoint: " + write_checkpoint());
    last_ckpt = step;
  }
}

// <run>/checkpoints/step_N.safetensors for the current step, with everything `resume` needs in
// its metadata; returns its path.
std::string TrainingRun::write_checkpoint() {
  nlohmann::json losses(std::vector<double>(recent.begin(), recent.end()));
  std::string path = (fs::path(dir) / "checkpoints" / fmt::format("step_{:08d}.safetensors", step)).string();
  const LMState carry = gather_carry();  // a collective: every rank takes part
  if (!lead) return path;
  save_training_checkpoint(path, *lm, *optimizer, scaler.get(), rng, carry,
                           {{"app", cfg.schema().name()}, {"model", lm->kind()},
                            {"config", cfg.to_yaml()}, {"step", std::to_string(step)},
                            {"epoch", std::to_string(epoch)}, {"batch", std::to_string(batch_index)},
                            {"recent_losses", losses.dump()}, {"tokenizer", tok.serialize()},
                            {"train_tokens", std::to_string(data.train.ids.size())}});
  return path;
}

// The end: the final validation (final_eval_batches, 0 = the whole val split), a checkpoint
// unless this step has one, model.safetensors (the parameters alone), the plots and the sample.
TrainResult TrainingRun::finish() {
  progress.finish();
  result.step = step;
  result.parameters = lm->module().num_parameters();
  result.run_dir = dir;
  result.tokens_per_s = train_seconds > 0 ? double(tokens_done) / train_seconds : NAN;
  if (!recent.empty()) result.train_loss = std::accumulate(recent.begin(), recent.end(), 0.0) /
                                           double(recent.size());
  result.val = evaluate(*lm, val, cfg.get_int("train.final_eval_batches"));
  if (metrics) {
    metrics->write({step, "val", result.val.loss, result.val.bpc, result.val.ppl, result.val.acc,
                    NAN, NAN, NAN, train_seconds}, lm->diagnostics());
    metrics->flush();
  }
  if (dp)
    progress.print(fmt::format("data parallel: {} ranks, gradient all-reduce {:.1f} s of {:.1f} s "
                               "training ({:.1f}%), {:.2f} MB per rank per step", dist::size(),
                               comm_seconds, train_seconds, 100.0 * comm_seconds / train_seconds,
                               double(dp->gradient_bytes()) / 1e6));
  if (skips_seen > 0)
    progress.print(fmt::format("loss scaler: skipped {} of the {} steps of this session (Inf/NaN "
                               "gradients; the scale is now {:g})", skips_seen, step - first_step + 1,
                               scaler->scale()));
  if (last_ckpt != step) progress.print("checkpoint: " + write_checkpoint());
  if (!lead) return std::move(result);
  const std::string model_path = (fs::path(dir) / "model.safetensors").string();
  nn::save_checkpoint(model_path, lm->module(), {}, {{"app", cfg.schema().name()},
                      {"model", lm->kind()}, {"config", cfg.to_yaml()}, {"step", std::to_string(step)}});
  progress.print(fmt::format("model: {} | metrics: {}", model_path, metrics->csv_path()));
  if (cfg.get_bool("run.plots")) progress.print(write_plots(dir));
  if (cfg.get_int("sample.length") > 0) result.sample = generate_sample();
  return std::move(result);
}

// sample.length tokens drawn after sample.prompt ("\n" when empty) from a generator seeded with
// sample.seed; returns the prompt and the generated text.
std::string TrainingRun::generate_sample() {
  std::string prompt = cfg.get_string("sample.prompt");
  if (prompt.empty()) prompt = "\n";
  std::vector<int32_t> ids = tok.encode(prompt);
  Generator sampler(uint64_t(cfg.get_int("sample.seed")));
  std::vector<int32_t> gen = generate(*lm, ids, cfg.get_int("sample.length"),
                                      cfg.get_real("sample.temperature"), sampler);
  return prompt + tok.decode(gen);
}

}  // namespace

}  // namespace engram::apps
