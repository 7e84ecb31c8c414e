// tests/test_layer_golden.cpp — every nn layer against PyTorch, forward and backward.
//
// tests/golden/layers.json (written by tests/golden/make_layer_golden.py with python3-torch)
// holds, per case, a layer's hyper-parameters, its parameters under PyTorch's state-dict names,
// inputs, outputs, an upstream gradient per output, and the gradients of the inputs and every
// parameter. Here each case is rebuilt in engram: the layer is constructed with the same
// hyper-parameters, the parameters are copied in by name (a missing, extra or misshapen name is
// an error naming it), forward runs, and backward runs on
//     loss = sum_i sum(output_i * grad_output_i)
// whose gradient with respect to output_i is exactly grad_output_i. Outputs and all gradients
// must match within |got - want| <= atol + rtol |want|; a failure reports the worst element.
#include <doctest/doctest.h>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "autograd/golden.h"
#include "nn/attention.h"
#include "nn/layers.h"
#include "nn/moe.h"
#include "nn/recurrent.h"
#include "nn/spectral.h"

using namespace engram;
using json = nlohmann::json;

namespace {

constexpr double kAtol = 1e-5, kRtol = 1e-4;

const json& golden_doc() {
  static const json doc = golden::load_json("layers.json");
  return doc;
}

Tensor tensor_from_json(const json& j, const std::string& what) {
  Shape shape = j.at("shape").get<Shape>();
  std::string dtype = j.at("dtype").get<std::string>();
  if (dtype == "i64") return from_vector(j.at("data").get<std::vector<int64_t>>(), shape);
  ENGRAM_CHECK(dtype == "f32", "{}: unknown golden dtype '{}'", what, dtype);
  return from_vector(j.at("data").get<std::vector<float>>(), shape);
}

using Outputs = std::map<std::string, Tensor>;

// What a runner gets: the case's config and inputs, and load() to copy the golden parameters
// into the module it builds. load() also remembers the parameter handles, so their gradients
// can be read after the module itself is gone.
struct GoldenRun {
  std::string case_name;
  const json& config;
  std::map<std::string, Tensor> inputs;
  nn::NamedTensors params;
  const json& golden_params;

  const Tensor& in(const std::string& name) const {
    auto it = inputs.find(name);
    ENGRAM_CHECK(it != inputs.end(), "case '{}': golden has no input '{}'", case_name, name);
    return it->second;
  }
  Tensor optional_in(const std::string& name) const {
    auto it = inputs.find(name);
    return it == inputs.end() ? Tensor() : it->second;
  }
  template <class T> T cfg(const char* key) const {
    ENGRAM_CHECK(config.contains(key), "case '{}': config has no '{}'", case_name, key);
    return config.at(key).get<T>();
  }

  void load(nn::Module& m) {
    params = m.named_parameters();
    std::set<std::string> engram_names;
    NoGradGuard no_grad;
    for (auto& [name, p] : params) {
      engram_names.insert(name);
      ENGRAM_CHECK(golden_params.contains(name),
                   "case '{}': engram {} parameter '{}' {} is missing from the golden (golden has "
                   "{})", case_name, m.type_name(), name, shape_str(p.shape()),
                   fmt::join(golden_keys(), ", "));
      Tensor value = tensor_from_json(golden_params.at(name), name);
      ENGRAM_CHECK(value.shape() == p.shape(),
                   "case '{}': parameter '{}' is {} in engram but {} in the golden", case_name,
                   name, shape_str(p.shape()), shape_str(value.shape()));
      raw::copy_(p, value);
    }
    for (const std::string& name : golden_keys())
      ENGRAM_CHECK(engram_names.count(name), "case '{}': golden parameter '{}' has no engram "
                   "counterpart in {} (engram has {})", case_name, name, m.type_name(),
                   fmt::join(engram_names, ", "));
  }

 private:
  std::vector<std::string> golden_keys() const {
    std::vector<std::string> keys;
    for (auto& [k, v] : golden_params.items()) keys.push_back(k);
    return keys;
  }
};

// ------------------------------------------------------------------------- one runner per layer
Outputs run_unary(GoldenRun& r, nn::UnaryModule& m) {
  r.load(m);
  return {{"y", m(r.in("x"))}};
}

Outputs run_lstm(GoldenRun& r) {
  nn::LSTM m(r.cfg<int64_t>("input_size"), r.cfg<int64_t>("hidden_size"),
             r.cfg<int64_t>("num_layers"), r.cfg<bool>("bias"));
  r.load(m);
  nn::LSTMOutput out = m(r.in("x"), {r.optional_in("h0"), r.optional_in("c0")});
  return {{"output", out.output}, {"h_n", out.h_n}, {"c_n", out.c_n}};
}

Outputs run_gru(GoldenRun& r) {
  nn::GRU m(r.cfg<int64_t>("input_size"), r.cfg<int64_t>("hidden_size"),
            r.cfg<int64_t>("num_layers"), r.cfg<bool>("bias"));
  r.load(m);
  nn::GRUOutput out = m(r.in("x"), r.optional_in("h0"));
  return {{"output", out.output}, {"h_n", out.h_n}};
}

Outputs run_attention(GoldenRun& r) {
  nn::MultiHeadAttention m(r.cfg<int64_t>("embed_dim"), r.cfg<int64_t>("num_heads"),
                           r.cfg<bool>("bias"));
  r.load(m);
  nn::AttentionOptions opt;
  opt.causal = r.cfg<bool>("causal");
  opt.key_padding_mask = r.optional_in("key_padding_mask");
  std::string weights = r.cfg<std::string>("weights");
  opt.weights = weights == "per_head"   ? nn::AttentionWeights::per_head
                : weights == "averaged" ? nn::AttentionWeights::averaged
                                        : nn::AttentionWeights::none;
  // Self-attention passes one tensor three times (engram's fused-projection path).
  nn::AttentionOutput out = r.cfg<bool>("self") ? m(r.in("x"), r.in("x"), r.in("x"), opt)
                                                : m(r.in("query"), r.in("key"), r.in("value"), opt);
  Outputs res{{"y", out.output}};
  if (opt.weights != nn::AttentionWeights::none) res["weights"] = out.weights;
  return res;
}

Outputs run_transformer_block(GoldenRun& r) {
  nn::TransformerBlock m(r.cfg<int64_t>("embed_dim"), r.cfg<int64_t>("num_heads"),
                         r.cfg<int64_t>("ff_dim"), r.cfg<bool>("causal"));
  r.load(m);
  return {{"y", m.forward(r.in("x"), r.optional_in("key_padding_mask"))}};
}

Outputs run_moe(GoldenRun& r) {
  nn::MixtureOfExperts m(r.cfg<int64_t>("in_features"), r.cfg<int64_t>("hidden"),
                         r.cfg<int64_t>("out_features"), r.cfg<int64_t>("num_experts"),
                         r.cfg<int64_t>("top_k"),
                         nn::activation_from_name(r.cfg<std::string>("activation")));
  r.load(m);
  nn::MoEOutput out = m(r.in("x"));
  return {{"y", out.output}, {"gate_probs", out.gate_probs}, {"gates", out.gates}};
}

Outputs run_case(const std::string& layer, GoldenRun& r) {
  if (layer == "Linear") {
    nn::Linear m(r.cfg<int64_t>("in_features"), r.cfg<int64_t>("out_features"), r.cfg<bool>("bias"));
    return run_unary(r, m);
  }
  if (layer == "Embedding") {
    nn::Embedding m(r.cfg<int64_t>("num_embeddings"), r.cfg<int64_t>("dim"),
                    r.cfg<int64_t>("padding_idx"));
    r.load(m);
    return {{"y", m(r.in("ids"))}};
  }
  if (layer == "Conv2d") {
    nn::Conv2d m(r.cfg<int64_t>("in_channels"), r.cfg<int64_t>("out_channels"),
                 r.cfg<int64_t>("kernel"), r.cfg<int64_t>("stride"), r.cfg<int64_t>("padding"),
                 r.cfg<int64_t>("dilation"), r.cfg<bool>("bias"));
    return run_unary(r, m);
  }
  if (layer == "MaxPool2d") {
    nn::MaxPool2d m(r.cfg<int64_t>("kernel"), r.cfg<int64_t>("stride"), r.cfg<int64_t>("padding"));
    return run_unary(r, m);
  }
  if (layer == "AvgPool2d") {
    nn::AvgPool2d m(r.cfg<int64_t>("kernel"), r.cfg<int64_t>("stride"), r.cfg<int64_t>("padding"));
    return run_unary(r, m);
  }
  if (layer == "Flatten") {
    nn::Flatten m(r.cfg<int64_t>("start_dim"), r.cfg<int64_t>("end_dim"));
    return run_unary(r, m);
  }
  if (layer == "LayerNorm") {
    nn::LayerNorm m(r.cfg<int64_t>("dim"), r.cfg<double>("eps"));
    return run_unary(r, m);
  }
  if (layer == "RMSNorm") {
    nn::RMSNorm m(r.cfg<int64_t>("dim"), r.cfg<double>("eps"));
    return run_unary(r, m);
  }
  if (layer == "Activation") {
    nn::Activation m(nn::activation_from_name(r.cfg<std::string>("kind")), r.cfg<double>("param"));
    return run_unary(r, m);
  }
  if (layer == "SequentialMLP") {
    // Linear, act, Linear, act, ..., Linear: children 0, 1, 2, ... as in nn.Sequential
    auto sizes = r.cfg<std::vector<int64_t>>("sizes");
    auto acts = r.cfg<std::vector<std::string>>("activations");
    nn::Sequential m;
    for (size_t i = 0; i + 1 < sizes.size(); ++i) {
      m.add(std::make_shared<nn::Linear>(sizes[i], sizes[i + 1]));
      if (i < acts.size()) m.add(std::make_shared<nn::Activation>(nn::activation_from_name(acts[i])));
    }
    return run_unary(r, m);
  }
  if (layer == "LSTM") return run_lstm(r);
  if (layer == "GRU") return run_gru(r);
  if (layer == "MultiHeadAttention") return run_attention(r);
  if (layer == "TransformerBlock") return run_transformer_block(r);
  if (layer == "MixtureOfExperts") return run_moe(r);
  if (layer == "SpectralMix") {
    nn::SpectralMix m(r.cfg<int64_t>("features"));
    return run_unary(r, m);
  }
  ENGRAM_FAIL("case '{}': no engram runner for layer '{}' in tests/test_layer_golden.cpp",
              r.case_name, layer);
}

// ------------------------------------------------------------------------------- comparison
// Empty when got matches want within tolerance; otherwise a line naming the worst element.
std::string compare(const std::string& what, const Tensor& got, const Tensor& want) {
  if (!got.defined()) return fmt::format("{}: engram produced no tensor", what);
  if (got.shape() != want.shape())
    return fmt::format("{}: shape {} but the golden is {}", what, shape_str(got.shape()),
                       shape_str(want.shape()));
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  size_t worst = 0;
  double worst_excess = -INFINITY;  // |diff| / tolerance; > 1 fails
  for (size_t i = 0; i < g.size(); ++i) {
    double excess = std::abs(g[i] - w[i]) / (kAtol + kRtol * std::abs(w[i]));
    if (std::isnan(g[i]) != std::isnan(w[i])) excess = INFINITY;
    if (std::isnan(g[i]) && std::isnan(w[i])) excess = 0;
    if (excess > worst_excess) worst_excess = excess, worst = i;
  }
  if (g.empty() || worst_excess <= 1) return "";
  // Unravel the flat index for the message.
  std::vector<int64_t> index(want.dim());
  for (int64_t d = want.dim() - 1, rest = int64_t(worst); d >= 0; --d) {
    index[d] = rest % want.shape()[d];
    rest /= want.shape()[d];
  }
  return fmt::format("{} {}: worst element [{}] got {:.8g}, want {:.8g} (|diff| {:.3g} > atol {} + "
                     "rtol {} * |want|)", what, shape_str(want.shape()), fmt::join(index, ", "),
                     g[worst], w[worst], std::abs(g[worst] - w[worst]), kAtol, kRtol);
}

Tensor zeros_if_undefined(const Tensor& grad, const Tensor& like) {
  return grad.defined() ? grad : zeros(like.shape(), like.dtype());
}

// Runs one golden case; returns the mismatches (empty = pass).
std::vector<std::string> check_case(const json& c) {
  const std::string name = c.at("name").get<std::string>();
  GoldenRun run{name, c.at("config"), {}, {}, c.at("params")};
  const json& input_grads = c.at("input_grads");
  for (auto& [in_name, value] : c.at("inputs").items()) {
    Tensor t = tensor_from_json(value, in_name);
    if (input_grads.contains(in_name)) t.requires_grad_(true);
    run.inputs[in_name] = t;
  }
  tape().clear();
  Outputs outputs = run_case(c.at("layer").get<std::string>(), run);

  std::vector<std::string> failures;
  auto note = [&](const std::string& msg) {
    if (!msg.empty()) failures.push_back(fmt::format("case '{}': {}", name, msg));
  };
  Tensor loss;
  for (auto& [out_name, want] : c.at("outputs").items()) {
    auto it = outputs.find(out_name);
    if (it == outputs.end()) {
      note(fmt::format("engram runner gives no output '{}'", out_name));
      continue;
    }
    note(compare("output '" + out_name + "'", it->second, tensor_from_json(want, out_name)));
    Tensor g = tensor_from_json(c.at("grad_outputs").at(out_name), out_name);
    Tensor term = sum(mul(it->second, g));
    loss = loss.defined() ? add(loss, term) : term;
  }
  if (!failures.empty() || !loss.defined()) return failures;
  backward(loss);

  for (auto& [in_name, want] : input_grads.items()) {
    const Tensor& x = run.inputs.at(in_name);
    note(compare("grad of input '" + in_name + "'", zeros_if_undefined(x.grad(), x),
                 tensor_from_json(want, in_name)));
  }
  for (auto& [p_name, p] : run.params) {
    // A parameter that took no part (e.g. an expert no row selected) has no .grad: zero.
    note(compare("grad of parameter '" + p_name + "'", zeros_if_undefined(p.grad(), p),
                 tensor_from_json(c.at("param_grads").at(p_name), p_name)));
  }
  return failures;
}

// Runs every golden case of these layer kinds; returns how many ran.
int check_layers(std::initializer_list<const char*> layers) {
  int ran = 0;
  for (const json& c : golden_doc().at("cases")) {
    std::string layer = c.at("layer").get<std::string>();
    if (std::find_if(layers.begin(), layers.end(), [&](const char* l) { return layer == l; }) ==
        layers.end())
      continue;
    INFO("golden case " << c.at("name").get<std::string>());
    std::vector<std::string> failures;
    try {
      failures = check_case(c);
    } catch (const Error& e) {
      failures.push_back(e.what());
    }
    for (const std::string& f : failures) FAIL_CHECK(f);
    ++ran;
  }
  return ran;
}

}  // namespace

TEST_CASE("layer golden: Linear, Embedding, Flatten and an MLP match PyTorch") {
  CHECK(check_layers({"Linear", "Embedding", "Flatten", "SequentialMLP"}) == 5);
}

TEST_CASE("layer golden: Conv2d and pooling match PyTorch") {
  CHECK(check_layers({"Conv2d", "MaxPool2d", "AvgPool2d"}) == 6);
}

TEST_CASE("layer golden: LayerNorm, RMSNorm and activations match PyTorch") {
  CHECK(check_layers({"LayerNorm", "RMSNorm", "Activation"}) == 10);
}

TEST_CASE("layer golden: LSTM and GRU match PyTorch") {
  CHECK(check_layers({"LSTM", "GRU"}) == 4);
}

TEST_CASE("layer golden: MultiHeadAttention and TransformerBlock match PyTorch") {
  CHECK(check_layers({"MultiHeadAttention", "TransformerBlock"}) == 5);
}

TEST_CASE("layer golden: MixtureOfExperts and SpectralMix match PyTorch") {
  CHECK(check_layers({"MixtureOfExperts", "SpectralMix"}) == 5);
}

TEST_CASE("layer golden: every golden case has an engram runner") {
  // The layer kinds the TEST_CASEs above run: a new kind in the golden must be added to one.
  static const std::set<std::string> known = {
      "Linear", "Embedding", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "LayerNorm",
      "RMSNorm", "Activation", "SequentialMLP", "LSTM", "GRU", "MultiHeadAttention",
      "TransformerBlock", "MixtureOfExperts", "SpectralMix"};
  for (const json& c : golden_doc().at("cases")) {
    std::string layer = c.at("layer").get<std::string>();
    CHECK_MESSAGE(known.count(layer) == 1, "golden case '" << c.at("name").get<std::string>()
                                           << "' has layer '" << layer << "' that no TEST_CASE runs");
  }
}

TEST_CASE("layer golden: a parameter name the golden lacks is reported by name") {
  json config = {{"in_features", 2}, {"out_features", 3}, {"bias", true}};
  json params = {{"weight", {{"shape", {3, 2}}, {"dtype", "f32"}, {"data", std::vector<float>(6)}}}};
  GoldenRun run{"probe", config, {}, {}, params};
  nn::Linear m(2, 3);
  std::string msg;
  try {
    run.load(m);
  } catch (const Error& e) {
    msg = e.what();
  }
  CHECK(msg.find("parameter 'bias' [3] is missing from the golden") != std::string::npos);

  json misshapen = {{"weight", {{"shape", {2, 3}}, {"dtype", "f32"}, {"data", std::vector<float>(6)}}},
                    {"bias", {{"shape", {3}}, {"dtype", "f32"}, {"data", std::vector<float>(3)}}}};
  GoldenRun run2{"probe", config, {}, {}, misshapen};
  msg.clear();
  try {
    run2.load(m);
  } catch (const Error& e) {
    msg = e.what();
  }
  CHECK(msg.find("'weight' is [3, 2] in engram but [2, 3] in the golden") != std::string::npos);
}
