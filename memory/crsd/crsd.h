// memory/crsd/crsd.h — CRSD: Contextual Recurrent Spectral Dual-memory cell and language model.
//
// One cell maps an input sequence u [B, T, C] to y [B, T, C] (C = d_model, M = d_mem,
// R = reservoir size):
//   s_t  = Reservoir(u)_t                                  fixed echo-state features   [B,T,R]
//   q, k, v = W_q u, W_k u, W_v u                          memory query/key/value      [B,T,M]
//   r^H_t = HebbianMemory(q, k, v)_t                       H_t = g H_{t-1} + eta k̂ v^T, r = H^T q̂
//   r^E_t = EpisodicBuffer(q, k, v)_t                      cosine recall over priority slots
//   g_t  = sigmoid(W_g [u_t; r^H_t; r^E_t] + b_g)          learned gate                [B,T,M]
//   m_t  = g_t * r^H_t + (1 - g_t) * r^E_t                 one recall vector           [B,T,M]
//   a_t  = sigmoid(W_a [u_t; m_t] + b_a)                   the recall gates the update [B,T,C]
//   c_t  = tanh(W_c [u_t; s_t; m_t] + b_c)                 candidate                   [B,T,C]
//   h_t  = a_t * h_{t-1} + (1 - a_t) * c_t                 recurrence (linear_scan)    [B,T,C]
//   y_t  = h_t + SpectralMix(h_t)                          spectral dual transform     [B,T,C]
// The memories are addressed from the cell's input, and the hidden recurrence is diagonal in
// h, so every step's inputs are known before the recurrence runs: the Hebbian memory and the
// recurrence each run as one fused scan over the whole segment (hebbian_scan, linear_scan);
// only the reservoir and the episodic buffer's discrete slot choice loop over time.
//
// The language model: Embedding(V, C) -> L cells -> LayerNorm -> Linear(C, V).
// State (per layer: s, h, H, episodic slots) is passed in and returned, so the model runs a
// whole segment at once (training) or one token at a time (generation) with the same outputs.
#pragma once
#include "memory/crsd/episodic.h"
#include "memory/crsd/hebbian.h"
#include "memory/crsd/reservoir.h"
#include "nn/layers.h"
#include "nn/spectral.h"

namespace engram::memory {

struct CRSDConfig {
  int64_t vocab_size = 256;
  int64_t d_model = 128;
  int64_t d_mem = 32;
  int64_t layers = 1;
  ReservoirOptions reservoir;
  HebbianOptions hebbian;
  EpisodicOptions episodic;
  bool use_hebbian = true, use_episodic = true, use_spectral = true;  // for ablations
};

struct CRSDCellState {
  Tensor reservoir;  // [B, R]
  Tensor hidden;     // [B, C]
  Tensor hebbian;    // [B, M, M]
  EpisodicState episodic;
};

class CRSDCell : public nn::Module {
 public:
  CRSDCell(const CRSDConfig& cfg, Generator* gen = nullptr);
  CRSDCellState initial_state(int64_t batch, DType dtype = DType::f32, Device device = Device::cpu) const;
  Tensor forward(const Tensor& u, CRSDCellState& state);  // [B, T, C] -> [B, T, C]
  std::string type_name() const override { return "CRSDCell"; }
  std::string extra_repr() const override;

  CRSDConfig cfg;
  std::shared_ptr<Reservoir> reservoir;
  std::shared_ptr<nn::Linear> q_proj, k_proj, v_proj, gate, retain, candidate;
  std::shared_ptr<HebbianMemory> hebbian;
  std::shared_ptr<EpisodicBuffer> episodic;
  std::shared_ptr<nn::SpectralMix> spectral;
};

class CRSDLanguageModel : public nn::Module {
 public:
  explicit CRSDLanguageModel(const CRSDConfig& cfg, Generator* gen = nullptr);
  using State = std::vector<CRSDCellState>;
  State initial_state(int64_t batch, DType dtype = DType::f32, Device device = Device::cpu) const;
  // ids [B, T] (i64) -> logits [B, T, V]; `state` is updated to the end of the segment.
  Tensor forward(const Tensor& ids, State& state);
  std::string type_name() const override { return "CRSDLanguageModel"; }

  CRSDConfig cfg;
  std::shared_ptr<nn::Embedding> embed;
  std::vector<std::shared_ptr<CRSDCell>> cells;
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::Linear> head;
};

// Detaches every tensor of the state (truncated backprop between training segments).
void detach_state(CRSDLanguageModel::State& state);

}  // namespace engram::memory
