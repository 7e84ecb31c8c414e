// tests/test_ssm_lm.cpp — the state-space language models of crsd_tiny (apps/common/ssm_lm.h):
//   - every kind, cut into calls, gives the logits of the uncut stream (the carried state is
//     exactly what the model would have had), in f64;
//   - one token at a time in eval mode (each mixer's recurrent step(), the generation path)
//     gives the logits of the parallel forward, in f64;
//   - crsd_tiny's config of every family builds a model of about CRSD tiny's 252K parameters;
//   - a discretisation that does not apply to the family is a config error naming the key;
//   - a whole Samba LM (residual blocks, SwiGLU, window attention, Mamba) matches PyTorch
//     (tests/golden/ssm_samba.json), and Samba's two blocks are gradchecked over two calls.
// Training, checkpoint and exact resume run through the harness tests (test_harness.cpp).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "apps/common/ssm_lm.h"
#include "apps/common/trainer.h"
#include "autograd/golden.h"
#include "autograd/raw_ops.h"
#include "autograd/ops.h"
#include "nn/ssm/samba.h"
#include "tests/module_gradcheck.h"
#include "tests/test_util.h"

using namespace engram;
using engram::testing::max_abs_diff;

namespace {

apps::Config small_ssm_config(const std::string& kind) {
  apps::Config cfg(apps::lm_schema("ssm_test"));
  for (std::string s : {"model.d_model=8", "model.layers=2", "model.heads=2", "model.ssm_state=4",
                        "model.ssm_blocks=2", "model.ff_mult=2", "model.samba_window=5",
                        "model.retnet_chunk=4"})
    cfg.apply_override(s);
  cfg.set("model.kind", kind, "test");
  return cfg;
}

int64_t parameter_count(apps::LanguageModel& lm) {
  int64_t n = 0;
  for (auto& [name, p] : lm.module().named_parameters()) n += p.numel();
  return n;
}

}  // namespace

TEST_CASE("ssm LMs: every kind cut into calls gives the logits of the uncut stream (f64)") {
  for (const std::string& kind : apps::ssm_lm_kinds()) {
    CAPTURE(kind);
    apps::Config cfg = small_ssm_config(kind);
    Generator g(5);
    auto lm = apps::make_language_model(cfg, 32, &g);
    CHECK(lm->kind() == kind);
    lm->module().to(DType::f64);
    NoGradGuard ng;
    Tensor ids = randint(0, 32, {2, 18}, &g);
    apps::LMState whole_state = lm->initial_state(2), cut_state = lm->initial_state(2);
    Tensor whole = lm->forward(ids, whole_state);
    std::vector<Tensor> parts;
    for (auto [a, b] : {std::pair{0, 7}, std::pair{7, 12}, std::pair{12, 18}})
      parts.push_back(lm->forward(slice(ids, 1, a, b), cut_state));
    CHECK(max_abs_diff(whole, cat(parts, 1)) < 1e-10);
    REQUIRE(whole_state.size() == cut_state.size());
    for (size_t i = 0; i < whole_state.size(); ++i) {
      CAPTURE(whole_state[i].first);
      CHECK(whole_state[i].first == cut_state[i].first);
      CHECK(max_abs_diff(whole_state[i].second, cut_state[i].second) < 1e-10);
    }
  }
}

TEST_CASE("ssm LMs: one token at a time (recurrent mode) equals the parallel forward (f64)") {
  for (const std::string& kind : apps::ssm_lm_kinds()) {
    CAPTURE(kind);
    apps::Config cfg = small_ssm_config(kind);
    Generator g(6);
    auto lm = apps::make_language_model(cfg, 32, &g);
    lm->module().to(DType::f64);
    lm->module().eval();
    NoGradGuard ng;
    Tensor ids = randint(0, 32, {2, 9}, &g);
    apps::LMState par = lm->initial_state(2), rec = lm->initial_state(2);
    Tensor whole = lm->forward(ids, par);
    std::vector<Tensor> steps;
    for (int64_t t = 0; t < 9; ++t) steps.push_back(lm->forward(slice(ids, 1, t, t + 1), rec));
    CHECK(max_abs_diff(whole, cat(steps, 1)) < 1e-10);
  }
}

TEST_CASE("ssm LMs: crsd_tiny's config of every family has about CRSD tiny's 252K parameters") {
  for (const std::string& kind : apps::ssm_lm_kinds()) {
    CAPTURE(kind);
    const std::string path = "apps/crsd_tiny/configs/" + kind + ".yaml";
    REQUIRE(std::filesystem::exists(path));
    apps::Config cfg(apps::lm_schema("crsd_tiny"));
    cfg.merge_yaml_file(path);
    CHECK(cfg.get_string("model.kind") == kind);
    Generator g(1);
    auto lm = apps::make_language_model(cfg, 256, &g);
    const int64_t n = parameter_count(*lm);
    CAPTURE(n);
    CHECK(std::abs(double(n) - 251976.0) / 251976.0 < 0.06);
  }
}

TEST_CASE("ssm LMs: a discretisation that does not apply to the family is refused by name") {
  apps::Config cfg = small_ssm_config("s5");
  cfg.apply_override("model.ssm_discretization=imex");
  Generator g(1);
  std::string err = engram::testing::error_of([&] { apps::make_language_model(cfg, 32, &g); });
  CHECK(engram::testing::contains(err, "model.ssm_discretization=imex"));
  CHECK(engram::testing::contains(err, "s5"));
}

TEST_CASE("ssm LMs: a whole Samba LM matches its PyTorch golden (logits and every gradient, f64)") {
  const nlohmann::json doc = golden::load_json("ssm_samba.json");
  apps::Config cfg(apps::lm_schema("ssm_test"));
  for (auto& [key, value] : doc.at("config").items())
    cfg.set(key, value.get<std::string>(), "ssm_samba.json");
  Generator g(1);
  auto lm = apps::make_language_model(cfg, doc.at("vocab").get<int64_t>(), &g);
  lm->module().to(DType::f64);
  std::set<std::string> seen;
  for (auto& [name, p] : lm->module().named_parameters()) {
    CAPTURE(name);
    REQUIRE(doc.at("params").contains(name));
    Tensor want = golden::tensor_from_json(doc.at("params").at(name), DType::f64);
    REQUIRE(want.shape() == p.shape());
    raw::copy_(p, want);
    seen.insert(name);
  }
  CHECK(seen.size() == doc.at("params").size());  // no golden parameter left unused
  Tensor ids = golden::tensor_from_json(doc.at("ids"));
  apps::LMState state = lm->initial_state(ids.size(0));
  Tensor logits = lm->forward(ids, state);
  const double out_err = max_abs_diff(logits, golden::tensor_from_json(doc.at("logits"), DType::f64));
  CHECK(out_err < 1e-10);
  backward(sum(mul(logits, golden::tensor_from_json(doc.at("grad_logits"), DType::f64))));
  double grad_err = 0;
  for (auto& [name, p] : lm->module().named_parameters()) {
    CAPTURE(name);
    REQUIRE(p.grad().defined());
    grad_err = std::max(grad_err, max_abs_diff(p.grad(), golden::tensor_from_json(
                                                             doc.at("param_grads").at(name), DType::f64)));
  }
  CHECK(grad_err < 1e-10);
  MESSAGE("samba LM vs PyTorch: logits " << out_err << ", gradients " << grad_err);
}

TEST_CASE("ssm blocks: Samba's two residual blocks (Mamba + SwiGLU, window attention + SwiGLU) "
          "gradchecked in f64 over two calls") {
  nn::ssm::SambaOptions o;
  o.d_model = 4, o.layers = 2, o.heads = 2, o.window = 3, o.mlp_hidden = 6, o.d_state = 2;
  Generator g(9);
  auto blocks = nn::ssm::make_samba_layers(o, &g);
  REQUIRE(blocks.size() == 2);
  for (auto& block : blocks) {
    block->to(DType::f64);
    CAPTURE(block->mixer->type_name());
    Tensor x = randn({2, 5, 4}, DType::f64, &g);
    auto run = [&](const Tensor& xi) {
      nn::ssm::State s = block->initial_state(2);
      Tensor a = block->forward(slice(xi, 1, 0, 2), s), b = block->forward(slice(xi, 1, 2, 5), s);
      return cat({a, b}, 1);
    };
    GradcheckResult r = engram::testing::module_gradcheck(*block, run, x);
    CHECK_MESSAGE(r.ok, r.message);
  }
}
