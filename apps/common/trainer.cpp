// apps/common/trainer.cpp — see trainer.h.
#include "apps/common/trainer.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <numbers>

#include "apps/common/metrics.h"
#include "core/backend.h"
#include "nn/optim.h"
#include "nn/schedule.h"

namespace engram::apps {

namespace fs = std::filesystem;

std::vector<FieldSpec> lm_train_fields(const std::string& app) {
  const double big = 1e9;
  return {
      string_field("data.path", kDefaultCorpus, "text: files, directories or globs, comma-separated"),
      choice_field("data.tokenizer", "byte", {"byte", "word", "sentencepiece"}, "how text becomes ids"),
      string_field("data.tokenizer_file", "", "load this saved tokenizer (a run's tokenizer.txt or "
                   "a SentencePiece .model) instead of building one"),
      int_field("data.vocab_size", 2000, 2, 1000000, "word/sentencepiece vocabulary (byte: 256)"),
      int_field("data.min_freq", 2, 1, 1000000, "word: a word needs this many occurrences"),
      real_field("data.val_fraction", 0.05, 0.0, 0.5, "share of the text for validation"),
      real_field("data.test_fraction", 0.05, 0.0, 0.5, "share of the text held out for testing"),
      int_field("data.block_size", 4096, 1, 1 << 30, "split granularity in bytes (see text_data.h)"),
      real_field("data.max_pad_share", 0.05, 0.0, 1.0, "refuse splits whose batches are more padding"),
      real_field("data.max_nul_share", 0.01, 0.0, 1.0, "refuse files with more NUL bytes (binary)"),
      int_field("train.steps", 500, 1, 1000000000, "optimizer steps in the whole run"),
      int_field("train.batch", 16, 1, 4096, "B: parallel streams per batch"),
      int_field("train.seq_len", 128, 1, 65536, "T: tokens per stream per step (backprop window)"),
      choice_field("train.optimizer", "adamw", {"adamw", "adam"}, "optimizer"),
      real_field("train.lr", 3e-3, 1e-9, 10.0, "peak learning rate"),
      real_field("train.min_lr", 3e-4, 0.0, 10.0, "learning rate at the end of the cosine decay"),
      int_field("train.warmup", 50, 0, 1000000000, "linear warmup steps"),
      real_field("train.weight_decay", 0.01, 0.0, 10.0, "weight decay (decoupled for adamw)"),
      real_field("train.beta2", 0.99, 0.0, 0.99999, "Adam's second-moment decay"),
      real_field("train.grad_clip", 1.0, 0.0, big, "clip the gradient norm to this (0 = off)"),
      bool_field("train.loss_scaling", true, "dynamic loss scaling (skips steps with Inf/NaN grads)"),
      bool_field("train.carry_state", true, "carry the recurrent state across batches of an epoch"),
      int_field("train.seed", 0, 0, int64_t(1) << 53, "seed of initialisation and dropout"),
      int_field("train.log_every", 50, 1, 1000000000, "plain progress line every N steps (no tty)"),
      int_field("train.eval_every", 100, 0, 1000000000, "validate every N steps (0 = at the end)"),
      int_field("train.eval_batches", 16, 0, 1000000000, "batches per periodic validation (0 = all)"),
      int_field("train.final_eval_batches", 0, 0, 1000000000, "batches of the final validation "
                "(0 = the whole val split)"),
      int_field("train.checkpoint_every", 250, 0, 1000000000, "checkpoint every N steps (0 = at "
                "the end only)"),
      string_field("sample.prompt", "The ", "text the generated sample starts from"),
      int_field("sample.length", 300, 0, 1000000, "tokens to generate after training (0 = none)"),
      real_field("sample.temperature", 0.8, 0.0, 10.0, "sampling temperature (0 = greedy)"),
      int_field("sample.seed", 0, 0, int64_t(1) << 53, "seed of the sampler"),
      string_field("run.out", "runs/" + app, "run directory: metrics, plots, checkpoints"),
      bool_field("run.plots", true, "draw loss.png and bpc.png with gnuplot when installed"),
  };
}

std::shared_ptr<const Schema> lm_schema(const std::string& app) {
  std::vector<FieldSpec> fields = lm_model_fields(), train = lm_train_fields(app);
  fields.insert(fields.end(), train.begin(), train.end());
  return std::make_shared<const Schema>(app, std::move(fields));
}

bool may_change_on_resume(const std::string& key) {
  return key == "train.steps" || key == "train.log_every" || key == "train.eval_every" ||
         key == "train.eval_batches" || key == "train.final_eval_batches" ||
         key == "train.checkpoint_every" || key.starts_with("sample.") || key.starts_with("run.");
}

Config checkpoint_config(const std::string& path, std::shared_ptr<const Schema> schema) {
  nn::Metadata meta = nn::load_safetensors(path).metadata;
  ENGRAM_CHECK(meta.count("config"), "checkpoint '{}' has no 'config' metadata: not a training "
               "checkpoint of an LM app", path);
  Config cfg(std::move(schema));
  cfg.merge_yaml(meta.at("config"), path + " (config metadata)");
  return cfg;
}

EvalResult evaluate(LanguageModel& lm, const StreamBatcher& data, int64_t max_batches) {
  NoGradGuard no_grad;
  const bool was_training = lm.module().is_training();
  lm.module().eval();
  LMState state = lm.initial_state(data.batch());
  const int64_t n = max_batches > 0 ? std::min(max_batches, data.batches_per_epoch())
                                    : data.batches_per_epoch();
  double nats = 0;
  int64_t tokens = 0, correct = 0;
  for (int64_t k = 0; k < n; ++k) {
    Batch b = data.get(k);
    Tensor logits = lm.forward(b.inputs, state);
    Tensor flat = reshape(logits, {-1, logits.size(2)}), target = reshape(b.targets, {-1});
    nats += cross_entropy(flat, target, kIgnoreIndex, 0.0, Reduction::sum).item();
    std::vector<int64_t> pred = argmax(flat, 1).to_vector<int64_t>(), y = target.to_vector<int64_t>();
    for (size_t i = 0; i < y.size(); ++i) correct += y[i] != kIgnoreIndex && pred[i] == y[i];
    tokens += b.real_targets;
  }
  lm.module().train(was_training);
  EvalResult r;
  r.tokens = tokens;
  r.loss = nats / double(tokens);
  r.ppl = std::exp(r.loss);
  r.acc = double(correct) / double(tokens);
  r.bpc = nats / (double(tokens) * data.split().chars_per_token()) / std::numbers::ln2;
  return r;
}

namespace {

struct LMData {
  std::unique_ptr<Tokenizer> tokenizer;
  TokenSplit train, val;
  int64_t corpus_bytes = 0, files = 0;
};

// Corpus -> split -> tokenizer (the checkpoint's, a saved file, or built from the train split)
// -> token ids.
LMData prepare_data(const Config& cfg, const nn::Metadata* checkpoint) {
  Corpus corpus = read_corpus(cfg.get_string("data.path"), cfg.get_real("data.max_nul_share"));
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
  else if (kind == "word")
    d.tokenizer = build_word_tokenizer(text.train, cfg.get_int("data.vocab_size"),
                                       cfg.get_int("data.min_freq"));
  else if (kind == "sentencepiece")
    d.tokenizer = train_sentencepiece_tokenizer(text.train, cfg.get_int("data.vocab_size"));
  else
    d.tokenizer = make_byte_tokenizer();
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

}  // namespace

TrainResult train_language_model(const Config& cfg, const TrainOptions& opt) {
  using clock = std::chrono::steady_clock;
  const bool resuming = !opt.resume.empty();
  nn::Metadata ckpt;
  if (resuming) {
    ckpt = nn::load_safetensors(opt.resume).metadata;
    ENGRAM_CHECK(ckpt.count("train_tokens") && ckpt.count("engram.optimizer"), "--resume '{}' is "
                 "not a training checkpoint (no optimizer state or data position; a run's "
                 "model.safetensors holds the parameters alone): resume from "
                 "<run>/checkpoints/step_N.safetensors", opt.resume);
    Config saved = checkpoint_config(opt.resume, cfg.schema_ptr());
    for (const std::string& key : cfg.diff(saved))
      ENGRAM_CHECK(may_change_on_resume(key), "--resume '{}': '{}' cannot change when resuming "
                   "(checkpoint: {}, now: {})", opt.resume, key, saved.value_str(key),
                   cfg.value_str(key));
  }
  const int64_t steps = cfg.get_int("train.steps"), B = cfg.get_int("train.batch"),
                T = cfg.get_int("train.seq_len");

  LMData data = prepare_data(cfg, resuming ? &ckpt : nullptr);
  const Tokenizer& tok = *data.tokenizer;
  StreamBatcher train(data.train, B, T), val(data.val, B, T);
  check_split(train, tok.vocab_size(), cfg.get_real("data.max_pad_share"));
  check_split(val, tok.vocab_size(), cfg.get_real("data.max_pad_share"));

  Generator rng(uint64_t(cfg.get_int("train.seed")));
  std::unique_ptr<LanguageModel> lm = make_language_model(cfg, tok.vocab_size(), &rng);
  std::vector<Tensor> params = lm->module().parameters();
  std::unique_ptr<nn::Optimizer> optimizer;
  if (cfg.get_string("train.optimizer") == "adamw")
    optimizer = std::make_unique<nn::AdamW>(params, nn::AdamWOptions{cfg.get_real("train.lr"), 0.9,
        cfg.get_real("train.beta2"), 1e-8, cfg.get_real("train.weight_decay")});
  else
    optimizer = std::make_unique<nn::Adam>(params, nn::AdamOptions{cfg.get_real("train.lr"), 0.9,
        cfg.get_real("train.beta2"), 1e-8, cfg.get_real("train.weight_decay")});
  const nn::LRSchedule schedule = nn::LRSchedule::warmup_cosine(
      std::min(cfg.get_int("train.warmup"), steps), steps, cfg.get_real("train.min_lr"));
  std::unique_ptr<nn::DynamicLossScaler> scaler;
  if (cfg.get_bool("train.loss_scaling")) scaler = std::make_unique<nn::DynamicLossScaler>();
  const double clip = cfg.get_real("train.grad_clip");
  const bool carry_state = cfg.get_bool("train.carry_state");

  // Where the run stands: the step done last, and the next batch (epoch, index) to take.
  int64_t step = 0, epoch = 0, batch_index = 0;
  LMState state = lm->initial_state(B);
  std::deque<double> recent;  // the last 20 losses (the final line's train_loss)
  if (resuming) {
    ENGRAM_CHECK(meta_int(ckpt, "train_tokens", opt.resume) == int64_t(data.train.ids.size()),
                 "--resume '{}': the training data changed since the checkpoint ({} tokens then, "
                 "{} now)", opt.resume, ckpt.at("train_tokens"), data.train.ids.size());
    state = load_training_checkpoint(opt.resume, *lm, *optimizer, scaler.get(), rng, B);
    step = meta_int(ckpt, "step", opt.resume);
    ENGRAM_CHECK(step <= steps, "--resume '{}': the checkpoint is at step {}, beyond train.steps={}: "
                 "pass --steps N with N >= {}", opt.resume, step, steps, step);
    epoch = meta_int(ckpt, "epoch", opt.resume);
    batch_index = meta_int(ckpt, "batch", opt.resume);
    for (auto& l : nlohmann::json::parse(ckpt.count("recent_losses") ? ckpt.at("recent_losses") : "[]"))
      recent.push_back(l.get<double>());
  }

  const std::string dir = cfg.get_string("run.out");
  fs::create_directories(fs::path(dir) / "checkpoints");
  std::ofstream(fs::path(dir) / "config.yaml") << cfg.to_yaml();
  tok.save((fs::path(dir) / "tokenizer.txt").string());
  MetricsLog metrics(dir, resuming ? step : -1);
  ProgressLine progress(steps, cfg.get_int("train.log_every"), opt.out);

  TrainResult result;
  result.run_dir = dir;
  result.parameters = lm->module().num_parameters();
  progress.print(fmt::format(
      "{}: {} model, {} parameters | data {} ({} files, {} bytes) | {} tokenizer, vocab {} | "
      "train {} tokens ({} batches of [{}, {}] per epoch), val {} tokens | {} threads",
      cfg.schema().name(), lm->kind(), result.parameters, cfg.get_string("data.path"), data.files,
      data.corpus_bytes, tok.kind(), tok.vocab_size(), data.train.ids.size(),
      train.batches_per_epoch(), B, T, data.val.ids.size(), num_threads()));
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
  const double ln2 = std::numbers::ln2, train_cpt = data.train.chars_per_token();
  const int64_t eval_every = cfg.get_int("train.eval_every"),
                ckpt_every = cfg.get_int("train.checkpoint_every");
  auto checkpoint = [&](int64_t at) {
    nlohmann::json losses(std::vector<double>(recent.begin(), recent.end()));
    std::string path = (fs::path(dir) / "checkpoints" / fmt::format("step_{:08d}.safetensors", at)).string();
    save_training_checkpoint(path, *lm, *optimizer, scaler.get(), rng, state,
                             {{"app", cfg.schema().name()}, {"model", lm->kind()},
                              {"config", cfg.to_yaml()}, {"step", std::to_string(at)},
                              {"epoch", std::to_string(epoch)}, {"batch", std::to_string(batch_index)},
                              {"recent_losses", losses.dump()}, {"tokenizer", tok.serialize()},
                              {"train_tokens", std::to_string(data.train.ids.size())}});
    return path;
  };

  double train_seconds = 0, window_loss = 0;
  int64_t tokens_done = 0, window_steps = 0, last_ckpt = resuming ? step : -1;
  const int64_t first_step = step + 1;
  for (++step; step <= steps; ++step) {
    auto t0 = clock::now();
    if (batch_index == train.batches_per_epoch()) {  // epoch boundary: start the streams afresh
      ++epoch, batch_index = 0;
      state = lm->initial_state(B);
    }
    Batch batch = train.get(batch_index++);
    if (!carry_state) state = lm->initial_state(B);
    const bool trace = opt.trace && step == first_step;
    if (trace) trace_batch(progress, batch, tok);
    schedule.apply(*optimizer, step - 1);

    nn::NamedTensors stages;
    Tensor logits = trace ? lm->forward_traced(batch.inputs, state, stages)
                          : lm->forward(batch.inputs, state);
    Tensor loss = cross_entropy(reshape(logits, {-1, logits.size(2)}), reshape(batch.targets, {-1}),
                                kIgnoreIndex);
    optimizer->zero_grad();
    backward(scaler ? scaler->scale_loss(loss) : loss);
    if (scaler) scaler->unscale(*optimizer);
    const double grad_norm = nn::clip_grad_norm(params, clip > 0 ? clip : INFINITY);
    if (scaler) {
      scaler->step(*optimizer);
      scaler->update();
    } else {
      optimizer->step();
    }
    lm->detach_state(state);
    train_seconds += std::chrono::duration<double>(clock::now() - t0).count();

    const double l = loss.item(), lr = optimizer->param_groups()[0].lr;
    result.losses.push_back(l);
    recent.push_back(l);
    if (recent.size() > 20) recent.pop_front();
    tokens_done += batch.real_targets;
    window_loss += l, ++window_steps;
    const double tps = double(tokens_done) / train_seconds;
    metrics.write({step, "train", l, l / ln2 / train_cpt, std::exp(l), NAN, lr, grad_norm, tps,
                   train_seconds});
    if (trace) {
      progress.print(fmt::format("trace: stage outputs of step {}:", step));
      for (auto& [name, t] : stages) progress.print(fmt::format("  {:<12} {}", name, tensor_stats(t)));
      progress.print(fmt::format("trace: loss {:.4f}, gradient norm {:.4f}, lr {:.3g}; modules "
                                 "(with their last output shapes):\n{}", l, grad_norm, lr,
                                 lm->module().summary()));
    }
    const double mean = window_loss / double(window_steps);
    progress.step(step, mean, mean / ln2 / train_cpt, tps,
                  train_seconds / double(step - first_step + 1) * double(steps - step));
    if (step % cfg.get_int("train.log_every") == 0) window_loss = 0, window_steps = 0;
    metrics.flush();

    if (eval_every > 0 && step % eval_every == 0 && step != steps) {
      EvalResult v = evaluate(*lm, val, cfg.get_int("train.eval_batches"));
      metrics.write({step, "val", v.loss, v.bpc, v.ppl, v.acc, NAN, NAN, NAN, train_seconds});
      progress.print(fmt::format("val @ step {}: loss {:.4f} | bpc {:.3f} | ppl {:.2f} | acc {:.3f} "
                                 "({} tokens)", step, v.loss, v.bpc, v.ppl, v.acc, v.tokens));
    }
    if (ckpt_every > 0 && step % ckpt_every == 0) {
      progress.print("checkpoint: " + checkpoint(step));
      last_ckpt = step;
    }
  }
  step = std::min(step, steps);
  progress.finish();

  result.step = step;
  result.tokens_per_s = train_seconds > 0 ? double(tokens_done) / train_seconds : NAN;
  if (!recent.empty()) {
    double s = 0;
    for (double l : recent) s += l;
    result.train_loss = s / double(recent.size());
  }
  result.val = evaluate(*lm, val, cfg.get_int("train.final_eval_batches"));
  metrics.write({step, "val", result.val.loss, result.val.bpc, result.val.ppl, result.val.acc, NAN,
                 NAN, NAN, train_seconds});
  metrics.flush();
  if (last_ckpt != step) progress.print("checkpoint: " + checkpoint(step));
  const std::string model_path = (fs::path(dir) / "model.safetensors").string();
  nn::save_checkpoint(model_path, lm->module(), {}, {{"app", cfg.schema().name()},
                      {"model", lm->kind()}, {"config", cfg.to_yaml()}, {"step", std::to_string(step)}});
  progress.print(fmt::format("model: {} | metrics: {}", model_path, metrics.csv_path()));
  if (cfg.get_bool("run.plots")) progress.print(write_plots(dir));

  if (cfg.get_int("sample.length") > 0) {
    std::string prompt = cfg.get_string("sample.prompt");
    if (prompt.empty()) prompt = "\n";
    std::vector<int32_t> ids = tok.encode(prompt);
    Generator sampler(uint64_t(cfg.get_int("sample.seed")));
    std::vector<int32_t> gen = generate(*lm, ids, cfg.get_int("sample.length"),
                                        cfg.get_real("sample.temperature"), sampler);
    result.sample = prompt + tok.decode(gen);
  }
  return result;
}

}  // namespace engram::apps
