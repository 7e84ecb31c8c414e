// memory/titans/neural_memory.h — Titans' neural long-term memory (Behrouz, Zhong & Mirrokni 2024,
// arXiv:2501.00663 §3.1–3.2): a memory whose weights learn at test time.
//
// Per head h (width dh) the memory is a linear map M [dh, dh] (depth 1: the paper's L_M = 1
// "linear matrix memory", equivalent to online linear regression), or with depth 2 the "deep"
// memory M(x) = W2 SiLU(W1 x), W1 [dh, dh], W2 [dh, dh] (fused op titans_mlp_memory; the same
// inner loss, momentum and forgetting act on both matrices). For x_t [B, T, E]:
//   q_t, k_t = normalize(SiLU(W_Q x_t)), normalize(SiLU(W_K x_t))   (§4.4: SiLU, l2-normalised)
//   v_t      = SiLU(W_V x_t)
//   theta_t  = max_lr * sigmoid(w_theta x_t + b_theta)               inner learning rate
//   eta_t    = sigmoid(w_eta x_t + b_eta)                            momentum decay
//   alpha_t  = sigmoid(w_alpha x_t + b_alpha)                        forgetting
//   (the paper says only "data-dependent"; lucidrains/titans-pytorch uses these sigmoids)
//   inner loss  l(M; x_t) = ||M k_t - v_t||^2 (eq. 12), gradient e_t k_t^T with e_t = 2 (M k_t - v_t)
//   S_t = eta_t S_{t-1} - theta_t e_t k_t^T                          (eq. 10, momentary surprise)
//   M_t = (1 - alpha_t) M_{t-1} + S_t                                (eq. 13, forgetting)
//   y_t = M_{t-1} q_t                                                (eq. 15, no update)
//   out = W_O concat_h(y_t)
// Trained the paper's way (§3.2, eq. 16): in each chunk of b tokens every inner gradient is taken
// at the chunk's starting weights, so b = 1 is the sequential rule. The whole recurrence is the
// fused op titans_linear_memory (autograd/titans_ops.cpp) with a hand-written backward through the
// inner updates, second-order terms included.
// Stability. ||k|| = 1, so along k the inner loss has curvature 2 and one step multiplies the error
// by (1 - 2 theta). Inside a chunk every gradient is the stale one at the chunk's start, so b
// tokens with the same key step 2 theta b at once: beyond 2 theta b = 2 the memory diverges. Text
// repeats keys all the time, and a memory carried along a stream of thousands of tokens did
// diverge (NaN) at max_lr 0.1, chunk 16. validate() therefore demands max_lr * chunk <= 1. On
// the CPU the fused kernel costs the same per token for any chunk (it walks the tokens either
// way), so the default is b = 1, the sequential rule; b > 1 is the paper's parallel form.
// The deep memory's curvature grows with its weights, so no such bound holds for depth 2: in
// memory_lm (d_model 80) it went NaN within 30 steps at max_lr 0.5, after step 100 at 0.1, and
// trained 250 steps at 0.02 (val bpc 3.4636, worse than depth 1's 3.3725 at max_lr 0.5). M_0 is a learned parameter per head (as in
// lucidrains; the paper leaves it open); the state carries M and S from one call to the next.
#pragma once
#include "nn/layers.h"

namespace engram::titans {

struct NeuralMemoryConfig {
  int64_t d_model = 64, heads = 4, head_dim = 16;
  int64_t depth = 1;        // 1: M is a matrix; 2: M(x) = W2 SiLU(W1 x)
  int64_t chunk = 1;        // b: tokens whose inner gradients share the chunk's starting weights
  double max_lr = 0.5;      // theta's ceiling; max_lr * chunk <= 1 (see validate)
  // initial gate values (through the biases): theta = theta_fraction * max_lr, eta, alpha
  double theta_fraction = 0.5, eta_init = 0.7, alpha_init = 0.02;
};
void validate(const NeuralMemoryConfig& cfg);

struct NeuralMemoryState {
  Tensor memory;    // [BH, dh, dh] (W1 for depth 2), undefined = the learned M_0
  Tensor momentum;  // [BH, dh, dh], undefined = zeros
  Tensor memory2, momentum2;  // depth 2: W2 and its momentum
};

class NeuralMemory : public nn::Module {
 public:
  NeuralMemory(const NeuralMemoryConfig& cfg, Generator* gen);
  Tensor forward(const Tensor& x, NeuralMemoryState& state);  // x [B, T, E] -> [B, T, E]
  std::string type_name() const override { return "NeuralMemory"; }
  std::string extra_repr() const override;

  NeuralMemoryConfig cfg;
  std::shared_ptr<nn::Linear> qkv, gates, out;
  Tensor& initial_memory;  // M_0 [H, dh, dh] (W1_0 for depth 2)
  Tensor initial_memory2;  // depth 2: W2_0 [H, dh, dh]
  // The gates of the last call, [B, H, T] each (for logging)
  Tensor last_theta, last_eta, last_alpha;
};

}  // namespace engram::titans
