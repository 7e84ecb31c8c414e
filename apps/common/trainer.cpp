// apps/common/trainer.cpp — see trainer.h: the settings, the resume rules and the evaluation;
// the training loop itself (train_language_model) is in train_loop.cpp.
#include "apps/common/trainer.h"
#include "nn/distributed.h"

#include <numbers>

namespace engram::apps {

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
      real_field("data.max_binary_share", 0.05, 0.0, 1.0, "refuse files with more control or "
                 "invalid UTF-8 bytes (binary); 1 accepts anything"),
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
      bool_field("train.anomaly", false, "anomaly mode: the first op that makes a NaN/Inf stops the "
                 "run, named (slower)"),
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
  return key == "train.steps" || key == "train.log_every" || key == "train.anomaly" || key == "train.eval_every" ||
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
  if (data.batch() != data.global_batch()) {  // a rank's streams (data parallel): all ranks' totals
    double totals[3] = {nats, double(tokens), double(correct)};
    nn::dist::allreduce_sum(totals, 3, "evaluate: validation totals");
    nats = totals[0], tokens = int64_t(totals[1]), correct = int64_t(totals[2]);
  }
  EvalResult r;
  r.tokens = tokens;
  r.loss = nats / double(tokens);
  r.ppl = std::exp(r.loss);
  r.acc = double(correct) / double(tokens);
  r.bpc = nats / (double(tokens) * data.split().chars_per_token()) / std::numbers::ln2;
  return r;
}

}  // namespace engram::apps
