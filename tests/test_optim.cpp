// tests/test_optim.cpp — optimizers, schedules, gradient clipping and the loss scaler.
//
// Updates are checked against values worked out by hand for two steps, and a small MLP and a
// small LSTM sequence tagger are trained for 20 steps with every optimizer and compared with
// torch.optim 1.13 through tests/golden/optim_mlp.json and tests/golden/optim_lstm.json (made by
// tests/golden/make_optim_golden.py), both the losses along the way and every parameter after the
// last step: float64 runs must agree to 1e-10 relative (both sides compute the same formulas; only
// rounding order differs), float32 runs to 1e-5 relative (for the parameters relative to
// 0.1 + |torch's value|: PARAM_FLOOR below).
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>

#include "autograd/golden.h"
#include "nn/layers.h"
#include "nn/optim.h"
#include "nn/recurrent.h"
#include "nn/schedule.h"
#include "tests/test_util.h"

using namespace engram;
using namespace engram::nn;
using namespace engram::testing;
using json = nlohmann::json;

namespace {

// A 1-element f64 parameter with a given gradient, to follow updates by hand.
Tensor scalar_param(double value) {
  Tensor p = from_vector(std::vector<double>{value}, {1}, DType::f64);
  p.requires_grad_(true);
  return p;
}
void set_grad(Tensor p, double g) { p.set_grad(from_vector(std::vector<double>{g}, {1}, DType::f64)); }
double value(const Tensor& p) { return p.to_vector<double>()[0]; }

// Runs optimizer steps with the given gradient sequence; returns the parameter after each step.
template <class Opt, class Options>
std::vector<double> run_steps(double p0, const std::vector<double>& grads, Options options) {
  Tensor p = scalar_param(p0);
  Opt opt({p}, options);
  std::vector<double> out;
  for (double g : grads) {
    set_grad(p, g);
    opt.step();
    out.push_back(value(p));
  }
  return out;
}

}  // namespace

TEST_CASE("optim: SGD, two steps by hand") {
  // plain: p <- p - lr g = 1 - 0.1 * 0.5 twice
  auto plain = run_steps<SGD>(1.0, {0.5, 0.5}, SGDOptions{.lr = 0.1});
  CHECK(plain[0] == doctest::Approx(0.95).epsilon(1e-15));
  CHECK(plain[1] == doctest::Approx(0.90).epsilon(1e-15));
  // momentum 0.9, dampening 0.5, weight decay 0.1, g = 0.5:
  //   step 1: d = 0.5 + 0.1*1 = 0.6, buf = d = 0.6 (no dampening at first), p = 1 - 0.06 = 0.94
  //   step 2: d = 0.5 + 0.094 = 0.594, buf = 0.9*0.6 + 0.5*0.594 = 0.837, p = 0.94 - 0.0837
  auto mom = run_steps<SGD>(1.0, {0.5, 0.5},
                            SGDOptions{.lr = 0.1, .momentum = 0.9, .dampening = 0.5, .weight_decay = 0.1});
  CHECK(mom[0] == doctest::Approx(0.94).epsilon(1e-14));
  CHECK(mom[1] == doctest::Approx(0.8563).epsilon(1e-14));
  // Nesterov, momentum 0.9, g = 0.5:
  //   step 1: buf = 0.5, d = 0.5 + 0.9*0.5 = 0.95, p = 1 - 0.095 = 0.905
  //   step 2: buf = 0.45 + 0.5 = 0.95, d = 0.5 + 0.855 = 1.355, p = 0.905 - 0.1355 = 0.7695
  auto nes = run_steps<SGD>(1.0, {0.5, 0.5}, SGDOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true});
  CHECK(nes[0] == doctest::Approx(0.905).epsilon(1e-14));
  CHECK(nes[1] == doctest::Approx(0.7695).epsilon(1e-14));
}

TEST_CASE("optim: Adam, AdamW and amsgrad, two steps by hand") {
  // lr 0.1, betas (0.9, 0.999), eps 1e-8, g = 0.5 then -0.25:
  //   step 1: m = 0.05, v = 0.00025, bias corrections 0.1 and 0.001, so the step is
  //           0.1 * 0.5 / (0.5 + 1e-8): p = 0.900000002
  //   step 2: m = 0.045 - 0.025 = 0.02, v = 0.00024975 + 0.0000625 = 0.00031225,
  //           p = 0.900000002 - (0.1 / 0.19) * 0.02 / (sqrt(0.00031225 / 0.001999) + 1e-8)
  auto adam = run_steps<Adam>(1.0, {0.5, -0.25}, AdamOptions{.lr = 0.1});
  CHECK(adam[0] == doctest::Approx(0.900000002).epsilon(1e-12));
  CHECK(adam[1] == doctest::Approx(0.8733662987078463).epsilon(1e-12));
  // L2 (Adam's weight_decay 0.1): g1 = 0.5 + 0.1, g2 = -0.25 + 0.1 * p1
  auto l2 = run_steps<Adam>(1.0, {0.5, -0.25}, AdamOptions{.lr = 0.1, .weight_decay = 0.1});
  CHECK(l2[0] == doctest::Approx(0.9000000016666666).epsilon(1e-12));
  CHECK(l2[1] == doctest::Approx(0.8544413674617625).epsilon(1e-12));
  // decoupled (AdamW, weight_decay 0.1): p <- p * (1 - 0.01) before each Adam step
  auto w = run_steps<AdamW>(1.0, {0.5, -0.25}, AdamWOptions{.lr = 0.1, .weight_decay = 0.1});
  CHECK(w[0] == doctest::Approx(0.890000002).epsilon(1e-12));
  CHECK(w[1] == doctest::Approx(0.8544662986878463).epsilon(1e-12));
  // amsgrad: with g2 = 0.01, v2 = 0.00024985 < v1 = 0.00025, so vmax keeps v1
  auto ams = run_steps<Adam>(1.0, {0.5, 0.01}, AdamOptions{.lr = 0.1, .amsgrad = true});
  auto no_ams = run_steps<Adam>(1.0, {0.5, 0.01}, AdamOptions{.lr = 0.1});
  CHECK(ams[1] == doctest::Approx(0.8315394161677112).epsilon(1e-12));
  CHECK(no_ams[1] == doctest::Approx(0.8315188687457401).epsilon(1e-12));
}

TEST_CASE("optim: groups, state names, skipped parameters, zero_grad and errors") {
  Tensor a = scalar_param(1.0), b = scalar_param(2.0), c = scalar_param(3.0);
  Adam opt({a, b}, AdamOptions{.lr = 0.1, .amsgrad = true});
  ParamGroup& g1 = opt.add_param_group({c});
  g1.lr = 0.5;
  g1.amsgrad = false;
  CHECK(opt.param_groups().size() == 2);
  CHECK(opt.type_name() == "Adam");
  std::vector<std::string> names;
  for (auto& [n, t] : opt.state_tensors()) names.push_back(n);
  CHECK(names == std::vector<std::string>{
                     "optim.0.0.step", "optim.0.0.exp_avg", "optim.0.0.exp_avg_sq", "optim.0.0.max_exp_avg_sq",
                     "optim.0.1.step", "optim.0.1.exp_avg", "optim.0.1.exp_avg_sq", "optim.0.1.max_exp_avg_sq",
                     "optim.1.0.step", "optim.1.0.exp_avg", "optim.1.0.exp_avg_sq"});
  set_grad(a, 1.0);
  set_grad(c, 1.0);  // b has no gradient: skipped, its step count stays 0
  opt.step();
  CHECK(opt.state(0, 0).steps() == 1);
  CHECK(opt.state(0, 1).steps() == 0);
  CHECK(value(b) == 2.0);
  CHECK(value(a) == doctest::Approx(0.9).epsilon(1e-7));  // first Adam step moves by ~lr
  CHECK(value(c) == doctest::Approx(2.5).epsilon(1e-7));
  opt.zero_grad();
  CHECK(!a.grad().defined());
  CHECK(!c.grad().defined());

  CHECK_THROWS_AS(SGD({a}, SGDOptions{.momentum = 0.9, .dampening = 0.1, .nesterov = true}), Error);
  CHECK_THROWS_AS(Adam({a}, AdamOptions{.beta1 = 1.0}), Error);
  CHECK_THROWS_AS(opt.add_param_group({a}), Error);  // already in group 0
  // Hyper-parameters survive a JSON round trip (checkpoints store them this way).
  Adam other({scalar_param(0), scalar_param(0)}, AdamOptions{.lr = 0.3});
  other.add_param_group({scalar_param(0)});
  other.load_hyperparams_json(opt.hyperparams_json());
  CHECK(other.param_groups()[1].lr == 0.5);
  CHECK(other.param_groups()[0].amsgrad);
  CHECK_THROWS_AS(SGD({scalar_param(0)}).load_hyperparams_json(opt.hyperparams_json()), Error);
}

TEST_CASE("optim: f32 parameters update in their own precision") {
  Tensor p = from_vector(std::vector<float>{1.0f, -2.0f, 0.5f}, {3});
  p.requires_grad_(true);
  AdamW opt({p}, AdamWOptions{.lr = 0.1});
  p.set_grad(from_vector(std::vector<float>{0.5f, -0.5f, 0.0f}, {3}));
  opt.step();
  std::vector<float> v = p.to_vector<float>();
  CHECK(v[0] == doctest::Approx(1.0 * (1 - 0.001) - 0.1).epsilon(1e-6));
  CHECK(v[1] == doctest::Approx(-2.0 * (1 - 0.001) + 0.1).epsilon(1e-6));
  CHECK(v[2] == doctest::Approx(0.5 * (1 - 0.001)).epsilon(1e-6));  // zero grad: only decay
}

TEST_CASE("optim: schedules at given steps") {
  LRSchedule constant = LRSchedule::constant();
  CHECK(constant.lr_at(0, 0.3) == 0.3);
  CHECK(constant.lr_at(1000, 0.3) == 0.3);

  LRSchedule step = LRSchedule::step(3, 0.5);
  CHECK(step.lr_at(0, 1.0) == 1.0);
  CHECK(step.lr_at(2, 1.0) == 1.0);
  CHECK(step.lr_at(3, 1.0) == 0.5);
  CHECK(step.lr_at(5, 1.0) == 0.5);
  CHECK(step.lr_at(6, 1.0) == 0.25);
  CHECK(step.lr_at(9, 2.0) == 0.25);

  // warmup 4, total 12, min 0.1, base 1: linear 0 -> 1 over steps 0..4, cosine 1 -> 0.1 by 12
  LRSchedule wc = LRSchedule::warmup_cosine(4, 12, 0.1);
  CHECK(wc.lr_at(0, 1.0) == 0.0);
  CHECK(wc.lr_at(1, 1.0) == 0.25);
  CHECK(wc.lr_at(2, 1.0) == 0.5);
  CHECK(wc.lr_at(4, 1.0) == doctest::Approx(1.0).epsilon(1e-15));
  CHECK(wc.lr_at(6, 1.0) == doctest::Approx(0.1 + 0.45 * (1 + std::sqrt(0.5))).epsilon(1e-14));
  CHECK(wc.lr_at(8, 1.0) == doctest::Approx(0.55).epsilon(1e-14));
  CHECK(wc.lr_at(12, 1.0) == 0.1);
  CHECK(wc.lr_at(500, 1.0) == 0.1);
  CHECK(wc.str() == "warmup_cosine(warmup=4, total=12, min_lr=0.1)");
  CHECK_THROWS_AS(LRSchedule::warmup_cosine(10, 5), Error);
  CHECK_THROWS_AS(LRSchedule::step(0, 0.5), Error);

  // Applied to an optimizer: each group is scaled from its own base lr.
  Tensor a = scalar_param(0), b = scalar_param(0);
  SGD opt({a}, SGDOptions{.lr = 0.2});
  opt.add_param_group({b}).lr = 0.02;
  step.apply(opt, 0);
  CHECK(opt.param_groups()[0].initial_lr == 0.2);
  CHECK(opt.param_groups()[1].initial_lr == 0.02);
  step.apply(opt, 7);
  CHECK(opt.param_groups()[0].lr == 0.2 * 0.25);
  CHECK(opt.param_groups()[1].lr == 0.02 * 0.25);
}

TEST_CASE("optim: clip_grad_norm") {
  Tensor a = from_vector(std::vector<double>{3, 4}, {2}, DType::f64);
  Tensor b = from_vector(std::vector<double>{12}, {1}, DType::f64);
  Tensor none = from_vector(std::vector<double>{100}, {1}, DType::f64);  // no gradient: ignored
  for (Tensor* t : {&a, &b, &none}) t->requires_grad_(true);
  a.set_grad(from_vector(std::vector<double>{3, 4}, {2}, DType::f64));
  b.set_grad(from_vector(std::vector<double>{12}, {1}, DType::f64));
  // total = sqrt(9 + 16 + 144) = 13; below max_norm nothing changes
  CHECK(clip_grad_norm({a, b, none}, 20.0) == doctest::Approx(13.0).epsilon(1e-15));
  CHECK(a.grad().to_vector<double>() == std::vector<double>{3, 4});
  // above: scaled by 6.5 / (13 + 1e-6)
  CHECK(clip_grad_norm({a, b, none}, 6.5) == doctest::Approx(13.0).epsilon(1e-15));
  double coef = 6.5 / (13.0 + 1e-6);
  CHECK(a.grad().to_vector<double>()[1] == doctest::Approx(4 * coef).epsilon(1e-15));
  CHECK(b.grad().to_vector<double>()[0] == doctest::Approx(12 * coef).epsilon(1e-15));
  CHECK(clip_grad_norm({a, b}, 100.0) == doctest::Approx(6.5).epsilon(1e-6));
}

TEST_CASE("optim: dynamic loss scaler skips Inf/NaN steps, backs off and grows") {
  Tensor p = from_vector(std::vector<float>{1.0f, 2.0f}, {2});
  p.requires_grad_(true);
  Tensor x = from_vector(std::vector<float>{0.5f, -1.0f}, {2});
  SGD opt({p}, SGDOptions{.lr = 0.1});
  DynamicLossScaler scaler(LossScalerOptions{.init_scale = 8.0, .growth_interval = 2});
  CHECK_THROWS_AS(scaler.update(), Error);  // no step yet: nothing to act on

  auto iteration = [&](double poison) {
    opt.zero_grad();
    Tensor loss = sum(mul(p, x));  // dloss/dp = x
    backward(scaler.scale_loss(loss));
    CHECK(p.grad().to_vector<float>()[0] == doctest::Approx(0.5 * scaler.scale()));
    if (poison != 0) p.grad().data<float>()[1] = float(poison);  // an overflowed gradient
    bool stepped = scaler.step(opt);
    scaler.update();
    return stepped;
  };
  CHECK(iteration(0));
  CHECK(p.to_vector<float>() == std::vector<float>{1.0f - 0.05f, 2.0f + 0.1f});  // true grads
  CHECK(scaler.scale() == 8.0);
  CHECK(scaler.good_steps() == 1);
  CHECK(iteration(0));
  CHECK(scaler.scale() == 16.0);  // two good steps in a row: grown
  CHECK(scaler.good_steps() == 0);
  std::vector<float> before = p.to_vector<float>();
  CHECK(!iteration(std::numeric_limits<double>::infinity()));
  CHECK(p.to_vector<float>() == before);  // skipped
  CHECK(scaler.scale() == 8.0);           // backed off
  CHECK(!iteration(std::nan("")));
  CHECK(scaler.scale() == 4.0);
  CHECK(scaler.skipped_steps() == 2);
  CHECK(iteration(0));
  CHECK(scaler.good_steps() == 1);
  // unscale before clipping, then step: the grads are unscaled only once
  opt.zero_grad();
  backward(scaler.scale_loss(sum(mul(p, x))));
  CHECK(!scaler.unscale(opt));
  CHECK(p.grad().to_vector<float>()[0] == 0.5f);
  CHECK(scaler.step(opt));
  CHECK(p.grad().to_vector<float>()[0] == 0.5f);
  scaler.update();
  CHECK(scaler.scale() == 8.0);
  std::vector<std::string> names;
  for (auto& [n, t] : scaler.state_tensors()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"scaler.scale", "scaler.good_steps", "scaler.skipped_steps"});
}

// ---------------------------------------------------------------- PyTorch golden

namespace {

Tensor golden_tensor(const json& j, DType dtype) {
  Shape shape = j.at("shape").get<Shape>();
  return from_vector(j.at("values").get<std::vector<double>>(), shape, dtype);
}

std::unique_ptr<Optimizer> make_optimizer(const json& run, const std::vector<Tensor>& params) {
  const json& o = run.at("options");
  std::string type = run.at("optimizer");
  if (type == "SGD")
    return std::make_unique<SGD>(params, SGDOptions{.lr = o.at("lr"), .momentum = o.at("momentum"),
                                                    .dampening = o.at("dampening"),
                                                    .weight_decay = o.at("weight_decay"),
                                                    .nesterov = o.at("nesterov")});
  AdamOptions a{.lr = o.at("lr"), .beta1 = o.at("beta1"), .beta2 = o.at("beta2"), .eps = o.at("eps"),
                .weight_decay = o.at("weight_decay"), .amsgrad = o.at("amsgrad")};
  if (type == "Adam") return std::make_unique<Adam>(params, a);
  return std::make_unique<AdamW>(params, AdamWOptions{a.lr, a.beta1, a.beta2, a.eps, a.weight_decay, a.amsgrad});
}

LRSchedule make_schedule(const json& s) {
  std::string kind = s.at("kind");
  if (kind == "step") return LRSchedule::step(s.at("step_size"), s.at("gamma"));
  if (kind == "warmup_cosine")
    return LRSchedule::warmup_cosine(s.at("warmup_steps"), s.at("total_steps"), s.at("min_lr"));
  return LRSchedule::constant();
}

// Copies the golden's initial weights into the model by PyTorch name; every parameter must be
// there and every golden weight used.
void load_golden_params(Module& model, const json& golden, DType dtype) {
  NamedTensors params = model.named_parameters();
  REQUIRE(params.size() == golden.at("params").size());
  for (auto& [name, p] : params) {
    REQUIRE_MESSAGE(golden.at("params").contains(name), "no golden weight for " << name);
    raw::copy_(p, golden_tensor(golden.at("params").at(name), dtype));
  }
}

// What a training run leaves: the losses before each step and the loss after the last one, and
// the parameters after the last step, by PyTorch name.
struct Trained {
  std::vector<double> losses;
  NamedTensors params;
};

// Trains a model exactly as the script does: logits() gives the [N, C] logits of the fixed
// batch, y the N targets.
Trained train_like_torch(const json& golden, const json& run, const Module& model,
                         const std::function<Tensor()>& logits, const Tensor& y) {
  auto opt = make_optimizer(run, model.parameters());
  LRSchedule schedule = make_schedule(run.at("schedule"));
  double clip = run.at("clip");
  std::vector<double> losses;
  for (int64_t s = 0; s < golden.at("steps").get<int64_t>(); ++s) {
    schedule.apply(*opt, s);
    opt->zero_grad();
    Tensor loss = cross_entropy(logits(), y);
    losses.push_back(loss.item());
    backward(loss);
    if (clip > 0) clip_grad_norm(model.parameters(), clip);
    opt->step();
  }
  NoGradGuard no_grad;
  losses.push_back(cross_entropy(logits(), y).item());
  return {losses, model.named_parameters()};
}

// The golden MLP (Linear, Tanh, Linear) on x [N, in].
Trained train_mlp(const json& golden, const json& run, DType dtype) {
  auto dims = golden.at("dims").get<std::vector<int64_t>>();
  Sequential model({std::make_shared<Linear>(dims[0], dims[1]), Tanh(),
                    std::make_shared<Linear>(dims[1], dims[2])});
  model.to(dtype);
  load_golden_params(model, golden, dtype);
  Tensor x = golden_tensor(golden.at("x"), dtype);
  Tensor y = from_vector(golden.at("y").get<std::vector<int64_t>>(), {x.size(0)});
  return train_like_torch(golden, run, model, [&] { return model(x); }, y);
}

// The golden sequence tagger: batch-first LSTM on x [B, T, in], then Linear on every step's
// hidden state; logits flattened to [B*T, classes] as the script does.
class LSTMTagger : public Module {
 public:
  LSTMTagger(int64_t in, int64_t hidden, int64_t classes)
      : lstm(register_module("lstm", std::make_shared<LSTM>(in, hidden))),
        head(register_module("head", std::make_shared<Linear>(hidden, classes))) {}
  Tensor forward(const Tensor& x) {
    return reshape((*head)(lstm->forward(x).output), {-1, head->out_features});
  }
  std::string type_name() const override { return "LSTMTagger"; }

  std::shared_ptr<LSTM> lstm;
  std::shared_ptr<Linear> head;
};

Trained train_lstm(const json& golden, const json& run, DType dtype) {
  auto cfg = [&](const char* key) { return golden.at(key).get<int64_t>(); };
  LSTMTagger model(cfg("input_size"), cfg("hidden_size"), cfg("classes"));
  model.to(dtype);
  load_golden_params(model, golden, dtype);
  Tensor x = golden_tensor(golden.at("x"), dtype);
  REQUIRE(x.shape() == Shape{cfg("batch"), cfg("seq_len"), cfg("input_size")});
  Tensor y = from_vector(golden.at("y").get<std::vector<int64_t>>(), {x.size(0) * x.size(1)});
  return train_like_torch(golden, run, model, [&] { return model.forward(x); }, y);
}

// Largest rel_diff over every final parameter against the golden's final_params_<dtype>, relative
// to 0.1 + |want|: the weights are O(0.1 .. 1) (initially within 1/sqrt(fan_in)), and the floor
// keeps one that ends near 0 from being divided by ~0 (f32 parameters differ from torch's by a few
// f32 ulps in absolute terms, ~1e-7; relative to |want| alone that reached 1e-3 on tiny weights).
// Every parameter must be in the golden with its shape, and every golden one in the model.
constexpr double PARAM_FLOOR = 0.1;
double final_param_error(const NamedTensors& got, const json& want) {
  CHECK(got.size() == want.size());
  double worst = 0;
  for (const auto& [name, p] : got) {
    if (!want.contains(name)) {
      FAIL_CHECK("no golden final value for " << name);
      return INFINITY;
    }
    const json& w = want.at(name);
    CHECK_MESSAGE(p.shape() == w.at("shape").get<Shape>(), name);
    worst = std::max(worst, max_rel_diff(p.to_vector<double>(), w.at("values").get<std::vector<double>>(),
                                         PARAM_FLOOR));
  }
  return worst;
}

// Runs every optimizer configuration of a golden file in f64 and f32 and compares the losses
// and the final parameters.
void check_golden_runs(const std::string& file, Trained (*train)(const json&, const json&, DType)) {
  std::ifstream f(golden::find_file(file));
  json golden = json::parse(f);
  REQUIRE(golden.at("runs").size() == 5);
  for (const json& run : golden.at("runs")) {
    std::string name = run.at("name");
    for (DType dtype : {DType::f64, DType::f32}) {
      const bool f64 = dtype == DType::f64;
      std::vector<double> want = run.at(f64 ? "losses_f64" : "losses_f32");
      Trained got = train(golden, run, dtype);
      const double loss_err = max_rel_diff(got.losses, want);
      const double param_err = final_param_error(got.params, run.at(f64 ? "final_params_f64" : "final_params_f32"));
      MESSAGE(file << " " << name << " " << dtype_name(dtype) << ": max relative loss error "
                   << loss_err << ", final parameters " << param_err);
      CHECK_MESSAGE(loss_err <= (f64 ? 1e-10 : 1e-5),
                    file << " " << name << " " << dtype_name(dtype) << " loss drifts from PyTorch: " << loss_err);
      CHECK_MESSAGE(param_err <= (f64 ? 1e-10 : 1e-5), file << " " << name << " " << dtype_name(dtype)
                                                           << " final parameters drift from PyTorch: " << param_err);
    }
  }
}

}  // namespace

TEST_CASE("optim: 20 training steps match torch.optim (f64 to 1e-10, f32 to 1e-5 relative)") {
  check_golden_runs("optim_mlp.json", train_mlp);
}

TEST_CASE("optim: LSTM 20 training steps match torch.optim (f64 to 1e-10, f32 to 1e-5 relative)") {
  check_golden_runs("optim_lstm.json", train_lstm);
}
