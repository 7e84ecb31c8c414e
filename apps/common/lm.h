// apps/common/lm.h — one small interface over the sandbox's language models.
//
// Every model maps token ids [B, T] to next-token logits [B, T, V] and carries a state from one
// call to the next, so the trainer, the evaluator and the sampler treat them all alike:
//
//   state  = lm.initial_state(B)
//   logits = lm.forward(ids, state)   // state now describes everything up to the last token
//   lm.detach_state(state)            // truncated backprop: the next segment starts a new graph
//
// The state is a list of named tensors, so it can be checkpointed ("carry.<name>") and a resumed
// run continues with exactly the state the interrupted one had.
//
//   crsd         memory::CRSDLanguageModel (memory/crsd/crsd.h): per layer the reservoir state, the
//                hidden recurrence, the Hebbian matrix and the episodic slots.
//   lstm         Embedding(V, H) -> nn::LSTM(H, H, L) -> Linear(H, V); state h, c [L, B, H].
//   transformer  Embedding(V, E) + learned positions (max_len, E) -> L causal pre-norm
//                nn::TransformerBlocks -> LayerNorm -> Linear(E, V). Its state is the context:
//                the last (max_len - 1) tokens seen, prepended to the next call's tokens and
//                cropped to max_len. With max_len = T (training) nothing is carried; when
//                generating one token at a time the model attends to the last max_len tokens.
#pragma once
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "apps/common/config.h"
#include "nn/module.h"

namespace engram::apps {

using LMState = nn::NamedTensors;

class LanguageModel {
 public:
  virtual ~LanguageModel() = default;
  virtual std::string kind() const = 0;  // "crsd", "lstm", "transformer"
  virtual nn::Module& module() = 0;      // parameters, summary(), train()/eval()
  virtual int64_t vocab_size() const = 0;
  virtual LMState initial_state(int64_t batch) const = 0;
  // ids [B, T] (i64) -> logits [B, T, V]; `state` is replaced by the state after the last token.
  virtual Tensor forward(const Tensor& ids, LMState& state) = 0;
  // The same forward, also returning each stage's output by name (embed, layers, norm, head),
  // for --trace.
  virtual Tensor forward_traced(const Tensor& ids, LMState& state, nn::NamedTensors& stages) = 0;
  // Cuts every state tensor from the graph that produced it (truncated backprop through time).
  virtual void detach_state(LMState& state) const;
  // Scalars about the last forward that the trainer logs with every metrics row (JSONL), e.g.
  // the hybrid memory's gate per layer; none by default.
  virtual std::vector<std::pair<std::string, double>> diagnostics() { return {}; }
  // Extra loss terms of the last training forward that the trainer adds to the task loss before
  // backward (MemNet's hallucination / utilisation / sparsity terms); undefined (the default)
  // means none. The task loss the trainer reports stays the cross-entropy alone, so every kind is
  // compared on the same number; the terms themselves belong in diagnostics().
  virtual Tensor auxiliary_loss() { return {}; }
};

// Builds the model named by model.kind with the config's sizes; draws initial weights from gen,
// which the model also keeps for dropout.
std::unique_ptr<LanguageModel> make_language_model(const Config& cfg, int64_t vocab_size,
                                                   Generator* gen);

// The model settings (model.*) shared by every LM app: sizes, CRSD options, baselines.
std::vector<FieldSpec> lm_model_fields();

// Feeds `prompt` (batch 1, recurrent mode), then samples `length` tokens one at a time from
// softmax(logits / temperature) (argmax when temperature is 0), drawing from gen. Runs in eval
// mode without recording; returns only the new tokens.
std::vector<int32_t> generate(LanguageModel& lm, std::span<const int32_t> prompt, int64_t length,
                              double temperature, Generator& gen);

}  // namespace engram::apps
