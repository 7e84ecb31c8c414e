// memory/titans/memory_blocks.cpp — see memory_blocks.h.
#include "memory/titans/memory_blocks.h"

#include "autograd/ops.h"

namespace engram::titans {

NeuralMemoryState load_neural(const BlockState& st, const std::string& prefix) {
  NeuralMemoryState s;
  if (auto it = st.find(prefix + "memory"); it != st.end()) s.memory = it->second;
  if (auto it = st.find(prefix + "momentum"); it != st.end()) s.momentum = it->second;
  if (auto it = st.find(prefix + "memory2"); it != st.end()) s.memory2 = it->second;
  if (auto it = st.find(prefix + "momentum2"); it != st.end()) s.momentum2 = it->second;
  return s;
}

void store_neural(const NeuralMemoryState& s, BlockState& st, const std::string& prefix) {
  st[prefix + "memory"] = s.memory;
  st[prefix + "momentum"] = s.momentum;
  if (s.memory2.defined()) st[prefix + "memory2"] = s.memory2, st[prefix + "momentum2"] = s.momentum2;
}

// ---------------------------------------------------------------- MAG

MAGBlock::MAGBlock(const cmr::LocalBlockConfig& local, const NeuralMemoryConfig& mem, Generator* gen)
    : cmr::MemoryLMBlock(local, gen) {
  memory = register_module("memory", std::make_shared<NeuralMemory>(mem, gen));
  norm_attn = register_module("norm_attn", std::make_shared<nn::RMSNorm>(local.d_model));
  norm_memory = register_module("norm_memory", std::make_shared<nn::RMSNorm>(local.d_model));
  out = register_module("out", std::make_shared<nn::Linear>(local.d_model, local.d_model, true, gen));
}

Tensor MAGBlock::forward(const Tensor& x, BlockState& st, cmr::SharedCMRBank*) {
  Tensor h = norm1->forward(x);
  Tensor y = attend(h, st);
  NeuralMemoryState ms = load_neural(st, "neural.");
  Tensor m = memory->forward(h, ms);
  store_neural(ms, st, "neural.");
  Tensor o = out->forward(mul(norm_attn->forward(y), sigmoid(norm_memory->forward(m))));
  return note_output(feed_forward(add(x, o)));
}

// ---------------------------------------------------------------- gated hybrid

GatedHybridBlock::GatedHybridBlock(const cmr::LocalBlockConfig& local, const NeuralMemoryConfig& mem,
                                   const cmr::EpisodicCMRConfig& epi, bool shared, HybridGate g,
                                   Generator* gen)
    : cmr::MemoryLMBlock(local, gen), gate_kind(g) {
  const int64_t E = local.d_model;
  neural = register_module("neural", std::make_shared<NeuralMemory>(mem, gen));
  episodic = register_module("episodic", std::make_shared<cmr::CMRSide>(epi, shared, gen));
  gate = register_module("gate", std::make_shared<nn::Linear>(E, g == HybridGate::sigmoid ? 1 : 3,
                                                              true, gen));
  if (g == HybridGate::sigmoid) mix = register_module("mix", std::make_shared<nn::Linear>(2 * E, E, true, gen));
}

Tensor GatedHybridBlock::forward(const Tensor& x, BlockState& st, cmr::SharedCMRBank* shared) {
  Tensor h = norm1->forward(x);
  Tensor a = attend(h, st);
  NeuralMemoryState ms = load_neural(st, "neural.");
  Tensor zn = neural->forward(h, ms);
  store_neural(ms, st, "neural.");
  Tensor ze = episodic->forward(h, h, st, shared);
  Tensor z;
  if (gate_kind == HybridGate::sigmoid) {
    Tensor g = sigmoid(gate->forward(h));  // [B, T, 1]
    last_gate = detach(squeeze(g, 2));
    Tensor merged = add(mul(g, zn), mul(1.0 - g, ze));
    z = mix->forward(cat({a, merged}, 2));
  } else {
    Tensor g = softmax(gate->forward(h), -1);  // [B, T, 3]: attention, neural, episodic
    last_gate = detach(g);
    z = add(add(mul(slice(g, 2, 0, 1), a), mul(slice(g, 2, 1, 2), zn)), mul(slice(g, 2, 2, 3), ze));
  }
  return note_output(feed_forward(add(x, z)));
}

}  // namespace engram::titans
