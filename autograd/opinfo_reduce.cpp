// autograd/opinfo_reduce.cpp — registry entries for reductions, softmax family, cumsum, topk.
#include "autograd/ops.h"
#include "autograd/registry.h"

namespace engram {

using json = nlohmann::json;
using Inputs = std::vector<Tensor>;

static Dims dims_of(const json& p) { return p.contains("dims") ? p["dims"].get<Dims>() : Dims{}; }

// The usual reduction cases: all, one dim, several dims, negative dim, keepdim, size-1 dim.
static std::vector<OpSample> reduce_samples(Generator& g) {
  return {
      sample("all of [3, 4]", {rn(g, {3, 4})}, {{"dims", Dims{}}, {"keepdim", false}}),
      sample("dim 1 of [3, 4]", {rn(g, {3, 4})}, {{"dims", Dims{1}}, {"keepdim", false}}),
      sample("dims [0, 2] keepdim of [2, 3, 4]", {rn(g, {2, 3, 4})},
             {{"dims", Dims{0, 2}}, {"keepdim", true}}),
      sample("dim -1 of [2, 1, 3]", {rn(g, {2, 1, 3})}, {{"dims", Dims{-1}}, {"keepdim", false}}),
  };
}

// Full max()/min() split a tie's gradient evenly over the tied elements (PyTorch's rule). With
// two tied elements that is 1/2 each, which central differences agree with; with three it is
// 1/3 each while a central difference still gives 1/2, so that sample is checked against the
// PyTorch golden only.
static std::vector<OpSample> tie_samples(double extreme) {
  std::vector<double> two = {0.3, extreme, -0.2, 0.1, extreme, 0.7};
  std::vector<double> three = {extreme, 0.2, extreme, -0.4, 0.0, extreme};
  std::vector<OpSample> s{sample("two tied extremes in [2, 3]", {from_vector(two, {2, 3}, DType::f64)}),
                          sample("three tied extremes in [2, 3]",
                                 {from_vector(three, {2, 3}, DType::f64)})};
  s.back().skip_gradcheck = true;
  return s;
}

static std::vector<OpSample> dim_samples(Generator& g) {
  return {
      sample("dim 1 of [3, 4]", {rn(g, {3, 4})}, {{"dim", 1}, {"keepdim", false}}),
      sample("dim 0 keepdim of [3, 4]", {rn(g, {3, 4})}, {{"dim", 0}, {"keepdim", true}}),
      sample("dim -1 of [2, 3, 5]", {rn(g, {2, 3, 5})}, {{"dim", -1}, {"keepdim", false}}),
      sample("size-1 dim of [2, 1, 3]", {rn(g, {2, 1, 3})}, {{"dim", 1}, {"keepdim", false}}),
  };
}

void register_reduce_ops(std::vector<OpInfo>& r) {
  r.push_back(entry("sum", [](const Inputs& in, const json& p) {
    return sum(in[0], dims_of(p), p["keepdim"]); }, reduce_samples));
  r.push_back(entry("mean", [](const Inputs& in, const json& p) {
    return mean(in[0], dims_of(p), p["keepdim"]); }, reduce_samples));
  r.push_back(entry("var", [](const Inputs& in, const json& p) {
    return var(in[0], dims_of(p), p["keepdim"], p.value("correction", 1)); },
    [](Generator& g) {
      auto s = reduce_samples(g);
      s.pop_back();  // a size-1 dim has no spread
      s.push_back(sample("population var dim 0 of [4, 3]", {rn(g, {4, 3})},
                         {{"dims", Dims{0}}, {"keepdim", false}, {"correction", 0}}));
      return s;
    }));
  r.push_back(entry("max", [](const Inputs& in, const json& p) {
    return p.contains("dim") ? max(in[0], p["dim"], p["keepdim"]) : max(in[0]); },
    [](Generator& g) {
      auto s = dim_samples(g);
      s.push_back(sample("all of [3, 4]", {rn(g, {3, 4})}));
      for (OpSample& t : tie_samples(2.5)) s.push_back(t);
      return s;
    }));
  r.push_back(entry("min", [](const Inputs& in, const json& p) {
    return p.contains("dim") ? min(in[0], p["dim"], p["keepdim"]) : min(in[0]); },
    [](Generator& g) {
      auto s = dim_samples(g);
      s.push_back(sample("all of [3, 4]", {rn(g, {3, 4})}));
      for (OpSample& t : tie_samples(-2.5)) s.push_back(t);
      return s;
    }));
  r.push_back(entry("logsumexp", [](const Inputs& in, const json& p) {
    return logsumexp(in[0], p["dim"], p["keepdim"]); }, dim_samples));
  r.push_back(entry("softmax", [](const Inputs& in, const json& p) {
    return softmax(in[0], p["dim"]); }, dim_samples));
  r.push_back(entry("log_softmax", [](const Inputs& in, const json& p) {
    return log_softmax(in[0], p["dim"]); }, dim_samples));
  // Attention's fused masked softmax (attention_ops.cpp): the causal, window and prefix rules and
  // a Tq < Tk band (the registry's strided pass covers non-contiguous scores). A row that sees no
  // key is NaN (PyTorch), so tests/test_attention_fused.cpp covers it, not the gradcheck.
  r.push_back(entry("masked_softmax", [](const Inputs& in, const json& p) {
    return masked_softmax(in[0], p["scale"], p["causal"], p["window"], p["prefix"]); },
    [](Generator& g) {
      auto opts = [](double scale, bool causal, int64_t window, int64_t prefix) {
        return json{{"scale", scale}, {"causal", causal}, {"window", window}, {"prefix", prefix}};
      };
      return std::vector<OpSample>{
          sample("not causal, scale 0.5, [2, 3, 4]", {rn(g, {2, 3, 4})}, opts(0.5, false, 0, 0)),
          sample("causal [2, 4, 4]", {rn(g, {2, 4, 4})}, opts(0.7, true, 0, 0)),
          sample("causal Tq 3 < Tk 5, window 2", {rn(g, {3, 5})}, opts(1.0, true, 2, 0)),
          sample("causal window 2 prefix 2, [2, 3, 7]", {rn(g, {2, 3, 7})}, opts(1.3, true, 2, 2)),
          sample("causal prefix reaching the band, [4, 6]", {rn(g, {4, 6})}, opts(0.9, true, 3, 3)),
      };
    }));
  r.push_back(entry("cumsum", [](const Inputs& in, const json& p) {
    return cumsum(in[0], p["dim"]); }, dim_samples));
  r.push_back(entry("topk", [](const Inputs& in, const json& p) {
    return topk(in[0], p["k"], p["dim"], p["largest"]).values; },
    [](Generator& g) {
      return std::vector<OpSample>{
          sample("k=2 of [3, 5] dim 1", {rn(g, {3, 5})}, {{"k", 2}, {"dim", 1}, {"largest", true}}),
          sample("k=1 smallest of [4, 3] dim 0", {rn(g, {4, 3})},
                 {{"k", 1}, {"dim", 0}, {"largest", false}}),
          sample("k=3 of [2, 2, 6] dim -1", {rn(g, {2, 2, 6})},
                 {{"k", 3}, {"dim", -1}, {"largest", true}}),
      };
    }));
}

}  // namespace engram
