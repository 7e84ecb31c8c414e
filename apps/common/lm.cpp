// apps/common/lm.cpp — the three language models behind apps/common/lm.h, and sampling.
#include "apps/common/lm.h"

#include <cmath>

#include "apps/common/memnet_lm.h"
#include "apps/common/memory_lm.h"
#include "apps/common/ssm_lm.h"
#include "memory/crsd/crsd.h"
#include "nn/attention.h"
#include "nn/recurrent.h"

namespace engram::apps {

void LanguageModel::detach_state(LMState& state) const {
  for (auto& [name, t] : state)
    if (t.defined()) t = detach(t);
}

std::vector<FieldSpec> lm_model_fields() {
  std::vector<std::string> kinds{"crsd", "lstm", "transformer"};
  for (const std::string& k : memory_lm_kinds()) kinds.push_back(k);
  kinds.push_back("memnet");
  for (const std::string& k : ssm_lm_kinds()) kinds.push_back(k);
  std::vector<FieldSpec> fields{
      choice_field("model.kind", "crsd", kinds,
                   "which language model: CRSD, a baseline, or a memory LM (apps/common/memory_lm.h)"),
      int_field("model.d_model", 128, 4, 4096, "width: CRSD/Transformer d_model, LSTM hidden size"),
      int_field("model.layers", 2, 1, 64, "CRSD cells, LSTM layers or Transformer blocks"),
      int_field("model.d_mem", 32, 1, 1024, "CRSD: memory key/value width (Hebbian, episodic)"),
      int_field("model.reservoir", 128, 1, 4096, "CRSD: echo-state reservoir size"),
      real_field("model.spectral_radius", 0.9, 0.0, 1.5, "CRSD: reservoir spectral radius (< 1 "
                 "forgets)"),
      real_field("model.leak", 0.5, 0.0, 1.0, "CRSD: reservoir leak rate"),
      int_field("model.slots", 32, 1, 4096, "CRSD: episodic buffer slots"),
      real_field("model.gamma_init", 0.9, 0.0, 1.0, "CRSD: initial Hebbian decay"),
      real_field("model.eta_init", 0.5, 0.0, 10.0, "CRSD: initial Hebbian write strength"),
      bool_field("model.use_hebbian", true, "CRSD ablation: Hebbian memory on/off"),
      bool_field("model.use_episodic", true, "CRSD ablation: episodic buffer on/off"),
      bool_field("model.use_spectral", true, "CRSD ablation: spectral mix on/off"),
      int_field("model.heads", 4, 1, 256, "Transformer: attention heads (d_model % heads == 0)"),
      int_field("model.ff_mult", 4, 1, 16, "Transformer: feed-forward width = ff_mult * d_model"),
      int_field("model.max_len", 0, 0, 65536, "Transformer: context length, 0 = train.seq_len"),
      real_field("model.dropout", 0.0, 0.0, 0.9, "LSTM (between layers) and Transformer dropout"),
      choice_field("model.dtype", "f32", {"f32", "f64"}, "parameters, states and arithmetic: f32, "
                   "or f64 (slow; for exact comparisons, e.g. of data-parallel and one-process runs)"),
  };
  for (FieldSpec& f : memory_lm_fields()) fields.push_back(std::move(f));
  for (FieldSpec& f : memnet_lm_fields()) fields.push_back(std::move(f));
  for (FieldSpec& f : ssm_lm_fields()) fields.push_back(std::move(f));
  return fields;
}

namespace {

// ---------------------------------------------------------------- CRSD

// CRSD's state flattened to named tensors, per layer l:
//   cells.l.reservoir [B, R], .hidden [B, C], .hebbian [B, M, M],
//   cells.l.episodic.{keys, values} [B, S, M], .{importance, age, filled} [B, S]
LMState pack(const memory::CRSDLanguageModel::State& st) {
  LMState out;
  for (size_t l = 0; l < st.size(); ++l) {
    const memory::CRSDCellState& c = st[l];
    std::string p = fmt::format("cells.{}.", l);
    out.insert(out.end(), {{p + "reservoir", c.reservoir}, {p + "hidden", c.hidden},
                           {p + "hebbian", c.hebbian}, {p + "episodic.keys", c.episodic.keys},
                           {p + "episodic.values", c.episodic.values},
                           {p + "episodic.importance", c.episodic.importance},
                           {p + "episodic.age", c.episodic.age},
                           {p + "episodic.filled", c.episodic.filled}});
  }
  return out;
}

memory::CRSDLanguageModel::State unpack(const LMState& s, size_t layers) {
  constexpr size_t kPerLayer = 8;
  ENGRAM_CHECK(s.size() == layers * kPerLayer, "CRSD state: expected {} tensors for {} layers, got {}",
               layers * kPerLayer, layers, s.size());
  memory::CRSDLanguageModel::State st(layers);
  for (size_t l = 0; l < layers; ++l) {
    const auto* t = &s[l * kPerLayer];
    ENGRAM_CHECK(t[0].first == fmt::format("cells.{}.reservoir", l), "CRSD state: unexpected "
                 "entry '{}'", t[0].first);
    st[l] = {t[0].second, t[1].second, t[2].second,
             {t[3].second, t[4].second, t[5].second, t[6].second, t[7].second}};
  }
  return st;
}

class CRSDLM : public LanguageModel {
 public:
  CRSDLM(const memory::CRSDConfig& cfg, Generator* gen) : model_(cfg, gen) {}
  std::string kind() const override { return "crsd"; }
  nn::Module& module() override { return model_; }
  int64_t vocab_size() const override { return model_.cfg.vocab_size; }
  LMState initial_state(int64_t batch) const override { return pack(fresh_state(batch)); }
  void detach_state(LMState& state) const override {
    auto st = unpack(state, model_.cells.size());
    memory::detach_state(st);
    state = pack(st);
  }
  Tensor forward(const Tensor& ids, LMState& state) override {
    auto st = state.empty() ? fresh_state(ids.size(0)) : unpack(state, model_.cells.size());
    Tensor logits = model_.forward(ids, st);
    state = pack(st);
    return logits;
  }
  // CRSDLanguageModel::forward, stage by stage.
  Tensor forward_traced(const Tensor& ids, LMState& state, nn::NamedTensors& stages) override {
    auto st = state.empty() ? fresh_state(ids.size(0)) : unpack(state, model_.cells.size());
    Tensor x = model_.embed->forward(ids);
    stages.emplace_back("embed", x);
    for (size_t l = 0; l < model_.cells.size(); ++l) {
      x = model_.cells[l]->forward(x, st[l]);
      stages.emplace_back(fmt::format("cells.{}", l), x);
    }
    x = model_.norm->forward(x);
    stages.emplace_back("norm", x);
    Tensor logits = model_.head->forward(x);
    stages.emplace_back("head", logits);
    state = pack(st);
    return logits;
  }

 private:
  // Zero states in the parameters' dtype and on their device (an f64 model needs f64 states).
  memory::CRSDLanguageModel::State fresh_state(int64_t batch) const {
    const Tensor& w = model_.embed->weight;
    return model_.initial_state(batch, w.dtype(), w.device());
  }
  memory::CRSDLanguageModel model_;
};

// ---------------------------------------------------------------- LSTM

class LSTMModule : public nn::Module {
 public:
  LSTMModule(int64_t V, int64_t H, int64_t L, double dropout, Generator* gen) {
    embed = register_module("embed", std::make_shared<nn::Embedding>(V, H, -1, gen));
    lstm = register_module("lstm", std::make_shared<nn::LSTM>(H, H, L, true, dropout, gen));
    head = register_module("head", std::make_shared<nn::Linear>(H, V, true, gen));
  }
  std::string type_name() const override { return "LSTMLanguageModel"; }
  std::shared_ptr<nn::Embedding> embed;
  std::shared_ptr<nn::LSTM> lstm;
  std::shared_ptr<nn::Linear> head;
};

class LSTMLM : public LanguageModel {
 public:
  LSTMLM(int64_t V, int64_t H, int64_t L, double dropout, Generator* gen) : m_(V, H, L, dropout, gen) {}
  std::string kind() const override { return "lstm"; }
  nn::Module& module() override { return m_; }
  int64_t vocab_size() const override { return m_.embed->num_embeddings; }
  LMState initial_state(int64_t B) const override {
    Shape s{m_.lstm->num_layers, B, m_.lstm->hidden_size};
    // Zero states in the parameters' dtype and on their device (an f64 model needs f64 states).
    const Tensor& w = m_.head->weight;
    return {{"h", zeros(s, w.dtype(), w.device())}, {"c", zeros(s, w.dtype(), w.device())}};
  }
  Tensor forward(const Tensor& ids, LMState& state) override { return run(ids, state, nullptr); }
  Tensor forward_traced(const Tensor& ids, LMState& state, nn::NamedTensors& stages) override {
    return run(ids, state, &stages);
  }

 private:
  Tensor run(const Tensor& ids, LMState& state, nn::NamedTensors* stages) {
    if (state.empty()) state = initial_state(ids.size(0));
    ENGRAM_CHECK(state.size() == 2, "LSTM state: expected h and c, got {} tensors", state.size());
    Tensor x = m_.embed->forward(ids);
    nn::LSTMOutput out = m_.lstm->forward(x, {state[0].second, state[1].second});
    Tensor logits = m_.head->forward(out.output);
    if (stages) stages->insert(stages->end(), {{"embed", x}, {"lstm", out.output}, {"head", logits}});
    state = {{"h", out.h_n}, {"c", out.c_n}};
    return logits;
  }
  LSTMModule m_;
};

// ---------------------------------------------------------------- Transformer

class TransformerModule : public nn::Module {
 public:
  TransformerModule(int64_t V, int64_t E, int64_t L, int64_t heads, int64_t ff, int64_t max_len,
                    double dropout, Generator* gen)
      : max_len(max_len) {
    embed = register_module("embed", std::make_shared<nn::Embedding>(V, E, -1, gen));
    pos = register_module("pos", std::make_shared<nn::Embedding>(max_len, E, -1, gen));
    for (int64_t l = 0; l < L; ++l)
      blocks.push_back(register_module(fmt::format("blocks.{}", l),
                                       std::make_shared<nn::TransformerBlock>(E, heads, ff, true,
                                                                              dropout, gen)));
    norm = register_module("norm", std::make_shared<nn::LayerNorm>(E));
    head = register_module("head", std::make_shared<nn::Linear>(E, V, true, gen));
  }
  std::string type_name() const override { return "TransformerLanguageModel"; }
  int64_t max_len;
  std::shared_ptr<nn::Embedding> embed, pos;
  std::vector<std::shared_ptr<nn::TransformerBlock>> blocks;
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::Linear> head;
};

class TransformerLM : public LanguageModel {
 public:
  template <class... A> explicit TransformerLM(A&&... a) : m_(std::forward<A>(a)...) {}
  std::string kind() const override { return "transformer"; }
  nn::Module& module() override { return m_; }
  int64_t vocab_size() const override { return m_.embed->num_embeddings; }
  LMState initial_state(int64_t) const override { return {}; }  // no context yet
  Tensor forward(const Tensor& ids, LMState& state) override { return run(ids, state, nullptr); }
  Tensor forward_traced(const Tensor& ids, LMState& state, nn::NamedTensors& stages) override {
    return run(ids, state, &stages);
  }

 private:
  Tensor run(const Tensor& ids, LMState& state, nn::NamedTensors* stages) {
    ENGRAM_CHECK(ids.dim() == 2 && ids.dtype() == DType::i64, "transformer: expected ids [B, T] "
                 "i64, got {} {}", dtype_name(ids.dtype()), shape_str(ids.shape()));
    const int64_t B = ids.size(0), T = ids.size(1), W = m_.max_len;
    ENGRAM_CHECK(T <= W, "transformer: {} tokens in one call exceed the context model.max_len={}",
                 T, W);
    // window = the last W tokens of (context, ids), built on the host (ids carry no gradient).
    Tensor context = state.empty() ? zeros({B, 0}, DType::i64) : state[0].second;
    ENGRAM_CHECK(context.size(0) == B, "transformer: context has batch {}, ids {}", context.size(0), B);
    const int64_t C = std::min(context.size(1), W - T), N = C + T;
    Tensor window = empty({B, N}, DType::i64);
    std::vector<int64_t> ctx = context.to_vector<int64_t>(), cur = ids.to_vector<int64_t>();
    for (int64_t b = 0; b < B; ++b) {
      int64_t* row = window.data<int64_t>() + b * N;
      for (int64_t i = 0; i < C; ++i) row[i] = ctx[b * context.size(1) + context.size(1) - C + i];
      for (int64_t t = 0; t < T; ++t) row[C + t] = cur[b * T + t];
    }
    // The host-built window and the positions go to the ids' device (a no-op on the CPU).
    window = raw::to_device(window, ids.device());
    Tensor x = add(m_.embed->forward(window),
                   m_.pos->forward(raw::to_device(arange(0, double(N), 1, DType::i64), ids.device())));
    if (stages) stages->emplace_back("embed+pos", x);
    for (size_t l = 0; l < m_.blocks.size(); ++l) {
      x = m_.blocks[l]->forward(x);
      if (stages) stages->emplace_back(fmt::format("blocks.{}", l), x);
    }
    x = m_.norm->forward(x);
    Tensor logits = m_.head->forward(C > 0 ? slice(x, 1, C, N) : x);  // only the new positions
    if (stages) stages->insert(stages->end(), {{"norm", x}, {"head", logits}});
    const int64_t keep = std::min(N, W - 1);  // the next call brings at least one token
    state = keep > 0 ? LMState{{"context", raw::contiguous(raw::narrow(window, 1, N - keep, keep))}}
                     : LMState{};
    return logits;
  }
  TransformerModule m_;
};

}  // namespace

namespace {
std::unique_ptr<LanguageModel> build_language_model(const Config& cfg, int64_t V, Generator* gen);
}

std::unique_ptr<LanguageModel> make_language_model(const Config& cfg, int64_t V, Generator* gen) {
  std::unique_ptr<LanguageModel> lm = build_language_model(cfg, V, gen);
  if (cfg.get_string("model.dtype") == "f64") lm->module().to(DType::f64);  // drawn in f32, then widened
  return lm;
}

namespace {
std::unique_ptr<LanguageModel> build_language_model(const Config& cfg, int64_t V, Generator* gen) {
  const std::string kind = cfg.get_string("model.kind");
  if (is_memory_lm_kind(kind)) return make_memory_lm(cfg, V, gen);
  if (kind == "memnet") return make_memnet_lm(cfg, V, gen);
  if (is_ssm_lm_kind(kind)) return make_ssm_lm(cfg, V, gen);
  const int64_t C = cfg.get_int("model.d_model"), L = cfg.get_int("model.layers");
  if (kind == "crsd") {
    memory::CRSDConfig c;
    c.vocab_size = V;
    c.d_model = C;
    c.layers = L;
    c.d_mem = cfg.get_int("model.d_mem");
    c.reservoir.size = cfg.get_int("model.reservoir");
    c.reservoir.spectral_radius = cfg.get_real("model.spectral_radius");
    c.reservoir.leak = cfg.get_real("model.leak");
    c.episodic.slots = cfg.get_int("model.slots");
    c.hebbian.gamma_init = cfg.get_real("model.gamma_init");
    c.hebbian.eta_init = cfg.get_real("model.eta_init");
    c.use_hebbian = cfg.get_bool("model.use_hebbian");
    c.use_episodic = cfg.get_bool("model.use_episodic");
    c.use_spectral = cfg.get_bool("model.use_spectral");
    return std::make_unique<CRSDLM>(c, gen);
  }
  const double dropout = cfg.get_real("model.dropout");
  if (kind == "lstm") return std::make_unique<LSTMLM>(V, C, L, dropout, gen);
  const int64_t heads = cfg.get_int("model.heads");
  ENGRAM_CHECK(C % heads == 0, "config: model.d_model={} must be a multiple of model.heads={}", C,
               heads);
  int64_t max_len = cfg.get_int("model.max_len");
  if (max_len == 0) max_len = cfg.get_int("train.seq_len");
  return std::make_unique<TransformerLM>(V, C, L, heads, cfg.get_int("model.ff_mult") * C, max_len,
                                         dropout, gen);
}
}  // namespace

std::vector<int32_t> generate(LanguageModel& lm, std::span<const int32_t> prompt, int64_t length,
                              double temperature, Generator& gen) {
  ENGRAM_CHECK(!prompt.empty(), "generate: the prompt must hold at least one token");
  NoGradGuard no_grad;
  const bool was_training = lm.module().is_training();
  lm.module().eval();
  LMState state = lm.initial_state(1);
  // The tokens go to the model's device (that of its parameters; a no-op on the CPU).
  auto params = lm.module().parameters();
  const Device dev = params.empty() ? Device::cpu : params[0].device();
  std::vector<int64_t> ids(prompt.begin(), prompt.end());
  Tensor logits = lm.forward(raw::to_device(from_vector(ids, {1, int64_t(ids.size())}), dev), state);
  std::vector<int32_t> out;
  const int64_t V = lm.vocab_size();
  for (int64_t n = 0; n < length; ++n) {
    // logits of the last position -> probabilities at this temperature (max subtracted first).
    std::vector<float> z = raw::contiguous(select(select(logits, 0, 0), 0, logits.size(1) - 1))
                               .to_vector<float>();
    int32_t next = 0;
    if (temperature <= 0) {
      next = int32_t(std::max_element(z.begin(), z.end()) - z.begin());
    } else {
      double zmax = *std::max_element(z.begin(), z.end()), total = 0;
      std::vector<double> p(V);
      for (int64_t v = 0; v < V; ++v) total += p[v] = std::exp((z[v] - zmax) / temperature);
      double u = gen.uniform() * total;
      next = int32_t(V - 1);
      for (int64_t v = 0; v < V; ++v)
        if ((u -= p[v]) < 0) {
          next = int32_t(v);
          break;
        }
    }
    out.push_back(next);
    logits = lm.forward(raw::to_device(from_vector(std::vector<int64_t>{next}, {1, 1}), dev), state);
  }
  lm.module().train(was_training);
  return out;
}

}  // namespace engram::apps
