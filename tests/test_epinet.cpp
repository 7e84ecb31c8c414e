// tests/test_epinet.cpp — EpiNet's modules (memory/epinet/): the episodic memory's admission,
// decay and eviction (the notebook's capacity-3 example), recall by hand on a tiny case, and f64
// gradchecks of the soft recall and of the whole model from image to loss with a non-empty memory,
// the model matched to its PyTorch twin (tests/golden/epinet.json), and a resumed app run.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "apps/bench/workloads.h"
#include "apps/common/epinet_train.h"
#include "autograd/golden.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "memory/epinet/model.h"
#include "nn/optim.h"
#include "test_util.h"

using namespace engram;
using namespace engram::epinet;
using engram::testing::contains;
using engram::testing::error_of;

namespace {

// n traces with latents from `latents` (rows of d), labels 0..n-1, saliences r0.
void offer(EpisodicMemory& mem, const std::vector<double>& r0, int64_t d) {
  const int64_t n = (int64_t)r0.size();
  std::vector<double> z(n * d);
  for (int64_t i = 0; i < n * d; ++i) z[i] = double(i % 7) - 3;
  std::vector<int64_t> y(n);
  for (int64_t i = 0; i < n; ++i) y[i] = i;
  mem.memorize(zeros({n, 1, 28, 28}), from_vector(z, {n, d}, DType::f32), from_vector(y, {n}),
               from_vector(r0, {n}, DType::f64));
}

}  // namespace

TEST_CASE("epinet memory: the notebook's capacity-3 example keeps r0 [4, 5, 3]") {
  EpisodicMemory mem(3, 2, {1, 28, 28}, /*alpha=*/0.0);
  offer(mem, {1, 2, 3, 4, 5}, 2);
  CHECK_VEC(mem.initial_saliences(), {4, 5, 3});
  CHECK(mem.size() == 3);
  CHECK(mem.evictions() == 2);
  CHECK_VEC(mem.labels().to_vector<int64_t>(), {3, 4, 2});  // the labels moved with their traces
  // a trace below the lowest salience is skipped
  offer(mem, {2.5}, 2);
  CHECK_VEC(mem.initial_saliences(), {4, 5, 3});
}

TEST_CASE("epinet memory: salience decays with the step clock, and decayed traces are evicted") {
  EpisodicMemory mem(2, 2, {1, 28, 28}, /*alpha=*/0.5);
  offer(mem, {1.0, 2.0}, 2);  // both at t = 0
  mem.tick(2);
  std::vector<double> s = mem.saliences().to_vector<double>();
  CHECK(s[0] == doctest::Approx(std::exp(-1.0)));
  CHECK(s[1] == doctest::Approx(2 * std::exp(-1.0)));
  // 0.5 beats the decayed 0.368 of trace 0 (its r0 of 1 would not have beaten it fresh)
  offer(mem, {0.5}, 2);
  CHECK_VEC(mem.initial_saliences(), {0.5, 2.0});
  CHECK(mem.saliences().to_vector<double>()[0] == doctest::Approx(0.5));  // stored now: no decay
  CHECK(mem.class_counts(3) == std::vector<int64_t>{1, 1, 0});
  CHECK(contains(error_of([] { EpisodicMemory(0, 2); }), "capacity must be positive"));
}

TEST_CASE("epinet recall: hard and soft rules by hand, empty memory recalls zeros") {
  // keys e1, e2, (e1 + e2)/sqrt2 with saliences 1, 2, 4; query e1.
  const double r2 = std::sqrt(0.5);
  Tensor keys = from_vector(std::vector<double>{1, 0, 0, 1, r2, r2}, {3, 2}, DType::f64);
  Tensor sal = from_vector(std::vector<double>{1, 2, 4}, {3}, DType::f64);
  Tensor q = from_vector(std::vector<double>{1, 0}, {1, 2}, DType::f64);
  // scores: 1*1, 0*2, r2*4 = 2.83 -> top-2 = {key 2, key 0}
  RecallOptions hard;
  hard.top_k = 2, hard.eps = 0;
  std::vector<double> r = recall(q, keys, sal, hard).to_vector<double>();
  // weights by salience: 4/5 and 1/5 -> r = 0.8 (r2, r2) + 0.2 (1, 0)
  CHECK(r[0] == doctest::Approx(0.8 * r2 + 0.2));
  CHECK(r[1] == doctest::Approx(0.8 * r2));
  RecallOptions soft = hard;
  soft.mode = RecallMode::soft, soft.temperature = 1.0;
  double a = std::exp(4 * r2), b = std::exp(1.0);
  std::vector<double> rs = recall(q, keys, sal, soft).to_vector<double>();
  CHECK(rs[0] == doctest::Approx((a * r2 + b) / (a + b)));
  CHECK(rs[1] == doctest::Approx(a * r2 / (a + b)));
  // top_k above the number of traces uses them all; an empty memory recalls zeros
  hard.top_k = 10;
  CHECK(recall(q, keys, sal, hard).to_vector<double>()[1] == doctest::Approx((2 + 4 * r2) / 7));
  CHECK_VEC(recall(q, zeros({0, 2}, DType::f64), zeros({0}, DType::f64), hard).to_vector<double>(), {0, 0});
  // the hard rule sends no gradient to the query; the soft one does, and is gradchecked
  Tensor qg = from_vector(std::vector<double>{0.9, 0.3, -0.2, 0.7}, {2, 2}, DType::f64);
  qg.requires_grad_(true);
  RecallOptions hard2;
  hard2.top_k = 2;
  CHECK_FALSE(recall(qg, keys, sal, hard2).requires_grad());
  qg.requires_grad_(false);
  soft.top_k = 2, soft.temperature = 0.5;
  auto fn = [&](const std::vector<Tensor>& in) { return recall(in[0], keys, sal, soft); };
  GradcheckOptions opt;
  opt.atol = 1e-8, opt.rtol = 1e-6;
  GradcheckResult res = gradcheck(fn, {qg}, {true}, opt);
  CHECK_MESSAGE(res.ok, res.message);
}

TEST_CASE("epinet model: gradchecked in f64 from image to loss with a non-empty memory") {
  Generator g(4);
  EpiNetConfig cfg;
  cfg.d = 6, cfg.experts = 2, cfg.expert_hidden = 5, cfg.capacity = 4, cfg.classes = 3;
  cfg.recall.top_k = 2, cfg.recall.mode = RecallMode::soft, cfg.recall.temperature = 0.5;
  EpiNetModel model(cfg, &g);
  model.to(DType::f64);
  Tensor x = randn({2, 1, 28, 28}, DType::f64, &g), y = from_vector(std::vector<int64_t>{0, 2}, {2});
  {
    NoGradGuard ng;
    Tensor xm = randn({3, 1, 28, 28}, DType::f64, &g);
    Tensor zm = model.encoder->forward(xm);
    model.memorize(xm, zm, from_vector(std::vector<int64_t>{0, 1, 2}, {3}), ones({3}, DType::f64));
  }
  REQUIRE(model.memory.size() == 3);
  auto loss_of = [&](const Tensor& img) { return cross_entropy(model.forward(img).logits, y); };
  // parameters of every part: the first conv's bias, the encoder's last bias, the gate, an expert
  std::vector<Tensor> params;
  for (auto& [name, p] : model.named_parameters())
    if (name == "encoder.net.0.bias" || name == "encoder.net.7.bias" || name == "decoder.gate.weight" ||
        name == "decoder.experts.1.fc2.bias")
      params.push_back(p);
  REQUIRE(params.size() == 4);
  auto fn = [&](const std::vector<Tensor>&) { return loss_of(x); };
  GradcheckOptions opt;
  opt.atol = 1e-7, opt.rtol = 1e-6;
  GradcheckResult res = gradcheck(fn, params, std::vector<bool>(params.size(), true), opt);
  CHECK_MESSAGE(res.ok, res.message);
  // and the gradient with respect to the image along a random direction v (784 x 2 central
  // differences would be slow): <dL/dx, v> against (L(x + eps v) - L(x - eps v)) / (2 eps)
  Tensor xi = raw::clone(x);
  xi.requires_grad_(true);
  backward(loss_of(xi));
  Tensor v = randn(x.shape(), DType::f64, &g);
  double analytic = sum(mul(xi.grad(), v)).item(), eps = 1e-6;
  NoGradGuard ng;
  double numeric = (loss_of(add(x, mul(v, eps))).item() - loss_of(sub(x, mul(v, eps))).item()) / (2 * eps);
  CHECK(analytic == doctest::Approx(numeric).epsilon(1e-6));
}

TEST_CASE("epinet config: bad values are one-line errors naming them") {
  EpiNetConfig c;
  c.capacity = 0;
  CHECK(contains(error_of([&] { c.validate(); }), "capacity must be positive"));
  c = EpiNetConfig{};
  c.recall.top_k = 5000;
  CHECK(contains(error_of([&] { c.validate(); }), "top_k 5000 must be in [1, capacity 1000]"));
}

TEST_CASE("epinet: a two-task run of a few steps trains, memorizes and replays") {
  // Synthetic 28x28 "classes": class c is a bright bar at row 3c plus noise. Task 1 = {0, 1},
  // task 2 = {2, 3}; 6 steps per task with recall + replay from the memory, as epinet_split does.
  Generator g(8);
  EpiNetConfig cfg;
  cfg.d = 16, cfg.experts = 2, cfg.expert_hidden = 16, cfg.capacity = 24, cfg.classes = 4;
  cfg.recall.top_k = 4;
  EpiNetModel model(cfg, &g);
  nn::AdamOptions ao;
  ao.lr = 3e-3;
  nn::Adam opt(model.parameters(), ao);
  auto make_batch = [&](int64_t c0, int64_t n) {
    std::vector<float> img(n * 784);
    std::vector<int64_t> lab(n);
    for (int64_t i = 0; i < n; ++i) {
      lab[i] = c0 + (i % 2);
      for (int64_t p = 0; p < 784; ++p) img[i * 784 + p] = float(0.1 * g.normal());
      for (int64_t col = 0; col < 28; ++col) img[i * 784 + (3 * lab[i] + 2) * 28 + col] += 1.0f;
    }
    return std::make_pair(from_vector(img, {n, 1, 28, 28}), from_vector(lab, {n}));
  };
  std::vector<double> first_task_losses;
  for (int64_t task = 0; task < 2; ++task) {
    for (int step = 0; step < 6; ++step) {
      auto [x, y] = make_batch(2 * task, 8);
      EpiNetOutput out = model.forward(x);
      Tensor per_sample = cross_entropy(out.logits, y, -100, 0.0, Reduction::none);
      Tensor loss = mean(per_sample);
      if (model.memory.size() > 0) {
        Tensor idx = from_vector(std::vector<int64_t>{0, 1, 2, 3}, {4});
        Tensor old_x = index_select(model.memory.inputs(), 0, idx);
        loss = add(loss, mul(cross_entropy(model.forward(old_x).logits,
                                           index_select(model.memory.labels(), 0, idx)), 0.5));
      }
      opt.zero_grad();
      backward(loss);
      opt.step();
      if (task == 0) first_task_losses.push_back(loss.item());
      model.memorize(x, out.z, y, model.salience_of(out.z, per_sample));
      model.memory.tick();
    }
    CHECK(model.memory.now() == 6 * (task + 1));
  }
  CHECK(model.memory.size() == 24);
  CHECK(model.memory.evictions() > 0);
  std::vector<int64_t> counts = model.memory.class_counts(4);
  CHECK(counts[2] + counts[3] > 0);  // the second task's traces got in
  CHECK(first_task_losses.back() < first_task_losses.front());
  for (double l : first_task_losses) CHECK(std::isfinite(l));
}

TEST_CASE("epinet_split: a resumed run continues exactly (losses and accuracies bit for bit)") {
  const std::string fmnist = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::is_directory(fmnist)) {
    MESSAGE("skipped: " << fmnist << " (Debian's dataset-fashion-mnist) is not installed");
    return;
  }
  engram::testing::TempDir tmp;
  for (const char* method : {"epinet", "replay"}) {
    CAPTURE(std::string(method));
    apps::Config cfg(apps::epinet_split_schema());
    for (std::string s : {"data.split=0,1|2,3|4,5", "data.train_per_class=16", "data.test_per_class=5",
                          "train.epochs=1", "train.batch=16", "model.d=16", "model.experts=2",
                          "model.expert_hidden=16", "memory.capacity=30", "memory.top_k=4",
                          "replay.batch=8", "run.plots=false"})
      cfg.apply_override(s);
    cfg.set("run.method", method, "test");
    cfg.set("run.out", tmp.file(std::string("full_") + method), "test");
    std::FILE* devnull = std::fopen("/dev/null", "w");
    apps::EpinetRun full = apps::train_epinet_split(cfg, "", devnull);
    cfg.set("run.out", tmp.file(std::string("resumed_") + method), "test");
    std::string ckpt = tmp.file(std::string("full_") + method) + "/checkpoints/task_1.safetensors";
    apps::EpinetRun resumed = apps::train_epinet_split(cfg, ckpt, devnull);
    REQUIRE(full.losses.size() == 6);  // 3 tasks x 32 images / 16
    CHECK(resumed.losses == full.losses);
    CHECK(resumed.steps == full.steps);
    for (size_t i = 0; i < full.R.size(); ++i)
      for (size_t j = 0; j <= i; ++j) CHECK(resumed.R[i][j] == full.R[i][j]);
    // a changed setting is refused, naming it
    cfg.apply_override("train.lr=0.01");
    CHECK(contains(error_of([&] { apps::train_epinet_split(cfg, ckpt, devnull); }),
                   "differs from the checkpoint's in 'train.lr'"));
    std::fclose(devnull);
  }
}

TEST_CASE("epinet matches PyTorch: logits, loss and every gradient (tests/golden/epinet.json)") {
  // The golden is apps/bench/torch_ref.EpiNet in float64 (tests/golden/make_epinet_golden.py);
  // large gradients are stored as two fixed projections, sum(g sin(i+1)) and sum(g cos(i+1)).
  const nlohmann::json doc = golden::load_json("epinet.json");
  for (const nlohmann::json& c : doc.at("cases")) {
    CAPTURE(c.at("name").get<std::string>());
    const nlohmann::json& m = c.at("meta");
    Generator g(0);
    bench::EpiNetStep model(m.at("d"), m.at("hidden"), m.at("classes"), m.at("experts"), &g);
    model.to(DType::f64);
    // the inputs are float32 values written with 9 digits: rounding back to float32 recovers
    // them exactly (9 digits identify a float32, not the double of its decimal expansion)
    auto tensor = [](const nlohmann::json& j) {
      Tensor t = from_vector(j.at("data").get<std::vector<double>>(), j.at("shape").get<Shape>(), DType::f32);
      return raw::to_dtype(t, DType::f64);
    };
    size_t loaded = 0;
    for (auto& [name, p] : model.named_parameters()) {
      REQUIRE_MESSAGE(c.at("params").contains(name), "no golden parameter " << name);
      Tensor v = tensor(c.at("params").at(name));
      REQUIRE(v.shape() == p.shape());
      raw::copy_(p, v);
      ++loaded;
    }
    CHECK(loaded == c.at("params").size());  // and none left over
    Tensor x = tensor(c.at("x"));
    x.requires_grad_(true);
    Tensor y = from_vector(c.at("y").get<std::vector<int64_t>>(), {x.size(0)});
    Tensor logits = model.forward(x, tensor(c.at("keys")), tensor(c.at("salience")), m.at("top_k"));
    Tensor loss = cross_entropy(logits, y);
    std::vector<double> want_logits = c.at("logits").get<std::vector<double>>();
    CHECK(engram::testing::max_abs_diff(logits.to_vector<double>(), want_logits) < 1e-12);
    CHECK(loss.item() == doctest::Approx(c.at("loss").get<double>()).epsilon(1e-12));
    backward(loss);
    auto check_grad = [](const Tensor& got, const nlohmann::json& want, const std::string& what) {
      CAPTURE(what);
      std::vector<double> gv = got.to_vector<double>();
      if (want.contains("data")) {
        CHECK(engram::testing::max_abs_diff(gv, want.at("data").get<std::vector<double>>()) < 1e-12);
        return;
      }
      double s = 0, co = 0;
      for (size_t i = 0; i < gv.size(); ++i) s += gv[i] * std::sin(double(i + 1)), co += gv[i] * std::cos(double(i + 1));
      CHECK(s == doctest::Approx(want.at("sin").get<double>()).epsilon(1e-10));
      CHECK(co == doctest::Approx(want.at("cos").get<double>()).epsilon(1e-10));
    };
    for (auto& [name, p] : model.named_parameters()) check_grad(p.grad(), c.at("grads").at(name), name);
    check_grad(x.grad(), c.at("x_grad"), "x");
  }
}
