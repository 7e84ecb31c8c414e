// apps/common/memnet_lm.cpp — see memnet_lm.h.
#include "apps/common/memnet_lm.h"

#include <cmath>

#include "autograd/ops.h"

namespace engram::apps {

namespace {

const char* kBankNames[] = {"slots", "links", "usage", "writes", "age", "activity"};
Tensor* bank_field(memnet::MemoryBankState& s, int i) {
  Tensor* f[] = {&s.slots, &s.links, &s.usage, &s.writes, &s.age, &s.activity};
  return f[i];
}

double scalar(const Tensor& t) { return to_dtype(t, DType::f64).item(); }

class MemNetLM : public LanguageModel {
 public:
  MemNetLM(const Config& cfg, int64_t V, Generator* gen)
      : m_(memnet_config(cfg, V), gen),
        l_hal_(cfg.get_real("model.memnet_hallucination")),
        l_util_(cfg.get_real("model.memnet_utilization")),
        l_sparse_(cfg.get_real("model.memnet_sparsity")) {}
  std::string kind() const override { return "memnet"; }
  nn::Module& module() override { return m_; }
  int64_t vocab_size() const override { return m_.cfg.vocab; }
  LMState initial_state(int64_t) const override { return {}; }  // the memory starts empty
  Tensor forward(const Tensor& ids, LMState& state) override { return run(ids, state, nullptr); }
  Tensor forward_traced(const Tensor& ids, LMState& state, nn::NamedTensors& stages) override {
    return run(ids, state, &stages);
  }
  Tensor auxiliary_loss() override {
    if (!m_.cfg.memory || !m_.is_training()) return {};
    memnet::MemNetLosses l = memnet::memnet_losses(stats_, m_.cfg.bank.slots);
    Tensor total;
    auto add_term = [&](const Tensor& t, double weight) {
      if (!t.defined() || weight == 0) return;
      total = total.defined() ? add(total, mul(t, weight)) : mul(t, weight);
    };
    add_term(l.hallucination, l_hal_);
    add_term(l.utilization, l_util_);
    add_term(l.sparsity, l_sparse_);
    return total;
  }
  std::vector<std::pair<std::string, double>> diagnostics() override {
    std::vector<std::pair<std::string, double>> out;
    if (!m_.cfg.memory || !stats_.read_weights.defined()) return out;
    NoGradGuard ng;
    memnet::MemNetLosses l = memnet::memnet_losses(stats_, m_.cfg.bank.slots);
    if (l.hallucination.defined()) out.emplace_back("memnet.hallucination", scalar(l.hallucination));
    if (l.utilization.defined()) {
      out.emplace_back("memnet.utilization", scalar(l.utilization));
      out.emplace_back("memnet.sparsity", scalar(l.sparsity));
      const Tensor& w = stats_.read_weights;
      out.emplace_back("memnet.read_entropy", scalar(mean(neg(sum(mul(w, log(add(w, 1e-12))), {-1})))) /
                                                  std::log(double(m_.cfg.bank.slots)));
    }
    if (stats_.policy.defined()) {
      Tensor share = to_dtype(mean(stats_.policy, {0, 1, 2}), DType::f64);
      std::vector<double> v = share.to_vector<double>();
      std::vector<std::string> names{"top_k"};
      if (m_.cfg.bank.policy_uniform) names.push_back("uniform");
      if (m_.cfg.bank.policy_random) names.push_back("random");
      for (size_t p = 0; p < names.size(); ++p) out.emplace_back("memnet.policy." + names[p], v[p]);
    }
    out.emplace_back("memnet.spread", m_.bank->spread());
    if (m_.synthesizer) {
      out.emplace_back("memnet.dream_gate", m_.synthesizer->gate());
      if (stats_.dreams) out.emplace_back("memnet.dream_change", stats_.dream_change);
    }
    if (stats_.write_mass > 0) out.emplace_back("memnet.slot_reuse", stats_.reused_mass / stats_.write_mass);
    out.emplace_back("memnet.written_slots", stats_.written_slots);
    return out;
  }
  memnet::MemNet& model() { return m_; }
  memnet::MemNetTrace* trace = nullptr;

 private:
  Tensor run(const Tensor& ids, LMState& state, nn::NamedTensors* stages) {
    memnet::MemNetState s = unpack_memnet_state(state, m_);
    Tensor logits = m_.forward(ids, s, &stats_, trace, stages);
    state = pack_memnet_state(s, ids.device());
    return logits;
  }
  memnet::MemNet m_;
  double l_hal_, l_util_, l_sparse_;
  memnet::MemNetStats stats_;
};

}  // namespace

std::vector<FieldSpec> memnet_lm_fields() {
  return {
      int_field("model.memnet_slots", 32, 1, 4096, "MemNet: memory slots N"),
      int_field("model.memnet_width", 32, 1, 1024, "MemNet: slot width d"),
      int_field("model.memnet_read_heads", 2, 1, 64, "MemNet: read heads R"),
      int_field("model.memnet_write_heads", 1, 1, 64, "MemNet: write heads W"),
      int_field("model.memnet_top_k", 4, 1, 4096, "MemNet: k of the top-k read policy"),
      int_field("model.memnet_bottleneck", 16, 1, 1024, "MemNet: semantic bottleneck width"),
      int_field("model.memnet_segment", 4, 1, 4096, "MemNet: tokens per write (one write per head)"),
      choice_field("model.memnet_address", "cosine", {"cosine", "dot"},
                   "MemNet: content scores beta cos(q, S_i) or beta q.S_i / sqrt(d)"),
      choice_field("model.memnet_policy", "mixed", {"mixed", "top_k"},
                   "MemNet: the meta-policy mixes top-k, uniform and random reads, or top-k alone"),
      bool_field("model.memnet_graph", true, "MemNet: STDP links and spreading activation"),
      real_field("model.memnet_spread", 0.1, 0.0, 0.99, "MemNet: spreading activation a at init"),
      bool_field("model.memnet_spread_learned", true, "MemNet: learn a (else it stays fixed)"),
      real_field("model.memnet_stdp_rate", 0.5, 0.0, 1.0, "MemNet: STDP rate eta"),
      real_field("model.memnet_link_decay", 0.98, 0.0, 1.0, "MemNet: link decay per segment"),
      real_field("model.memnet_usage_decay", 0.98, 0.0, 1.0, "MemNet: usage decay per segment"),
      real_field("model.memnet_alloc_temperature", 0.0, 0.0, 10.0, "MemNet: allocation softmax(-u / tau); "
                 "0 = the least-used slot"),
      int_field("model.memnet_dream_every", 8, 0, 1 << 20, "MemNet: segments between dreams "
                "(0 = no dreaming)"),
      real_field("model.memnet_dream_gate", 0.1, -0.99, 0.99, "MemNet: the dream's gate g at init"),
      bool_field("model.memnet_memory", true, "MemNet: false = the windowed controller alone"),
      real_field("model.memnet_hallucination", 0.1, 0.0, 100.0, "MemNet: weight l1 of L_hal"),
      real_field("model.memnet_utilization", 0.01, 0.0, 100.0, "MemNet: weight l2 of L_util"),
      real_field("model.memnet_sparsity", 0.01, 0.0, 100.0, "MemNet: weight l3 of L_sparse"),
  };
}

memnet::MemNetConfig memnet_config(const Config& cfg, int64_t V) {
  memnet::MemNetConfig c;
  c.vocab = V, c.d_model = cfg.get_int("model.d_model"), c.layers = cfg.get_int("model.layers");
  c.heads = cfg.get_int("model.heads"), c.window = cfg.get_int("model.window");
  c.ff_mult = cfg.get_int("model.ff_mult"), c.dropout = cfg.get_real("model.dropout");
  c.segment = cfg.get_int("model.memnet_segment");
  c.dream_every = cfg.get_int("model.memnet_dream_every");
  c.dream_gate = cfg.get_real("model.memnet_dream_gate");
  c.memory = cfg.get_bool("model.memnet_memory");
  memnet::MemoryBankConfig& b = c.bank;
  b.slots = cfg.get_int("model.memnet_slots"), b.width = cfg.get_int("model.memnet_width");
  b.read_heads = cfg.get_int("model.memnet_read_heads");
  b.write_heads = cfg.get_int("model.memnet_write_heads");
  b.top_k = cfg.get_int("model.memnet_top_k"), b.bottleneck = cfg.get_int("model.memnet_bottleneck");
  b.address = cfg.get_string("model.memnet_address") == "dot" ? memnet::Address::dot
                                                              : memnet::Address::cosine;
  b.policy_uniform = b.policy_random = cfg.get_string("model.memnet_policy") == "mixed";
  b.graph = cfg.get_bool("model.memnet_graph");
  b.spread_init = cfg.get_real("model.memnet_spread");
  b.spread_learned = cfg.get_bool("model.memnet_spread_learned");
  b.stdp_rate = cfg.get_real("model.memnet_stdp_rate");
  b.link_decay = cfg.get_real("model.memnet_link_decay");
  b.usage_decay = cfg.get_real("model.memnet_usage_decay");
  b.alloc_temperature = cfg.get_real("model.memnet_alloc_temperature");
  b.seed = uint64_t(cfg.get_int("train.seed"));
  ENGRAM_CHECK(c.bank.width % c.dream_heads == 0 || c.dream_every == 0, "config: "
               "model.memnet_width={} must be a multiple of {} (the dream's heads)", b.width, c.dream_heads);
  return c;
}

std::unique_ptr<LanguageModel> make_memnet_lm(const Config& cfg, int64_t V, Generator* gen) {
  return std::make_unique<MemNetLM>(cfg, V, gen);
}

memnet::MemNet* memnet_of(LanguageModel& lm) {
  auto* m = dynamic_cast<MemNetLM*>(&lm);
  return m ? &m->model() : nullptr;
}

void set_memnet_trace(LanguageModel& lm, memnet::MemNetTrace* trace) {
  auto* m = dynamic_cast<MemNetLM*>(&lm);
  ENGRAM_CHECK(m, "set_memnet_trace: the model is '{}', not memnet", lm.kind());
  m->trace = trace;
}

LMState pack_memnet_state(const memnet::MemNetState& s, Device device) {
  LMState out;
  for (size_t l = 0; l < s.controller.size(); ++l)
    for (auto& [name, t] : s.controller[l]) out.emplace_back(fmt::format("controller.{}.{}", l, name), t);
  if (s.started()) {
    memnet::MemoryBankState b = s.bank;
    for (int i = 0; i < 6; ++i) out.emplace_back(std::string("bank.") + kBankNames[i], *bank_field(b, i));
    out.insert(out.end(), {{"pending.h", s.pending_h}, {"pending.x", s.pending_x},
                           {"pending.reads", s.pending_reads}});
  }
  out.emplace_back("position", full({1}, double(s.position), DType::f64, device));
  return out;
}

memnet::MemNetState unpack_memnet_state(const LMState& st, const memnet::MemNet& m) {
  memnet::MemNetState s;
  s.controller.resize(m.controller->blocks.size());
  for (auto& [name, t] : st) {
    if (name == "position") {
      s.position = int64_t(to_dtype(t, DType::f64).item());
    } else if (name.starts_with("controller.")) {
      const size_t dot = name.find('.', 11);
      ENGRAM_CHECK(dot != std::string::npos, "memnet: unexpected state entry '{}'", name);
      const int64_t l = std::stoll(name.substr(11, dot - 11));
      ENGRAM_CHECK(l >= 0 && l < int64_t(s.controller.size()), "memnet: state entry '{}' names a "
                   "block the model lacks", name);
      s.controller[l][name.substr(dot + 1)] = t;
    } else if (name == "pending.h") {
      s.pending_h = t;
    } else if (name == "pending.x") {
      s.pending_x = t;
    } else if (name == "pending.reads") {
      s.pending_reads = t;
    } else {
      bool known = false;
      for (int i = 0; i < 6 && !known; ++i)
        if (name == std::string("bank.") + kBankNames[i]) *bank_field(s.bank, i) = t, known = true;
      ENGRAM_CHECK(known, "memnet: unexpected state entry '{}'", name);
    }
  }
  ENGRAM_CHECK(!s.started() || (s.pending_h.defined() && s.pending_reads.defined() &&
                                s.bank.links.defined()),
               "memnet: the carried state is incomplete (bank.slots without pending.* or bank.links)");
  return s;
}

}  // namespace engram::apps
