// apps/common/trainer.h — the language-model training loop shared by the sandbox's apps.
//
// One step (B streams of T tokens, see text_data.h):
//
//   lr     = warmup_cosine(step)                           nn/schedule.h
//   logits = lm.forward(inputs, state)                     state carried from the previous batch
//   loss   = cross_entropy(logits, targets)                mean over real (non-pad) targets
//   backward(scaler.scale_loss(loss))                      nn::DynamicLossScaler
//   scaler.unscale(opt); clip_grad_norm(params, clip)      the true gradients are clipped
//   scaler.step(opt); scaler.update()                      skipped when a gradient is Inf/NaN
//   lm.detach_state(state)                                 truncated backprop through time
//
// The state is reset to lm.initial_state at every epoch boundary. Every eval_every steps the
// model is evaluated on the first eval_batches batches of the val split (state carried across
// them, as in training); at the end on the whole val split:
//   loss = total nats / target tokens,  ppl = exp(loss),  acc = next-token accuracy,
//   bpc  = total nats / characters / ln 2, characters being the text's bytes (chars_per_token
//          of the split), so the byte tokenizer's bpc is loss / ln 2 and the word and
//          SentencePiece tokenizers are measured on the same scale (for the word tokenizer
//          only up to its <unk> tokens, whose spelling costs nothing: the run says how many).
//
// Checkpoints (every checkpoint_every steps and at the end, <run>/checkpoints/step_N.safetensors,
// written atomically by nn/checkpoint.h) hold the parameters, the optimizer, the loss scaler, the
// RNG, the carried state ("carry.*"), the data position (epoch, batch), the step, the last losses,
// the tokenizer and the whole config (as YAML) in the metadata. `resume` continues exactly: N
// steps, then resume, then N more gives bit for bit the losses of 2N steps in one go. The end of
// a run also writes <run>/model.safetensors with the parameters alone (loads strictly into the
// bare model, or into PyTorch by name).
//
// Run directory: config.yaml, tokenizer.txt, metrics.csv, metrics.jsonl, loss.png, bpc.png,
// checkpoints/, model.safetensors.
#pragma once
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "apps/common/config.h"
#include "apps/common/lm.h"
#include "apps/common/text_data.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"

namespace engram::apps {

// The data.*, train.*, sample.* and run.* settings; run.out defaults to runs/<app>.
std::vector<FieldSpec> lm_train_fields(const std::string& app);
// model.* + the fields above: the whole configuration of an LM app.
std::shared_ptr<const Schema> lm_schema(const std::string& app);

struct EvalResult {
  double loss = NAN, bpc = NAN, ppl = NAN, acc = NAN;
  int64_t tokens = 0;
};
// Evaluates on the first max_batches batches of `data` (0 = all), state carried across them.
EvalResult evaluate(LanguageModel& lm, const StreamBatcher& data, int64_t max_batches);

struct TrainOptions {
  std::string resume;  // checkpoint to continue from; "" = a fresh run
  bool trace = false;  // print one step in detail (batch, stage statistics, module summary)
  std::FILE* out = stdout;
};

struct TrainResult {
  int64_t step = 0;
  int64_t parameters = 0;
  double train_loss = NAN;     // mean of the last (up to) 20 steps' losses
  EvalResult val;              // on the whole val split
  double tokens_per_s = NAN;   // training throughput of this session
  std::vector<double> losses;  // the loss of every step this session ran, in order
  std::string sample;          // generated text (empty when sample.length is 0)
  std::string run_dir;
};

TrainResult train_language_model(const Config& cfg, const TrainOptions& opt = {});

// Adam, or AdamW, with train.lr / beta2 / weight_decay (the trainer's and the phase trainer's).
std::unique_ptr<nn::Optimizer> make_optimizer(const Config& cfg, const std::vector<Tensor>& params);

// The config a checkpoint was trained with (its "config" metadata), checked against `schema`.
Config checkpoint_config(const std::string& path, std::shared_ptr<const Schema> schema);
// Keys that may differ between a checkpoint's config and the config resuming from it.
bool may_change_on_resume(const std::string& key);

}  // namespace engram::apps
