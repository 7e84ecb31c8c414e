// apps/common/ssm_lm.cpp — see ssm_lm.h.
#include "apps/common/ssm_lm.h"

#include <fmt/format.h>

#include "nn/ssm/block.h"
#include "nn/ssm/linoss.h"
#include "nn/ssm/mamba.h"
#include "nn/ssm/retnet.h"
#include "nn/ssm/s4.h"
#include "nn/ssm/s4d.h"
#include "nn/ssm/s5.h"
#include "nn/ssm/samba.h"

namespace engram::apps {

using nn::ssm::ResidualBlock;
using nn::ssm::SequenceMixer;

std::vector<std::string> ssm_lm_kinds() {
  return {"s4d", "s4", "s5", "mamba", "linoss", "retnet", "samba"};
}

bool is_ssm_lm_kind(const std::string& kind) {
  for (const std::string& k : ssm_lm_kinds())
    if (k == kind) return true;
  return false;
}

std::vector<FieldSpec> ssm_lm_fields() {
  return {
      int_field("model.ssm_state", 0, 0, 4096, "SSMs: state size (S4/S4D N, S5/LinOSS P, Mamba "
                "d_state); 0 = the family's default (64, 64, 64, 16)"),
      choice_field("model.ssm_init", "lin", {"lin", "inv"}, "S4D: S4D-Lin or S4D-Inv initialisation"),
      choice_field("model.ssm_discretization", "default", {"default", "zoh", "bilinear", "im", "imex"},
                   "S5: zoh (default) or bilinear; LinOSS: im (default) or imex"),
      int_field("model.ssm_blocks", 8, 1, 1024, "S5: HiPPO-N blocks J of the initial state matrix"),
      int_field("model.ssm_expand", 2, 1, 16, "Mamba/Samba: d_inner = expand * d_model"),
      int_field("model.ssm_conv", 4, 1, 64, "Mamba/Samba: causal conv width d_conv"),
      int_field("model.retnet_chunk", 0, 0, 65536, "RetNet: chunkwise form with this chunk, 0 = "
                "the parallel form"),
      int_field("model.samba_window", 64, 1, 65536, "Samba: sliding-window attention width W"),
  };
}

namespace {

int64_t state_size(const Config& cfg, int64_t family_default) {
  int64_t n = cfg.get_int("model.ssm_state");
  return n > 0 ? n : family_default;
}

// The discretisation named by model.ssm_discretization, among `allowed` (the first is the
// family's default); anything else is a config error naming the key and the family.
std::string discretization(const Config& cfg, const std::string& kind,
                           const std::vector<std::string>& allowed) {
  std::string d = cfg.get_string("model.ssm_discretization");
  if (d == "default") return allowed.front();
  for (const std::string& a : allowed)
    if (a == d) return d;
  ENGRAM_CHECK(false, "config: model.ssm_discretization={} does not apply to model.kind={} (use {})",
               d, kind, fmt::format("{}", fmt::join(allowed, " or ")));
  return d;
}

std::shared_ptr<SequenceMixer> make_mixer(const Config& cfg, const std::string& kind, int64_t C,
                                          Generator* gen) {
  using namespace nn::ssm;
  if (kind == "s4d")
    return std::make_shared<S4D>(C, state_size(cfg, 64),
                                 cfg.get_string("model.ssm_init") == "inv" ? S4DInit::inv
                                                                           : S4DInit::lin,
                                 gen);
  if (kind == "s4") return std::make_shared<S4>(C, state_size(cfg, 64), gen);
  if (kind == "s5") {
    const int64_t P = state_size(cfg, 64), J = cfg.get_int("model.ssm_blocks");
    ENGRAM_CHECK(P % J == 0 && (P / J) % 2 == 0,
                 "config: S5's state size {} must split into model.ssm_blocks={} blocks of an even "
                 "size (conjugate pairs)", P, J);
    return std::make_shared<S5>(C, P, J, discretization(cfg, kind, {"zoh", "bilinear"}) == "bilinear",
                                gen);
  }
  if (kind == "linoss")
    return std::make_shared<LinOSS>(C, state_size(cfg, 64),
                                    discretization(cfg, kind, {"im", "imex"}) == "imex"
                                        ? LinOSS::Discretization::IMEX
                                        : LinOSS::Discretization::IM,
                                    gen);
  if (kind == "mamba")
    return std::make_shared<Mamba>(C, state_size(cfg, 16), cfg.get_int("model.ssm_conv"),
                                   cfg.get_int("model.ssm_expand"), 0, gen);
  if (kind == "retnet") {
    const int64_t heads = cfg.get_int("model.heads");
    ENGRAM_CHECK(C % heads == 0, "config: model.d_model={} must be a multiple of model.heads={}", C,
                 heads);
    auto msr = std::make_shared<MultiScaleRetention>(C, heads, 2, gen);
    const int64_t chunk = cfg.get_int("model.retnet_chunk");
    if (chunk > 0) msr->set_form(RetentionForm::chunkwise, chunk);
    return msr;
  }
  ENGRAM_CHECK(false, "ssm_lm: unknown kind '{}'", kind);
  return nullptr;
}

class SSMModule : public nn::Module {
 public:
  SSMModule(const Config& cfg, const std::string& kind, int64_t V, Generator* gen) : vocab(V) {
    const int64_t C = cfg.get_int("model.d_model"), L = cfg.get_int("model.layers");
    embed = register_module("embed", std::make_shared<nn::Embedding>(V, C, -1, gen));
    std::vector<std::shared_ptr<ResidualBlock>> layers;
    if (kind == "samba") {
      nn::ssm::SambaOptions o;
      o.d_model = C, o.layers = L, o.heads = cfg.get_int("model.heads");
      o.window = cfg.get_int("model.samba_window");
      o.mlp_hidden = cfg.get_int("model.ff_mult") * C;
      o.d_state = state_size(cfg, 16), o.d_conv = cfg.get_int("model.ssm_conv");
      o.expand = cfg.get_int("model.ssm_expand");
      ENGRAM_CHECK(C % o.heads == 0, "config: model.d_model={} must be a multiple of model.heads={}",
                   C, o.heads);
      layers = nn::ssm::make_samba_layers(o, gen);
    } else {
      // RetNet's layer is retention then a feed-forward (torchscale: a swish GLU); the other
      // families' reference blocks are the mixer alone (its output transform inside it).
      const int64_t ffn = kind == "retnet" ? cfg.get_int("model.ff_mult") * C : 0;
      for (int64_t l = 0; l < L; ++l)
        layers.push_back(std::make_shared<ResidualBlock>(make_mixer(cfg, kind, C, gen), ffn, gen));
    }
    for (size_t l = 0; l < layers.size(); ++l)
      blocks.push_back(register_module(fmt::format("blocks.{}", l), layers[l]));
    norm = register_module("norm", std::make_shared<nn::RMSNorm>(C, 1e-5));
    head = register_module("head", std::make_shared<nn::Linear>(C, V, true, gen));
  }
  std::string type_name() const override { return "SSMLanguageModel"; }

  int64_t vocab;
  std::shared_ptr<nn::Embedding> embed;
  std::vector<std::shared_ptr<ResidualBlock>> blocks;
  std::shared_ptr<nn::RMSNorm> norm;
  std::shared_ptr<nn::Linear> head;
};

class SSMLM : public LanguageModel {
 public:
  SSMLM(const Config& cfg, std::string kind, int64_t V, Generator* gen)
      : kind_(std::move(kind)), m_(cfg, kind_, V, gen) {}
  std::string kind() const override { return kind_; }
  nn::Module& module() override { return m_; }
  int64_t vocab_size() const override { return m_.vocab; }

  LMState initial_state(int64_t batch) const override {
    LMState out;
    for (size_t l = 0; l < m_.blocks.size(); ++l)
      for (auto& [name, t] : m_.blocks[l]->initial_state(batch))
        out.emplace_back(fmt::format("blocks.{}.{}", l, name), t);
    return out;
  }
  Tensor forward(const Tensor& ids, LMState& state) override { return run(ids, state, nullptr); }
  Tensor forward_traced(const Tensor& ids, LMState& state, nn::NamedTensors& stages) override {
    return run(ids, state, &stages);
  }

 private:
  // The states of block l: the entries named blocks.<l>.*, with the prefix removed.
  nn::ssm::State layer_state(const LMState& state, size_t l) const {
    const std::string prefix = fmt::format("blocks.{}.", l);
    nn::ssm::State s;
    for (const auto& [name, t] : state)
      if (name.rfind(prefix, 0) == 0) s.emplace_back(name.substr(prefix.size()), t);
    return s;
  }

  Tensor run(const Tensor& ids, LMState& state, nn::NamedTensors* stages) {
    ENGRAM_CHECK(ids.dim() == 2, "{}: expected ids [B, T], got {}", kind_, shape_str(ids.shape()));
    const int64_t B = ids.size(0), T = ids.size(1);
    if (state.empty()) state = initial_state(B);
    // One token outside training: the recurrent mode (generation); otherwise the parallel one.
    const bool recurrent = T == 1 && !m_.is_training();
    Tensor x = m_.embed->forward(ids);
    if (stages) stages->emplace_back("embed", x);
    LMState next;
    for (size_t l = 0; l < m_.blocks.size(); ++l) {
      nn::ssm::State s = layer_state(state, l);
      ENGRAM_CHECK(!s.empty(), "{}: the carried state has no entries for block {}", kind_, l);
      if (recurrent) x = unsqueeze(m_.blocks[l]->step(select(x, 1, 0), s), 1);
      else x = m_.blocks[l]->forward(x, s);
      for (auto& [name, t] : s) next.emplace_back(fmt::format("blocks.{}.{}", l, name), t);
      if (stages) stages->emplace_back(fmt::format("blocks.{}", l), x);
    }
    state = std::move(next);
    x = m_.norm->forward(x);
    if (stages) stages->emplace_back("norm", x);
    Tensor logits = m_.head->forward(x);
    if (stages) stages->emplace_back("head", logits);
    (void)B;
    return logits;
  }

  std::string kind_;
  SSMModule m_;
};

}  // namespace

std::unique_ptr<LanguageModel> make_ssm_lm(const Config& cfg, int64_t V, Generator* gen) {
  const std::string kind = cfg.get_string("model.kind");
  ENGRAM_CHECK(is_ssm_lm_kind(kind), "make_ssm_lm: '{}' is not a state-space kind", kind);
  return std::make_unique<SSMLM>(cfg, kind, V, gen);
}

}  // namespace engram::apps
