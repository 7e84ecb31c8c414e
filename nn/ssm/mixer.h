// nn/ssm/mixer.h — the one interface every state-space layer of nn/ssm/ implements.
//
// A sequence mixer maps x [B, T, C] to y [B, T, C] and carries a recurrent state from one call to
// the next, so a language model can cut a long stream into segments (truncated backprop) and
// generate one token at a time with the same layer:
//
//   state = mixer.initial_state(B)        // the state before the first token (zeros)
//   y     = mixer.forward(x, state)       // parallel / convolution / chunked mode, for training
//   y_t   = mixer.step(x_t, state)        // recurrent mode: one token x_t [B, C] -> y_t [B, C]
//
// Both calls replace `state` with the state after the last token they read, and both must give
// the same outputs (tests/test_ssm_*.cpp hold every family to forward == T calls of step). The
// state is a list of named tensors ("h", "conv", ...) so the language model can checkpoint it
// ("carry.<layer>.<name>") and detach it between segments.
//
// Each family's file opens with its recurrence, its discretisation and its initialisation, and the
// paper and reference code it follows (see ../shared/research/ssm-cuda.md for the citations).
#pragma once
#include "nn/module.h"

namespace engram::nn::ssm {

using State = NamedTensors;

class SequenceMixer : public Module {
 public:
  // x [B, T, C] -> y [B, T, C]; `state` in: the state after the previous call (or
  // initial_state); out: the state after x's last token.
  virtual Tensor forward(const Tensor& x, State& state) = 0;
  // One token: x_t [B, C] -> y_t [B, C], advancing `state` by one step.
  virtual Tensor step(const Tensor& x_t, State& state) = 0;
  virtual State initial_state(int64_t batch) const = 0;
  virtual int64_t width() const = 0;  // C
};

// The state tensor called `name` (an error naming the layer and the name when absent).
const Tensor& state_get(const State& state, const std::string& name, const char* layer);
// Sets (or adds) the state tensor called `name`.
void state_set(State& state, const std::string& name, Tensor t);

// Whether a forward records the graph of the state it hands back (per thread, default on). A
// truncated-backprop loop that detaches the state after every step (apps/common/train_loop.cpp)
// never differentiates that graph, yet it would hold its saved tensors through the backward; with
// the mode off the final state is computed exactly, as values only. The outputs keep their full
// graph either way. Mixers whose state costs a separate computation honour it (S4D, S4).
bool state_grad_enabled();
class NoStateGradGuard {
 public:
  NoStateGradGuard();
  ~NoStateGradGuard();
  NoStateGradGuard(const NoStateGradGuard&) = delete;
  NoStateGradGuard& operator=(const NoStateGradGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace engram::nn::ssm
