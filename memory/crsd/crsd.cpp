// memory/crsd/crsd.cpp — see crsd.h for the equations.
#include "memory/crsd/crsd.h"

namespace engram::memory {

CRSDCell::CRSDCell(const CRSDConfig& c, Generator* gen) : cfg(c) {
  const int64_t C = c.d_model, M = c.d_mem, R = c.reservoir.size;
  ENGRAM_CHECK(C > 0 && M > 0, "CRSDCell: d_model and d_mem must be positive, got {} and {}", C, M);
  reservoir = register_module("reservoir", std::make_shared<Reservoir>(C, c.reservoir, gen));
  q_proj = register_module("q_proj", std::make_shared<nn::Linear>(C, M, false, gen));
  k_proj = register_module("k_proj", std::make_shared<nn::Linear>(C, M, false, gen));
  v_proj = register_module("v_proj", std::make_shared<nn::Linear>(C, M, false, gen));
  hebbian = register_module("hebbian", std::make_shared<HebbianMemory>(M, M, c.hebbian));
  episodic = register_module("episodic", std::make_shared<EpisodicBuffer>(M, M, c.episodic));
  gate = register_module("gate", std::make_shared<nn::Linear>(C + 2 * M, M, true, gen));
  retain = register_module("retain", std::make_shared<nn::Linear>(C + M, C, true, gen));
  candidate = register_module("candidate", std::make_shared<nn::Linear>(C + R + M, C, true, gen));
  spectral = register_module("spectral", std::make_shared<nn::SpectralMix>(C, 0.0, gen));
}

CRSDCellState CRSDCell::initial_state(int64_t B, DType dt, Device dev) const {
  return {zeros({B, cfg.reservoir.size}, dt, dev), zeros({B, cfg.d_model}, dt, dev),
          zeros({B, cfg.d_mem, cfg.d_mem}, dt, dev), episodic->initial_state(B, dt, dev)};
}

Tensor CRSDCell::forward(const Tensor& u, CRSDCellState& st) {
  ENGRAM_CHECK(u.dim() == 3 && u.shape()[2] == cfg.d_model,
               "CRSDCell: expected input [B, T, {}], got {}", cfg.d_model, shape_str(u.shape()));
  const int64_t B = u.shape()[0], T = u.shape()[1], M = cfg.d_mem;
  Tensor s = reservoir->forward(u, st.reservoir);                       // [B, T, R]
  Tensor q = q_proj->forward(u), k = k_proj->forward(u), v = v_proj->forward(u);
  Tensor r_hebb = zeros({B, T, M}, u.dtype(), u.device()), r_epi = zeros({B, T, M}, u.dtype(), u.device());
  if (cfg.use_hebbian) {
    HebbianMemory::Output h = hebbian->forward(q, k, v, st.hebbian);
    r_hebb = h.recall;
    st.hebbian = h.state;
  }
  if (cfg.use_episodic) r_epi = episodic->forward(q, k, v, st.episodic);
  Tensor g = sigmoid(gate->forward(cat({u, r_hebb, r_epi}, -1)));
  Tensor m = add(mul(g, r_hebb), mul(sub(ones({}, g.dtype(), g.device()), g), r_epi));  // [B, T, M]
  Tensor a = sigmoid(retain->forward(cat({u, m}, -1)));                     // [B, T, C]
  Tensor c = tanh(candidate->forward(cat({u, s, m}, -1)));
  Tensor h = linear_scan(a, mul(sub(ones({}, a.dtype(), a.device()), a), c), st.hidden);
  st.hidden = select(h, 1, T - 1);
  Tensor y = cfg.use_spectral ? add(h, spectral->forward(h)) : h;
  return note_output(y);
}

std::string CRSDCell::extra_repr() const {
  return fmt::format("d_model={}, d_mem={}, reservoir={}, slots={}", cfg.d_model, cfg.d_mem,
                     cfg.reservoir.size, cfg.episodic.slots);
}

CRSDLanguageModel::CRSDLanguageModel(const CRSDConfig& c, Generator* gen) : cfg(c) {
  ENGRAM_CHECK(c.layers > 0 && c.vocab_size > 0, "CRSDLanguageModel: need layers > 0 and "
               "vocab_size > 0, got {} and {}", c.layers, c.vocab_size);
  embed = register_module("embed", std::make_shared<nn::Embedding>(c.vocab_size, c.d_model, -1, gen));
  for (int64_t l = 0; l < c.layers; ++l)
    cells.push_back(register_module(fmt::format("cells.{}", l), std::make_shared<CRSDCell>(c, gen)));
  norm = register_module("norm", std::make_shared<nn::LayerNorm>(c.d_model));
  head = register_module("head", std::make_shared<nn::Linear>(c.d_model, c.vocab_size, true, gen));
}

CRSDLanguageModel::State CRSDLanguageModel::initial_state(int64_t B, DType dt, Device dev) const {
  State st;
  for (auto& cell : cells) st.push_back(cell->initial_state(B, dt, dev));
  return st;
}

Tensor CRSDLanguageModel::forward(const Tensor& ids, State& state) {
  ENGRAM_CHECK(ids.dim() == 2 && ids.dtype() == DType::i64,
               "CRSDLanguageModel: expected token ids [B, T] of dtype i64, got {} {}",
               dtype_name(ids.dtype()), shape_str(ids.shape()));
  if (state.empty()) state = initial_state(ids.shape()[0], embed->weight.dtype(), embed->weight.device());
  ENGRAM_CHECK(state.size() == cells.size(), "CRSDLanguageModel: state has {} layers, model {}",
               state.size(), cells.size());
  Tensor x = embed->forward(ids);
  for (size_t l = 0; l < cells.size(); ++l) x = cells[l]->forward(x, state[l]);
  return note_output(head->forward(norm->forward(x)));
}

void detach_state(CRSDLanguageModel::State& state) {
  for (CRSDCellState& s : state) {
    s.reservoir = detach(s.reservoir);
    s.hidden = detach(s.hidden);
    s.hebbian = detach(s.hebbian);
    s.episodic.keys = detach(s.episodic.keys);
    s.episodic.values = detach(s.episodic.values);
  }
}

}  // namespace engram::memory
