// apps/common/memory_lm.cpp — see memory_lm.h.
#include "apps/common/memory_lm.h"

#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "memory/titans/memory_blocks.h"

namespace engram::apps {

namespace {

const std::vector<std::string> kKinds = {"local_attention", "cmr_parallel", "cmr_series",
                                         "titans_mag", "hybrid"};

class MemoryTransformer : public nn::Module {
 public:
  MemoryTransformer(const Config& cfg, int64_t V, Generator* gen) : kind(cfg.get_string("model.kind")) {
    const int64_t E = cfg.get_int("model.d_model"), L = cfg.get_int("model.layers"),
                  H = cfg.get_int("model.heads");
    ENGRAM_CHECK(E % H == 0, "config: model.d_model={} must be a multiple of model.heads={}", E, H);
    cmr::LocalBlockConfig local;
    local.d_model = E, local.heads = H, local.window = cfg.get_int("model.window");
    local.ff_mult = cfg.get_int("model.ff_mult"), local.dropout = cfg.get_real("model.dropout");
    if (kind == "titans_mag") local.persistent = cfg.get_int("model.persistent");
    cmr::EpisodicCMRConfig epi;
    epi.d_model = E, epi.heads = cfg.get_int("model.memory_heads");
    epi.head_dim = E / epi.heads;
    ENGRAM_CHECK(E % epi.heads == 0, "config: model.d_model={} must be a multiple of "
                 "model.memory_heads={}", E, epi.heads);
    epi.slots = cfg.get_int("model.memory_slots"), epi.segment = cfg.get_int("model.memory_segment");
    epi.policy = cfg.get_string("model.memory_policy") == "ring" ? cmr::SlotPolicy::ring
                                                                   : cmr::SlotPolicy::lowest_use;
    epi.read = cfg.get_string("model.memory_read") == "softmax" ? cmr::ReadRule::softmax
                                                                 : cmr::ReadRule::cosine;
    epi.temperature = cfg.get_real("model.memory_temperature");
    epi.top_k = cfg.get_int("model.memory_top_k");
    epi.pre_assoc = cfg.get_bool("model.memory_pre_assoc");
    titans::NeuralMemoryConfig neural;
    neural.d_model = E, neural.heads = epi.heads, neural.head_dim = epi.head_dim;
    neural.chunk = cfg.get_int("model.titans_chunk"), neural.max_lr = cfg.get_real("model.titans_max_lr");
    neural.depth = cfg.get_int("model.titans_depth");
    shared = cfg.get_string("model.memory_placement") == "shared" &&
             (kind == "cmr_parallel" || kind == "cmr_series" || kind == "hybrid");
    const bool memory_first = cfg.get_string("model.memory_order") == "memory_first";
    const auto gate = cfg.get_string("model.hybrid_gate") == "sigmoid" ? titans::HybridGate::sigmoid
                                                                        : titans::HybridGate::softmax;
    embed = register_module("embed", std::make_shared<nn::Embedding>(V, E, -1, gen));
    if (shared) shared_bank = register_module("shared_bank", std::make_shared<cmr::CMRBank>(epi, gen));
    for (int64_t l = 0; l < L; ++l) {
      std::shared_ptr<cmr::MemoryLMBlock> b;
      if (kind == "local_attention") b = std::make_shared<cmr::LocalAttentionBlock>(local, gen);
      else if (kind == "cmr_parallel")
        b = std::make_shared<cmr::ParallelAttentionCMRBlock>(local, epi, shared, gen);
      else if (kind == "cmr_series")
        b = std::make_shared<cmr::SeriesAttentionCMRBlock>(local, epi, shared, memory_first, gen);
      else if (kind == "titans_mag") b = std::make_shared<titans::MAGBlock>(local, neural, gen);
      else b = std::make_shared<titans::GatedHybridBlock>(local, neural, epi, shared, gate, gen);
      blocks.push_back(register_module(fmt::format("blocks.{}", l), b));
    }
    norm = register_module("norm", std::make_shared<nn::LayerNorm>(E));
    head = register_module("head", std::make_shared<nn::Linear>(E, V, true, gen));
    bank_cfg = epi;
  }
  std::string type_name() const override { return "MemoryTransformer"; }

  std::string kind;
  bool shared = false;
  cmr::EpisodicCMRConfig bank_cfg;
  std::shared_ptr<nn::Embedding> embed;
  std::shared_ptr<cmr::CMRBank> shared_bank;
  std::vector<std::shared_ptr<cmr::MemoryLMBlock>> blocks;
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::Linear> head;
};

class MemoryLM : public LanguageModel {
 public:
  MemoryLM(const Config& cfg, int64_t V, Generator* gen) : m_(cfg, V, gen) {}
  std::string kind() const override { return m_.kind; }
  nn::Module& module() override { return m_; }
  int64_t vocab_size() const override { return m_.embed->num_embeddings; }
  LMState initial_state(int64_t) const override { return {}; }  // every memory starts empty
  Tensor forward(const Tensor& ids, LMState& state) override { return run(ids, state, nullptr); }
  Tensor forward_traced(const Tensor& ids, LMState& state, nn::NamedTensors& stages) override {
    return run(ids, state, &stages);
  }
  MemoryTransformer& model() { return m_; }
  // The hybrid gate of the last forward, per layer: gate.<l>.mean and .std over its B x T tokens
  // (sigmoid: the neural memory's weight g; softmax: the mean share of attention/neural/episodic).
  std::vector<std::pair<std::string, double>> diagnostics() override {
    std::vector<std::pair<std::string, double>> out;
    for (size_t l = 0; l < m_.blocks.size(); ++l) {
      auto* h = dynamic_cast<titans::GatedHybridBlock*>(m_.blocks[l].get());
      if (!h || !h->last_gate.defined()) continue;
      std::vector<double> g = to_dtype(h->last_gate, DType::f64).to_vector<double>();
      if (h->gate_kind == titans::HybridGate::softmax) {
        const char* names[] = {"attention", "neural", "episodic"};
        for (int s = 0; s < 3; ++s) {
          double m = 0;
          for (size_t i = s; i < g.size(); i += 3) m += g[i];
          out.emplace_back(fmt::format("gate.{}.{}", l, names[s]), m / double(g.size() / 3));
        }
        continue;
      }
      double m = 0, sq = 0;
      for (double v : g) m += v, sq += v * v;
      m /= double(g.size());
      out.emplace_back(fmt::format("gate.{}.mean", l), m);
      out.emplace_back(fmt::format("gate.{}.std", l), std::sqrt(std::max(0.0, sq / double(g.size()) - m * m)));
    }
    return out;
  }

 private:
  Tensor run(const Tensor& ids, LMState& state, nn::NamedTensors* stages) {
    ENGRAM_CHECK(ids.dim() == 2 && ids.dtype() == DType::i64, "{}: expected ids [B, T] i64, got {} {}",
                 m_.kind, dtype_name(ids.dtype()), shape_str(ids.shape()));
    const int64_t B = ids.size(0), L = int64_t(m_.blocks.size());
    // the flat named state -> one map per block (and the shared bank's)
    std::vector<cmr::BlockState> per_block(L);
    cmr::BlockState bank_state;
    for (auto& [name, t] : state) {
      if (name.starts_with("shared_bank.")) {
        bank_state[name.substr(12)] = t;
        continue;
      }
      const size_t dot = name.find('.', 7);
      ENGRAM_CHECK(name.starts_with("blocks.") && dot != std::string::npos, "{}: unexpected state "
                   "entry '{}'", m_.kind, name);
      const int64_t l = std::stoll(name.substr(7, dot - 7));
      ENGRAM_CHECK(l >= 0 && l < L, "{}: state entry '{}' names a block the model lacks", m_.kind, name);
      per_block[l][name.substr(dot + 1)] = t;
    }
    Tensor x = m_.embed->forward(ids);
    if (stages) stages->emplace_back("embed", x);
    std::unique_ptr<cmr::SharedCMRBank> shared;
    if (m_.shared) {
      cmr::CMRBankState s = cmr::load_bank(bank_state, "", m_.bank_cfg, B, x.dtype(), x.device());
      shared = std::make_unique<cmr::SharedCMRBank>(cmr::SharedCMRBank{m_.shared_bank->write(x, s), s, {}});
    }
    for (int64_t l = 0; l < L; ++l) {
      x = m_.blocks[l]->forward(x, per_block[l], shared.get());
      if (stages) stages->emplace_back(fmt::format("blocks.{}", l), x);
    }
    x = m_.norm->forward(x);
    Tensor logits = m_.head->forward(x);
    if (stages) stages->insert(stages->end(), {{"norm", x}, {"head", logits}});
    state.clear();
    for (int64_t l = 0; l < L; ++l)
      for (auto& [name, t] : per_block[l]) state.emplace_back(fmt::format("blocks.{}.{}", l, name), t);
    if (shared) {
      cmr::BlockState out;
      cmr::store_bank(m_.shared_bank->next_state(shared->writes, shared->plan), out, "");
      for (auto& [name, t] : out) state.emplace_back("shared_bank." + name, t);
    }
    return logits;
  }
  MemoryTransformer m_;
};

}  // namespace

bool is_memory_lm_kind(const std::string& kind) {
  return std::find(kKinds.begin(), kKinds.end(), kind) != kKinds.end();
}
std::vector<std::string> memory_lm_kinds() { return kKinds; }

std::vector<FieldSpec> memory_lm_fields() {
  return {
      int_field("model.window", 32, 2, 65536, "memory LMs: tokens the local attention sees"),
      int_field("model.persistent", 4, 0, 1024, "titans_mag: persistent memory tokens"),
      int_field("model.memory_heads", 4, 1, 256, "memory LMs: heads of the episodic and neural "
                "memories (d_model % memory_heads == 0)"),
      int_field("model.memory_slots", 64, 1, 65536, "episodic CMR: slots M"),
      int_field("model.memory_segment", 1, 1, 65536, "episodic CMR: one write every S tokens"),
      choice_field("model.memory_policy", "ring", {"ring", "lowest_use"},
                   "episodic CMR: which slot a write replaces"),
      choice_field("model.memory_read", "softmax", {"softmax", "cosine"},
                   "episodic CMR: q.c/sqrt(d) or cos(q, c)/temperature"),
      real_field("model.memory_temperature", 0.1, 1e-4, 100.0, "episodic CMR: cosine temperature"),
      int_field("model.memory_top_k", 0, 0, 65536, "episodic CMR: read only the k best slots (0 = all)"),
      bool_field("model.memory_pre_assoc", false, "episodic CMR: a learned M_pre c_t term per head"),
      choice_field("model.memory_placement", "per_block", {"per_block", "shared"},
                   "episodic CMR: a bank in every block, or one bank all blocks read"),
      choice_field("model.memory_order", "attention_first", {"attention_first", "memory_first"},
                   "cmr_series: which of attention and memory comes first"),
      int_field("model.titans_depth", 1, 1, 2, "Titans: 1 = a matrix memory, 2 = W2 SiLU(W1 x) "
                "(0.5 and 0.1 diverged; 0.02 trained)"),
      int_field("model.titans_chunk", 1, 1, 65536, "Titans: tokens per chunk of inner gradients "
                "(max_lr x chunk <= 1)"),
      real_field("model.titans_max_lr", 0.5, 1e-6, 10.0, "Titans: ceiling of the inner learning rate"),
      choice_field("model.hybrid_gate", "sigmoid", {"sigmoid", "softmax"},
                   "hybrid: g z_neural + (1-g) z_episodic, or a softmax over attention/neural/episodic"),
  };
}

std::unique_ptr<LanguageModel> make_memory_lm(const Config& cfg, int64_t V, Generator* gen) {
  return std::make_unique<MemoryLM>(cfg, V, gen);
}

std::vector<Tensor> memory_lm_gates(LanguageModel& lm) {
  std::vector<Tensor> out;
  auto* m = dynamic_cast<MemoryLM*>(&lm);
  if (!m) return out;
  for (auto& b : m->model().blocks)
    if (auto* h = dynamic_cast<titans::GatedHybridBlock*>(b.get())) out.push_back(h->last_gate);
  return out;
}

}  // namespace engram::apps
