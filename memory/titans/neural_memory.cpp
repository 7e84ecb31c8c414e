// memory/titans/neural_memory.cpp — see neural_memory.h.
#include "memory/titans/neural_memory.h"

#include <cmath>

#include "autograd/ops.h"
#include "memory/cmr/episodic_cmr.h"
#include "nn/init.h"

namespace engram::titans {

using cmr::heads_to_width;
using cmr::rows_of_heads;

namespace {

double logit(double p) { return std::log(p / (1 - p)); }

}  // namespace

void validate(const NeuralMemoryConfig& c) {
  ENGRAM_CHECK(c.d_model > 0 && c.heads > 0 && c.head_dim > 0, "neural memory: d_model {}, heads {} "
               "and head_dim {} must be positive", c.d_model, c.heads, c.head_dim);
  ENGRAM_CHECK(c.chunk > 0, "neural memory: chunk must be positive, got {}", c.chunk);
  ENGRAM_CHECK(c.depth == 1 || c.depth == 2, "neural memory: depth must be 1 or 2, got {}", c.depth);
  ENGRAM_CHECK(c.max_lr > 0, "neural memory: max_lr must be positive, got {}", c.max_lr);
  ENGRAM_CHECK(c.max_lr * double(c.chunk) <= 1.0, "neural memory: max_lr {} x chunk {} = {} > 1: "
               "a chunk of repeated keys would step past the minimum and diverge (lower max_lr or "
               "chunk; see neural_memory.h)", c.max_lr, c.chunk, c.max_lr * double(c.chunk));
  for (auto [name, v] : {std::pair{"theta_fraction", c.theta_fraction},
                         std::pair{"eta_init", c.eta_init}, std::pair{"alpha_init", c.alpha_init}})
    ENGRAM_CHECK(v > 0 && v < 1, "neural memory: {} must lie strictly inside its range, got {}",
                 name, v);
}

NeuralMemory::NeuralMemory(const NeuralMemoryConfig& c, Generator* gen)
    : cfg(c),
      initial_memory(register_parameter("initial_memory", zeros({c.heads, c.head_dim, c.head_dim}))) {
  validate(c);
  const int64_t W = c.heads * c.head_dim;
  qkv = register_module("qkv", std::make_shared<nn::Linear>(c.d_model, 3 * W, false, gen));
  gates = register_module("gates", std::make_shared<nn::Linear>(c.d_model, 3 * c.heads, true, gen));
  if (c.depth == 2) {
    // A deep memory cannot start at zero: W2 = 0 gives W1 no gradient and SiLU(0) = 0 gives W2
    // none. Both start as N(0, 1/dh) (variance-preserving, like lucidrains' xavier init).
    initial_memory2 = register_parameter("initial_memory2", empty({c.heads, c.head_dim, c.head_dim}));
    nn::init::normal_(initial_memory, 0.0, 1.0 / std::sqrt(double(c.head_dim)), gen);
    nn::init::normal_(initial_memory2, 0.0, 1.0 / std::sqrt(double(c.head_dim)), gen);
  }
  out = register_module("out", std::make_shared<nn::Linear>(W, c.d_model, true, gen));
  // Start every gate at its initial value whatever the token: small weights, bias = logit.
  nn::init::normal_(gates->weight, 0.0, 0.01, gen);
  std::vector<double> b;
  for (double v : {c.theta_fraction, c.eta_init, c.alpha_init})
    for (int64_t h = 0; h < c.heads; ++h) b.push_back(logit(v));
  raw::copy_(gates->bias, from_vector(b, {3 * c.heads}, gates->bias.dtype()));
}

std::string NeuralMemory::extra_repr() const {
  return fmt::format("heads={}, head_dim={}, depth={}, chunk={}, max_lr={}", cfg.heads,
                     cfg.head_dim, cfg.depth, cfg.chunk, cfg.max_lr);
}

Tensor NeuralMemory::forward(const Tensor& x, NeuralMemoryState& st) {
  ENGRAM_CHECK(x.dim() == 3 && x.size(2) == cfg.d_model, "NeuralMemory: expected x [B, T, {}], got {}",
               cfg.d_model, shape_str(x.shape()));
  const int64_t B = x.size(0), T = x.size(1), H = cfg.heads, dh = cfg.head_dim, W = H * dh;
  Tensor p = silu(qkv->forward(x));  // [B, T, 3W]
  Tensor q = normalize(rows_of_heads(slice(p, 2, 0, W), H));
  Tensor k = normalize(rows_of_heads(slice(p, 2, W, 2 * W), H));
  Tensor v = rows_of_heads(slice(p, 2, 2 * W, 3 * W), H);
  Tensor g = sigmoid(permute(gates->forward(x), {0, 2, 1}));  // [B, 3H, T]
  last_theta = mul(slice(g, 1, 0, H), cfg.max_lr);
  last_eta = slice(g, 1, H, 2 * H);
  last_alpha = slice(g, 1, 2 * H, 3 * H);
  auto rows = [&](const Tensor& t) { return reshape(t, {B * H, T}); };
  auto start = [&](const Tensor& carried, const Tensor& initial) {
    Tensor m = carried.defined()
                   ? carried
                   : reshape(expand(unsqueeze(initial, 0), {B, H, dh, dh}), {B * H, dh, dh});
    ENGRAM_CHECK(m.shape() == (Shape{B * H, dh, dh}), "NeuralMemory: state memory must be [{}, {}, "
                 "{}], got {}", B * H, dh, dh, shape_str(m.shape()));
    return m;
  };
  Tensor y;
  if (cfg.depth == 1) {
    TitansMemoryScan scan = titans_linear_memory(q, k, v, rows(last_theta), rows(last_eta),
                                                 rows(last_alpha), start(st.memory, initial_memory),
                                                 st.momentum, cfg.chunk);
    st.memory = scan.memory, st.momentum = scan.momentum, y = scan.retrieved;
  } else {
    TitansMLPScan scan = titans_mlp_memory(q, k, v, rows(last_theta), rows(last_eta),
                                           rows(last_alpha), start(st.memory, initial_memory),
                                           start(st.memory2, initial_memory2), st.momentum,
                                           st.momentum2, cfg.chunk);
    st.memory = scan.w1, st.memory2 = scan.w2, st.momentum = scan.s1, st.momentum2 = scan.s2;
    y = scan.retrieved;
  }
  for (Tensor* t : {&last_theta, &last_eta, &last_alpha}) *t = detach(*t);
  return out->forward(heads_to_width(y, B));
}

}  // namespace engram::titans
