// nn/ssm/retnet.h — RetNet's multi-scale retention (Sun et al. 2023, "Retentive Network: A
// Successor to Transformer for Large Language Models", arXiv 2307.08621), laid out as
// microsoft/torchscale's component/multiscale_retention.py and architecture/retnet.py
// (RetNetRelPos), with torchscale's parameter names.
//
// Shapes: x [B, T, C]; H heads; key dim per head dk = C / H; value dim per head
// dv = value_factor * C / H (torchscale's value_dim = value_factor * embed_dim).
//
//   q = x W_q^T,  k = x W_k^T / sqrt(dk),  v = x W_v^T,  g = x W_g^T     (all bias-free)
//   q_n, k_n <- theta_shift(., n):  the rotary phase e^{i n theta} on pairs of channels
//       (rotate-every-two: (x_2i, x_2i+1) -> (x_2i cos - x_2i+1 sin, x_2i+1 cos + x_2i sin)),
//       angle theta_i = 1 / 10000^linspace(0, 1, dk/2)_i, n the ABSOLUTE position of the token,
//       which continues across calls (the state carries it). Rotating q_n and k_m by their own
//       angles makes q_n . k_m depend on n - m only (the paper's Q Theta, K conj(Theta)).
//   per head h the decay gamma_h = 1 - 2^(-5-h)            (RetNetRelPos's decay = log gamma)
//
// Retention per head, in three forms that give the same numbers (tests/test_ssm_retnet.cpp):
//   parallel:   O = (Q K^T * D) V,  D_nm = gamma^(n-m) for n >= m, else 0
//   recurrent:  S_n = gamma S_{n-1} + k_n^T v_n  (S [dk, dv]),  o_n = q_n S_n
//   chunkwise:  blocks of L tokens (the last one may be shorter):
//               O_[i] = (Q_[i] K_[i]^T * D) V_[i] + (Q_[i] * xi) R_{i-1},   xi_j = gamma^(j+1)
//               R_i   = K_[i]^T (V_[i] * zeta) + gamma^L R_{i-1},           zeta_j = gamma^(L-1-j)
// A call that starts from a carried state S_prev is the chunkwise step with R_{-1} = S_prev, so the
// parallel form here is the chunkwise form with one block of T tokens.
//
//   Y = GroupNorm_h(O)   torchscale: RMSNorm(dv, elementwise_affine=False) on each head's o_n
//   out = (swish(g) * Y) W_o^T
// Init (torchscale reset_parameters): xavier_uniform_ gain 2^-2.5 on q, k, v, g; 2^-1 on out.
//
// The paper's un-normalised retention is what is computed. torchscale divides the decay mask by
// sqrt(its row sum) and Q K^T * D by clamp(|row sum|, 1, 5e4) (and keeps a running scale in the
// recurrent form) to keep activations in range; every one of those divides a whole row o_n of one
// head by a positive number, which the RMS group norm right after cancels, except for its eps:
// rms(c o) = o / sqrt(mean(o^2) + eps / c^2). With eps = 0 the two are the same layer (outputs
// and gradients equal to ~1e-15). With torchscale's eps = 1e-6 the eps shows: at the xavier init
// and unit inputs the paper form's rows have mean(o^2) ~ 1e-4, torchscale's shrunken ones 1e-5
// down to 4e-7, so torchscale's output differs by ~4% of its largest value (d_model 8, 2 heads,
// T 8; measured against tests/golden/ssm_retnet.json in the test). torchscale's own chunkwise form rescales rows
// differently from its parallel one and differs from it by about as much (eps 1e-6); this
// form has no such gap: its three forms are one function.
//
// State: "S" [B, H, dk, dv] (the retention state after the last token read) and "pos" i64 [1]
// (the absolute position of the next token, as a tensor so checkpoints keep it; host-side).
#pragma once
#include <memory>
#include <vector>

#include "nn/layers.h"
#include "nn/ssm/mixer.h"

namespace engram::nn::ssm {

enum class RetentionForm { parallel, chunkwise, recurrent };

class MultiScaleRetention : public SequenceMixer {
 public:
  MultiScaleRetention(int64_t d_model, int64_t heads, int64_t value_factor = 2,
                      Generator* gen = nullptr);

  // The form forward(x, state) uses: parallel (the default), chunkwise in blocks of chunk_size
  // tokens, or recurrent (T calls of the per-token update).
  void set_form(RetentionForm form, int64_t chunk_size = 64);
  RetentionForm form() const { return form_; }
  int64_t chunk_size() const { return chunk_size_; }

  Tensor forward(const Tensor& x, State& state) override;  // in form()
  Tensor forward(const Tensor& x, State& state, RetentionForm form, int64_t chunk_size = 64);
  Tensor step(const Tensor& x_t, State& state) override;  // the recurrent form, one token
  State initial_state(int64_t batch) const override;      // S = 0, pos = 0
  int64_t width() const override { return d_model; }
  std::string type_name() const override { return "MultiScaleRetention"; }
  std::string extra_repr() const override;

  double gamma(int64_t head) const;  // 1 - 2^(-5-head)

  int64_t d_model, heads, value_factor;
  int64_t key_dim;   // dk = d_model / heads
  int64_t head_dim;  // dv = value_factor * d_model / heads (torchscale's name)
  double norm_eps = 1e-6;  // the group norm's eps (torchscale's layernorm_eps)
  std::shared_ptr<Linear> q_proj, k_proj, v_proj, g_proj, out_proj;

 private:
  struct Projected {
    Tensor q, k, v;  // [B, H, T, dk], [B, H, T, dk], [B, H, T, dv], q and k phase-shifted
    Tensor g;        // [B, T, H dv]
  };
  Projected project(const Tensor& x, int64_t pos0) const;
  Tensor finish(const Tensor& o, const Tensor& g) const;  // o [B, H, T, dv] -> [B, T, C]
  // One block of L tokens after the state s_prev: its outputs [B, H, L, dv] and the state after it.
  std::pair<Tensor, Tensor> retain_block(const Tensor& q, const Tensor& k, const Tensor& v,
                                         const Tensor& s_prev) const;
  // One token (q, k [B, H, dk], v [B, H, dv]): S <- gamma S + k^T v, o = q S [B, H, dv].
  Tensor retain_token(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& s) const;
  // The state's S (checked against [B, H, dk, dv]) and position.
  std::pair<Tensor, int64_t> read_state(const State& state, int64_t batch) const;

  RetentionForm form_ = RetentionForm::parallel;
  int64_t chunk_size_ = 64;
  std::vector<double> angle_;  // theta_i, i < dk/2
};

}  // namespace engram::nn::ssm
