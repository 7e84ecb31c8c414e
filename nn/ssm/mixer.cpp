// nn/ssm/mixer.cpp — the state helpers shared by every sequence mixer (nn/ssm/mixer.h).
#include "nn/ssm/mixer.h"

#include "core/error.h"

namespace engram::nn::ssm {

const Tensor& state_get(const State& state, const std::string& name, const char* layer) {
  for (const auto& [n, t] : state)
    if (n == name) return t;
  ENGRAM_CHECK(false, "{}: the state has no tensor '{}' (pass the state from initial_state or from "
                      "the previous call)", layer, name);
  static Tensor none;
  return none;
}

void state_set(State& state, const std::string& name, Tensor t) {
  for (auto& [n, old] : state)
    if (n == name) {
      old = std::move(t);
      return;
    }
  state.emplace_back(name, std::move(t));
}

static thread_local bool g_state_grad = true;

bool state_grad_enabled() { return g_state_grad; }
NoStateGradGuard::NoStateGradGuard() : prev_(g_state_grad) { g_state_grad = false; }
NoStateGradGuard::~NoStateGradGuard() { g_state_grad = prev_; }

}  // namespace engram::nn::ssm
