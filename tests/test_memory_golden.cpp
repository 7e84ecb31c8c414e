// tests/test_memory_golden.cpp — the memory modules (memory/) against PyTorch, forward and
// backward.
//
// tests/golden/memory.json (written by tests/golden/make_memory_golden.py from the PyTorch twins in
// apps/bench/torch_ref.py) holds, per case, a module's options, its parameters and buffers under
// engram's names, inputs (initial states included), outputs (final states included), an upstream
// gradient per differentiable output, and the gradients of the inputs and every parameter. Here
// each case is rebuilt in engram: the module is constructed with the same options (a config key
// the runner does not read, or one it needs and the golden lacks, is an error), the parameters and
// buffers are copied in by name (a missing, extra or misshapen name is an error naming it), forward
// runs, and backward runs on
//     loss = sum_i sum(output_i * grad_output_i)
// whose gradient with respect to output_i is exactly grad_output_i. Every case runs twice:
//   f64  the module and inputs converted to float64. The golden is float64 PyTorch arithmetic on
//        the same float32-exact inputs, rounded to float32 once when written (relative error
//        <= 2^-24 = 6.0e-8), so engram must match it to that rounding: rtol 2e-7 (3.4x the
//        rounding; measured worst 5.7e-8 relative, i.e. the rounding itself) and atol 1e-9 for
//        entries that cancel to ~0, where float64 summation order leaves ~1e-16 times the size of
//        the terms. This is the check with teeth: a gradient off by 1e-6 relative fails it.
//   f32  engram's training dtype. float32 rounding (6e-8 per op) accumulates over the time steps
//        of the recurrences, the 1/temperature of the episodic softmax (up to 10x) and the layers.
//        atol 1e-5, rtol 1e-4 (the tolerance of the layer goldens): the worst element measured
//        over all cases uses 0.35 of it (the episodic buffer at temperature 0.25, |diff| 5.6e-6).
// A failure reports the worst element; any NaN fails (the checks are `!(diff <= tol)`).
// The language-model case also runs through apps::make_language_model (apps/common/lm.cpp), the
// way the apps build it from their model.* config. Set ENGRAM_GOLDEN_REPORT=1 to print the worst
// error of every case.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <nlohmann/json.hpp>

#include "apps/common/config.h"
#include "apps/common/lm.h"
#include "autograd/golden.h"
#include "memory/crsd/crsd.h"
#include "tests/test_util.h"

using namespace engram;
using namespace engram::memory;
using json = nlohmann::json;

namespace {

struct Tolerance {
  double atol, rtol;
};
constexpr Tolerance kTolF64{1e-9, 2e-7};  // why: see the top of the file
constexpr Tolerance kTolF32{1e-5, 1e-4};

const json& golden_doc() {
  static const json doc = golden::load_json("memory.json");
  return doc;
}

// ------------------------------------------------------------------------------ options, strictly
// Reads keys of one golden config object and insists, in finish(), that every key was read.
class ConfigReader {
 public:
  ConfigReader(const json& j, std::string what) : j_(j), what_(std::move(what)) {
    ENGRAM_CHECK(j_.is_object(), "{}: the golden config is not an object: {}", what_, j_.dump());
  }
  template <class T> T get(const std::string& key) {
    ENGRAM_CHECK(j_.contains(key), "{}: the golden config has no '{}' (it has {})", what_, key,
                 j_.dump());
    read_.insert(key);
    try {
      return j_.at(key).get<T>();
    } catch (const json::exception& e) {
      ENGRAM_FAIL("{}: config '{}' = {} has the wrong type ({})", what_, key, j_.at(key).dump(),
                  e.what());
    }
  }
  bool has(const std::string& key) const { return j_.contains(key); }
  ConfigReader sub(const std::string& key) {
    get<json>(key);
    return ConfigReader(j_.at(key), what_ + "." + key);
  }
  void finish() const {
    for (auto& [key, value] : j_.items())
      ENGRAM_CHECK(read_.count(key), "{}: golden config key '{}' = {} is not used by the engram "
                   "runner in tests/test_memory_golden.cpp", what_, key, value.dump());
  }

 private:
  const json& j_;
  std::string what_;
  std::set<std::string> read_;
};

HebbianOptions hebbian_options(ConfigReader r) {
  HebbianOptions o;
  o.gamma_init = r.get<double>("gamma_init");
  o.eta_init = r.get<double>("eta_init");
  o.top_k = r.get<int64_t>("top_k");
  o.detach_memory = r.get<bool>("detach_memory");
  o.eps = r.get<double>("eps");
  o.chunk = r.get<int64_t>("chunk");
  r.finish();
  return o;
}

EpisodicOptions episodic_options(ConfigReader r) {
  EpisodicOptions o;
  o.slots = r.get<int64_t>("slots");
  o.temperature = r.get<double>("temperature");
  o.decay = r.get<double>("decay");
  o.top_k = r.get<int64_t>("top_k");
  o.recency_window = r.get<int64_t>("recency_window");
  o.detach_memory = r.get<bool>("detach_memory");
  o.eps = r.get<double>("eps");
  r.finish();
  return o;
}

ReservoirOptions reservoir_options(ConfigReader r) {
  ReservoirOptions o;
  o.size = r.get<int64_t>("size");
  o.spectral_radius = r.get<double>("spectral_radius");
  o.leak = r.get<double>("leak");
  o.input_scale = r.get<double>("input_scale");
  r.finish();
  return o;
}

// A cell's config, or with `lm` also vocab_size and layers.
CRSDConfig crsd_config(ConfigReader r, bool lm) {
  CRSDConfig c;
  c.d_model = r.get<int64_t>("d_model");
  c.d_mem = r.get<int64_t>("d_mem");
  c.reservoir = reservoir_options(r.sub("reservoir"));
  c.hebbian = hebbian_options(r.sub("hebbian"));
  c.episodic = episodic_options(r.sub("episodic"));
  c.use_hebbian = r.get<bool>("use_hebbian");
  c.use_episodic = r.get<bool>("use_episodic");
  c.use_spectral = r.get<bool>("use_spectral");
  if (lm) {
    c.vocab_size = r.get<int64_t>("vocab_size");
    c.layers = r.get<int64_t>("layers");
  }
  r.finish();
  return c;
}

// ------------------------------------------------------------------------------------ one run
using Outputs = std::map<std::string, Tensor>;

// What a runner gets: the case's inputs in the run's dtype, and load() to copy the golden
// parameters and buffers into the module it builds. load() remembers the parameter handles, so
// their gradients can be read after the module itself is gone.
struct GoldenRun {
  std::string case_name;
  DType dtype;
  const json& config;
  std::map<std::string, Tensor> inputs;
  const json& golden_params;
  const json& golden_buffers;
  nn::NamedTensors params;

  const Tensor& in(const std::string& name) const {
    auto it = inputs.find(name);
    ENGRAM_CHECK(it != inputs.end(), "case '{}': golden has no input '{}'", case_name, name);
    return it->second;
  }
  Tensor optional_in(const std::string& name) const {
    auto it = inputs.find(name);
    return it == inputs.end() ? Tensor() : it->second;
  }
  bool has(const std::string& name) const { return inputs.count(name) > 0; }
  ConfigReader cfg() const { return ConfigReader(config, fmt::format("case '{}'", case_name)); }

  // Converts m to the run's dtype, then copies every parameter and buffer in by name.
  void load(nn::Module& m) {
    m.to(dtype);
    params = m.named_parameters();
    copy_named(m, "parameter", params, golden_params);
    copy_named(m, "buffer", m.named_buffers(), golden_buffers);
  }

 private:
  void copy_named(const nn::Module& m, const char* kind, const nn::NamedTensors& engram,
                  const json& stored) const {
    ENGRAM_CHECK(stored.is_object(), "case '{}': the golden's {}s are not an object", case_name,
                 kind);
    std::vector<std::string> golden_names, engram_names;
    for (auto& [name, v] : stored.items()) golden_names.push_back(name);
    for (auto& [name, t] : engram) engram_names.push_back(name);
    NoGradGuard no_grad;
    for (auto& [name, p] : engram) {
      ENGRAM_CHECK(stored.contains(name), "case '{}': engram {} {} '{}' {} is missing from the "
                   "golden (golden has {})", case_name, m.type_name(), kind, name,
                   shape_str(p.shape()), fmt::join(golden_names, ", "));
      Tensor value = golden::tensor_from_json(stored.at(name));
      ENGRAM_CHECK(value.shape() == p.shape(), "case '{}': {} '{}' is {} in engram but {} in the "
                   "golden", case_name, kind, name, shape_str(p.shape()),
                   shape_str(value.shape()));
      raw::copy_(p, raw::to_dtype(value, p.dtype()));
    }
    for (const std::string& name : golden_names)
      ENGRAM_CHECK(std::find(engram_names.begin(), engram_names.end(), name) != engram_names.end(),
                   "case '{}': golden {} '{}' has no engram counterpart in {} (engram has {})",
                   case_name, kind, name, m.type_name(), fmt::join(engram_names, ", "));
  }
};

// ------------------------------------------------------------------------- one runner per module
Outputs run_hebbian(GoldenRun& r) {
  ConfigReader c = r.cfg();
  HebbianMemory m(c.get<int64_t>("d_k"), c.get<int64_t>("d_v"), hebbian_options(c.sub("options")));
  c.finish();
  r.load(m);
  HebbianMemory::Output out = m.forward(r.in("q"), r.in("k"), r.in("v"), r.optional_in("h0"));
  return {{"recall", out.recall}, {"state", out.state}};
}

// The episodic state from the inputs `prefix`keys, ... when the golden gives one.
bool episodic_state_from(const GoldenRun& r, const std::string& prefix, EpisodicState& st) {
  const char* parts[] = {"keys", "values", "importance", "age", "filled"};
  int given = 0;
  for (const char* p : parts) given += r.has(prefix + p);
  if (given == 0) return false;
  ENGRAM_CHECK(given == 5, "case '{}': the golden gives {} of the 5 tensors {}*", r.case_name,
               given, prefix);
  st = {r.in(prefix + "keys"), r.in(prefix + "values"), r.in(prefix + "importance"),
        r.in(prefix + "age"), r.in(prefix + "filled")};
  return true;
}

void add_episodic_state(Outputs& out, const std::string& prefix, const EpisodicState& st) {
  out[prefix + "keys"] = st.keys;
  out[prefix + "values"] = st.values;
  out[prefix + "importance"] = st.importance;
  out[prefix + "age"] = st.age;
  out[prefix + "filled"] = st.filled;
}

Outputs run_episodic(GoldenRun& r) {
  ConfigReader c = r.cfg();
  EpisodicBuffer m(c.get<int64_t>("d_k"), c.get<int64_t>("d_v"),
                   episodic_options(c.sub("options")));
  c.finish();
  r.load(m);
  EpisodicState st;
  if (!episodic_state_from(r, "state.", st)) st = m.initial_state(r.in("q").shape()[0], r.dtype);
  Outputs out{{"recall", m.forward(r.in("q"), r.in("k"), r.in("v"), st)}};
  add_episodic_state(out, "state.", st);
  return out;
}

Outputs run_reservoir(GoldenRun& r) {
  ConfigReader c = r.cfg();
  Generator gen(1);  // the initial W_in, W_res are overwritten by the golden's
  Reservoir m(c.get<int64_t>("input_size"), reservoir_options(c.sub("options")), &gen);
  c.finish();
  r.load(m);
  Tensor state = r.optional_in("s0");
  Tensor states = m.forward(r.in("u"), state);
  return {{"states", states}, {"state", state}};
}

Outputs run_crsd_cell(GoldenRun& r) {
  Generator gen(1);
  CRSDCell m(crsd_config(r.cfg(), false), &gen);
  r.load(m);
  const Tensor& u = r.in("u");
  CRSDCellState st = m.initial_state(u.shape()[0], r.dtype);
  const bool given = r.has("state.reservoir");
  if (given) {
    st.reservoir = r.in("state.reservoir");
    st.hidden = r.in("state.hidden");
    st.hebbian = r.in("state.hebbian");
    ENGRAM_CHECK(episodic_state_from(r, "state.episodic.", st.episodic), "case '{}': the golden "
                 "gives an initial state without the episodic part", r.case_name);
  } else {
    ENGRAM_CHECK(!r.has("state.hidden") && !r.has("state.hebbian") &&
                     !episodic_state_from(r, "state.episodic.", st.episodic),
                 "case '{}': the golden gives part of an initial state", r.case_name);
  }
  Outputs out{{"y", m.forward(u, st)}, {"state.reservoir", st.reservoir},
              {"state.hidden", st.hidden}, {"state.hebbian", st.hebbian}};
  add_episodic_state(out, "state.episodic.", st.episodic);
  return out;
}

Outputs run_crsd_lm(GoldenRun& r) {
  Generator gen(1);
  CRSDLanguageModel m(crsd_config(r.cfg(), true), &gen);
  r.load(m);
  CRSDLanguageModel::State state;  // empty: the model starts from its initial state
  return {{"logits", m.forward(r.in("ids"), state)}};
}

// The same language model as the apps build it: apps::make_language_model from model.* settings.
// The options the config has no key for must be at memory::CRSDConfig's defaults.
Outputs run_crsd_lm_via_apps(GoldenRun& r) {
  const CRSDConfig c = crsd_config(r.cfg(), true), d;
  ENGRAM_CHECK(c.hebbian.top_k == d.hebbian.top_k &&
                   c.hebbian.detach_memory == d.hebbian.detach_memory &&
                   c.hebbian.eps == d.hebbian.eps &&
                   c.episodic.temperature == d.episodic.temperature &&
                   c.episodic.decay == d.episodic.decay && c.episodic.top_k == d.episodic.top_k &&
                   c.episodic.recency_window == d.episodic.recency_window &&
                   c.episodic.detach_memory == d.episodic.detach_memory &&
                   c.episodic.eps == d.episodic.eps &&
                   c.reservoir.input_scale == d.reservoir.input_scale,
               "case '{}': options the apps' model.* config cannot set differ from the defaults",
               r.case_name);
  auto schema = std::make_shared<apps::Schema>("memory golden", apps::lm_model_fields());
  apps::Config cfg(schema);
  auto set = [&](const std::string& key, const auto& value) {
    cfg.set(key, fmt::format("{}", value), "tests/test_memory_golden.cpp");
  };
  set("model.kind", "crsd");
  set("model.d_model", c.d_model);
  set("model.layers", c.layers);
  set("model.d_mem", c.d_mem);
  set("model.reservoir", c.reservoir.size);
  set("model.spectral_radius", c.reservoir.spectral_radius);
  set("model.leak", c.reservoir.leak);
  set("model.slots", c.episodic.slots);
  set("model.gamma_init", c.hebbian.gamma_init);
  set("model.eta_init", c.hebbian.eta_init);
  set("model.use_hebbian", c.use_hebbian);
  set("model.use_episodic", c.use_episodic);
  set("model.use_spectral", c.use_spectral);
  Generator gen(1);
  std::unique_ptr<apps::LanguageModel> lm = apps::make_language_model(cfg, c.vocab_size, &gen);
  r.load(lm->module());
  apps::LMState state;  // empty: the model starts from its initial state
  return {{"logits", lm->forward(r.in("ids"), state)}};
}

// Runner name -> which golden module it rebuilds and how.
struct Runner {
  const char* module;
  Outputs (*run)(GoldenRun&);
  // Also run in float64 (the apps path too: its zero state follows the parameters' dtype, which
  // this f64 run is what caught).
  bool f64;
};
const std::map<std::string, Runner>& runners() {
  static const std::map<std::string, Runner> table = {
      {"HebbianMemory", {"HebbianMemory", run_hebbian, true}},
      {"EpisodicBuffer", {"EpisodicBuffer", run_episodic, true}},
      {"Reservoir", {"Reservoir", run_reservoir, true}},
      {"CRSDCell", {"CRSDCell", run_crsd_cell, true}},
      {"CRSDLanguageModel", {"CRSDLanguageModel", run_crsd_lm, true}},
      {"CRSDLanguageModel via apps", {"CRSDLanguageModel", run_crsd_lm_via_apps, true}},
  };
  return table;
}

// ------------------------------------------------------------------------------- comparison
struct Worst {
  double score = 0;    // |diff| / (atol + rtol |want|) of the worst element; > 1 fails
  double max_abs = 0;  // largest |diff| seen
  std::string where;
};

// Empty when got matches want within tol; otherwise a line naming the worst element. Any NaN in
// got or want fails: every test below is `!(diff <= allowed)`.
std::string compare(const std::string& what, const Tensor& got, const Tensor& want, Tolerance tol,
                    Worst& worst) {
  if (!got.defined()) return fmt::format("{}: engram produced no tensor", what);
  if (got.shape() != want.shape())
    return fmt::format("{}: shape {} but the golden is {}", what, shape_str(got.shape()),
                       shape_str(want.shape()));
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  size_t bad = g.size();
  double bad_score = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double diff = std::abs(g[i] - w[i]), allowed = tol.atol + tol.rtol * std::abs(w[i]);
    const double score = diff / allowed;  // NaN when either side is NaN
    if (!(score <= worst.score)) {
      worst.score = std::isnan(score) ? INFINITY : score;
      worst.where = fmt::format("{} [{}]", what, i);
    }
    if (!(diff <= worst.max_abs)) worst.max_abs = std::isnan(diff) ? INFINITY : diff;
    if (!(diff <= allowed) && (bad == g.size() || !(score <= bad_score))) {
      bad = i;
      bad_score = std::isnan(score) ? INFINITY : score;
    }
  }
  if (bad == g.size()) return "";
  std::vector<int64_t> index(want.dim());  // unravel the flat index for the message
  for (int64_t d = want.dim() - 1, rest = int64_t(bad); d >= 0; --d) {
    index[d] = rest % want.shape()[d];
    rest /= want.shape()[d];
  }
  return fmt::format("{} {}: worst element [{}] got {:.9g}, want {:.9g} (|diff| {:.3g} > atol {:g} "
                     "+ rtol {:g} * |want|)", what, shape_str(want.shape()), fmt::join(index, ", "),
                     g[bad], w[bad], std::abs(g[bad] - w[bad]), tol.atol, tol.rtol);
}

Tensor golden_tensor(const json& j, DType dtype) {
  Tensor t = golden::tensor_from_json(j);
  return is_floating(t.dtype()) ? raw::to_dtype(t, dtype) : t;
}

// Runs one golden case with one runner in one dtype; returns the mismatches (empty = pass).
std::vector<std::string> check_case(const json& c, const std::string& runner_name, DType dtype,
                                    Worst& worst) {
  const std::string name = c.at("name").get<std::string>();
  const Tolerance tol = dtype == DType::f64 ? kTolF64 : kTolF32;
  const std::string where = fmt::format("case '{}' ({}, {})", name, runner_name, dtype_name(dtype));
  GoldenRun run{name, dtype, c.at("config"), {}, c.at("params"), c.at("buffers"), {}};
  const json& input_grads = c.at("input_grads");
  for (auto& [in_name, value] : c.at("inputs").items()) {
    Tensor t = golden_tensor(value, dtype);
    if (input_grads.contains(in_name)) t.requires_grad_(true);
    run.inputs[in_name] = t;
  }
  std::vector<std::string> failures;
  auto note = [&](const std::string& msg) {
    if (!msg.empty()) failures.push_back(fmt::format("{}: {}", where, msg));
  };
  tape().clear();
  Outputs outputs = runners().at(runner_name).run(run);

  const json& want_outputs = c.at("outputs");
  const json& grad_outputs = c.at("grad_outputs");
  for (auto& [out_name, t] : outputs)
    if (!want_outputs.contains(out_name))
      note(fmt::format("engram gives output '{}' that the golden lacks", out_name));
  Tensor loss;
  for (auto& [out_name, want] : want_outputs.items()) {
    auto it = outputs.find(out_name);
    if (it == outputs.end()) {
      note(fmt::format("engram runner gives no output '{}'", out_name));
      continue;
    }
    note(compare("output '" + out_name + "'", it->second, golden_tensor(want, dtype), tol, worst));
    if (!grad_outputs.contains(out_name)) continue;  // importance, age, filled: no gradient
    Tensor term = sum(mul(it->second, golden_tensor(grad_outputs.at(out_name), dtype)));
    loss = loss.defined() ? add(loss, term) : term;
  }
  for (auto& [g_name, g] : grad_outputs.items())
    if (!want_outputs.contains(g_name)) note(fmt::format("grad_output '{}' of no output", g_name));
  if (!failures.empty() || !loss.defined()) {
    tape().clear();
    return failures;
  }
  backward(loss);

  for (auto& [in_name, want] : input_grads.items()) {
    const Tensor& x = run.inputs.at(in_name);
    Tensor g = x.grad().defined() ? x.grad() : zeros(x.shape(), x.dtype());
    note(compare("grad of input '" + in_name + "'", g, golden_tensor(want, dtype), tol, worst));
  }
  const json& param_grads = c.at("param_grads");
  for (auto& [p_name, p] : run.params) {
    if (!param_grads.contains(p_name)) {
      note(fmt::format("the golden has no gradient of parameter '{}'", p_name));
      continue;
    }
    // A parameter that took no part (an ablated memory) has no .grad: zero.
    Tensor g = p.grad().defined() ? p.grad() : zeros(p.shape(), p.dtype());
    note(compare("grad of parameter '" + p_name + "'", g,
                 golden_tensor(param_grads.at(p_name), dtype), tol, worst));
  }
  return failures;
}

// Runs every golden case these runners handle, in f64 and f32; returns how many case runs passed
// or failed (not skipped).
int check_runners(std::initializer_list<const char*> names) {
  static const bool report = [] {
    const char* e = std::getenv("ENGRAM_GOLDEN_REPORT");
    return e && *e && std::string(e) != "0";
  }();
  int ran = 0;
  for (const char* runner_name : names) {
    const Runner& runner = runners().at(runner_name);
    for (const json& c : golden_doc().at("cases")) {
      if (c.at("module").get<std::string>() != runner.module) continue;
      for (DType dtype : {DType::f64, DType::f32}) {
        if (dtype == DType::f64 && !runner.f64) continue;
        const std::string name = c.at("name").get<std::string>();
        INFO("golden case " << name << " (" << std::string(runner_name) << ", "
                            << dtype_name(dtype) << ")");
        Worst worst;
        std::vector<std::string> failures;
        try {
          failures = check_case(c, runner_name, dtype, worst);
        } catch (const Error& e) {
          tape().clear();
          failures.push_back(e.what());
        }
        for (const std::string& f : failures) FAIL_CHECK(f);
        if (report) {
          const Tolerance tol = dtype == DType::f64 ? kTolF64 : kTolF32;
          fmt::print("memory golden {:<36} {:<26} {}: max |diff| {:.3g}, worst {:.3g} of the "
                     "tolerance (atol {:g}, rtol {:g}) at {}\n", name, runner_name,
                     dtype_name(dtype), worst.max_abs, worst.score, tol.atol, tol.rtol,
                     worst.where);
        }
        ++ran;
      }
    }
  }
  return ran;
}

}  // namespace

TEST_CASE("memory golden: HebbianMemory matches PyTorch (f64 and f32, with state, top-k, detach)") {
  CHECK(check_runners({"HebbianMemory"}) == 3 * 2);
}

TEST_CASE("memory golden: EpisodicBuffer matches PyTorch (replacement, top-k, recency, detach)") {
  CHECK(check_runners({"EpisodicBuffer"}) == 3 * 2);
}

TEST_CASE("memory golden: Reservoir matches PyTorch") {
  CHECK(check_runners({"Reservoir"}) == 2 * 2);
}

TEST_CASE("memory golden: CRSDCell matches PyTorch over several steps, every state in and out") {
  CHECK(check_runners({"CRSDCell"}) == 4 * 2);
}

TEST_CASE("memory golden: the CRSD language model matches PyTorch, also as the apps build it") {
  CHECK(check_runners({"CRSDLanguageModel", "CRSDLanguageModel via apps"}) == 2 * 2);
}

TEST_CASE("memory golden: every golden case has an engram runner") {
  std::set<std::string> modules;
  for (auto& [name, r] : runners()) modules.insert(r.module);
  for (const json& c : golden_doc().at("cases")) {
    std::string module = c.at("module").get<std::string>();
    CHECK_MESSAGE(modules.count(module) == 1, "golden case '" << c.at("name").get<std::string>()
                                              << "' has module '" << module
                                              << "' that no runner builds");
  }
}

TEST_CASE("memory golden: parameter and buffer names are matched strictly, by name") {
  auto f32 = [](Shape shape) {
    return json{{"shape", shape}, {"dtype", "f32"},
                {"data", std::vector<float>(shape_numel(shape))}};
  };
  const json config = json::object(), no_buffers = json::object();
  auto load_error = [&](nn::Module& m, const json& params, const json& buffers) {
    GoldenRun run{"probe", DType::f32, config, {}, params, buffers, {}};
    return testing::error_of([&] { run.load(m); });
  };
  HebbianMemory h(3, 4);
  CHECK(load_error(h, {{"gamma_logit", f32({})}, {"eta_raw", f32({})}}, no_buffers) == "");
  CHECK(testing::contains(load_error(h, {{"gamma_logit", f32({})}}, no_buffers),
                          "HebbianMemory parameter 'eta_raw' [] is missing from the golden"));
  CHECK(testing::contains(
      load_error(h, {{"gamma_logit", f32({})}, {"eta_raw", f32({})}, {"beta", f32({})}},
                 no_buffers),
      "golden parameter 'beta' has no engram counterpart in HebbianMemory"));
  CHECK(testing::contains(
      load_error(h, {{"gamma_logit", f32({1})}, {"eta_raw", f32({})}}, no_buffers),
      "parameter 'gamma_logit' is [] in engram but [1] in the golden"));
  Generator gen(1);
  Reservoir res(2, {.size = 3}, &gen);
  CHECK(testing::contains(load_error(res, json::object(), {{"w_in", f32({3, 2})}}),
                          "Reservoir buffer 'w_res' [3, 3] is missing from the golden"));
  CHECK(testing::contains(
      load_error(res, json::object(), {{"w_in", f32({2, 3})}, {"w_res", f32({3, 3})}}),
      "buffer 'w_in' is [3, 2] in engram but [2, 3] in the golden"));
}

TEST_CASE("memory golden: the comparison fails on NaN and reports the worst element") {
  Tensor want = from_vector(std::vector<float>{1, 2, 3}, {3});
  Worst worst;
  CHECK(compare("y", want, want, kTolF32, worst) == "");
  Tensor nan = from_vector(std::vector<float>{1, NAN, 3}, {3});
  std::string msg = compare("y", nan, want, kTolF32, worst);
  CHECK(testing::contains(msg, "worst element [1] got nan"));
  CHECK(std::isinf(worst.score));
  Worst w2;
  CHECK(testing::contains(compare("y", want, nan, kTolF32, w2), "worst element [1]"));
  Worst w3;
  Tensor off = from_vector(std::vector<float>{1, 2.001f, 3}, {3});
  CHECK(testing::contains(compare("y", off, want, kTolF64, w3), "worst element [1]"));
  CHECK(compare("y", zeros({2}), want, kTolF32, w3) == "y: shape [2] but the golden is [3]");
}

TEST_CASE("golden::find_file: ENGRAM_GOLDEN_DIR, the upward search, the error naming the file") {
  const char* old = std::getenv("ENGRAM_GOLDEN_DIR");
  const std::string saved = old ? old : "";
  if (!old) {
    std::filesystem::path p = golden::find_file("memory.json");
    CHECK(p.filename() == "memory.json");
    CHECK(p.parent_path().filename() == "golden");
  }
  std::string missing = testing::error_of([] { golden::find_file("no_such_golden.json"); });
  CHECK(testing::contains(missing, "golden file no_such_golden.json not found"));
  {
    testing::TempDir dir;
    dir.write("probe.json", "{}");
    ::setenv("ENGRAM_GOLDEN_DIR", dir.path.c_str(), 1);
    CHECK(golden::find_file("probe.json") == dir.path / "probe.json");
    std::string msg = testing::error_of([] { golden::find_file("memory.json"); });
    CHECK(testing::contains(msg, "golden file memory.json not found in ENGRAM_GOLDEN_DIR="));
    CHECK(golden::default_path() == (dir.path / "ops.json").string());  // load() reports it
  }
  if (old) ::setenv("ENGRAM_GOLDEN_DIR", saved.c_str(), 1);
  else ::unsetenv("ENGRAM_GOLDEN_DIR");
}
