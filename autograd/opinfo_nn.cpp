// autograd/opinfo_nn.cpp — registry entries (sample inputs) for the nn op family.
//
// Parameter keys read by fn (and by the PyTorch golden script):
//   normalize, cosine_similarity: "dim", "eps"
//   cross_entropy: "ignore_index", "label_smoothing", "reduction" ("mean" | "sum" | "none")
//   nll_loss: "ignore_index", "reduction";  mse_loss: "reduction"
//   layer_norm: "eps", "has_weight", "has_bias" — the inputs are x, then weight if has_weight,
//   then bias if has_bias (an absent parameter is PyTorch's None)
//   rms_norm: "eps", "has_weight" (inputs x[, weight])
//   dropout: "p", "training", "seed" — the mask comes from Generator(seed), created inside fn so
//   every call draws the same mask (gradcheck calls fn many times; with a fixed mask dropout is
//   linear). PyTorch draws a different mask from its own generator: the golden script rebuilds
//   engram's mask from where its output is zero and checks the scaling and the gradient.
// Class losses take scores [..., C] with target [...]: classes last (PyTorch: view(-1, C)).
#include "autograd/ops.h"
#include "autograd/registry.h"

namespace engram {

using json = nlohmann::json;
using Inputs = std::vector<Tensor>;

static Reduction reduction_of(const json& p) {
  std::string r = p.value("reduction", std::string("mean"));
  if (r == "mean") return Reduction::mean;
  if (r == "sum") return Reduction::sum;
  ENGRAM_CHECK(r == "none", "registry: unknown reduction '{}'", r);
  return Reduction::none;
}

// i64 targets in [0, C) with the listed rows replaced by `ignore`.
static Tensor targets(Generator& g, const Shape& shape, int64_t C, std::vector<int64_t> ignored_rows,
                      int64_t ignore) {
  std::vector<int64_t> t = ids(g, shape, C).to_vector<int64_t>();
  for (int64_t r : ignored_rows) t[(size_t)r] = ignore;
  return from_vector<int64_t>(t, shape);
}

void register_nn_ops(std::vector<OpInfo>& r) {
  r.push_back(entry("normalize", [](const Inputs& in, const json& p) {
    return normalize(in[0], p.value("dim", -1), p.value("eps", 1e-12)); },
    [](Generator& g) {
      return std::vector<OpSample>{
          sample("dim -1 of [3, 4]", {rn(g, {3, 4})}, {{"dim", -1}, {"eps", 1e-12}}),
          sample("dim 1 of [2, 3, 4]", {rn(g, {2, 3, 4})}, {{"dim", 1}, {"eps", 1e-12}}),
          sample("dim 0 of [5]", {rn(g, {5})}, {{"dim", 0}, {"eps", 1e-12}}),
          sample("size-1 dim 1 of [3, 1]", {rn(g, {3, 1})}, {{"dim", 1}, {"eps", 1e-12}}),
          // every row's norm is below eps: y = x / eps, linear
          sample("eps dominates: [2, 3] in [-0.1, 0.1], eps 1", {runif(g, {2, 3}, -0.1, 0.1)},
                 {{"dim", -1}, {"eps", 1.0}}),
      };
    }));

  r.push_back(entry("cosine_similarity", [](const Inputs& in, const json& p) {
    return cosine_similarity(in[0], in[1], p.value("dim", -1), p.value("eps", 1e-8)); },
    [](Generator& g) {
      return std::vector<OpSample>{
          sample("[3, 5] vs [3, 5] dim -1", {rn(g, {3, 5}), rn(g, {3, 5})},
                 {{"dim", -1}, {"eps", 1e-8}}),
          sample("dim 0 of [4, 3]", {rn(g, {4, 3}), rn(g, {4, 3})}, {{"dim", 0}, {"eps", 1e-8}}),
          sample("broadcast [2, 1, 4] vs [3, 4] dim -1", {rn(g, {2, 1, 4}), rn(g, {3, 4})},
                 {{"dim", -1}, {"eps", 1e-8}}),
          sample("broadcast along dim: [3, 1] vs [3, 4] dim 1", {rn(g, {3, 1}), rn(g, {3, 4})},
                 {{"dim", 1}, {"eps", 1e-8}}),
          sample("1-D [6]", {rn(g, {6}), rn(g, {6})}, {{"dim", 0}, {"eps", 1e-8}}),
      };
    }));

  r.push_back(entry("cross_entropy", [](const Inputs& in, const json& p) {
    return cross_entropy(in[0], in[1], p.value("ignore_index", int64_t(-100)),
                         p.value("label_smoothing", 0.0), reduction_of(p)); },
    [](Generator& g) {
      return std::vector<OpSample>{
          sample("[4, 5] mean", {rn(g, {4, 5}), ids(g, {4}, 5)},
                 {{"ignore_index", -100}, {"label_smoothing", 0.0}, {"reduction", "mean"}}),
          sample("[6, 3] mean, rows 1 and 4 ignored (-100)",
                 {rn(g, {6, 3}), targets(g, {6}, 3, {1, 4}, -100)},
                 {{"ignore_index", -100}, {"label_smoothing", 0.0}, {"reduction", "mean"}}),
          sample("[5, 4] sum, label smoothing 0.1, ignore_index 2 (a class id)",
                 {rn(g, {5, 4}), from_vector<int64_t>({2, 0, 3, 2, 1}, {5})},
                 {{"ignore_index", 2}, {"label_smoothing", 0.1}, {"reduction", "sum"}}),
          sample("[B, T, C] = [2, 3, 4] none, smoothing 0.2, one ignored",
                 {rn(g, {2, 3, 4}), targets(g, {2, 3}, 4, {4}, -100)},
                 {{"ignore_index", -100}, {"label_smoothing", 0.2}, {"reduction", "none"}}),
          sample("[2, 3, 5] mean, smoothing 0.3, ignored", {rn(g, {2, 3, 5}),
                 targets(g, {2, 3}, 5, {0, 5}, -1)},
                 {{"ignore_index", -1}, {"label_smoothing", 0.3}, {"reduction", "mean"}}),
          sample("single row [1, 6] mean", {rn(g, {1, 6}), ids(g, {1}, 6)},
                 {{"ignore_index", -100}, {"label_smoothing", 0.0}, {"reduction", "mean"}}),
          sample("one class [3, 1] sum, smoothing 0.5", {rn(g, {3, 1}), ids(g, {3}, 1)},
                 {{"ignore_index", -100}, {"label_smoothing", 0.5}, {"reduction", "sum"}}),
      };
    }));

  r.push_back(entry("nll_loss", [](const Inputs& in, const json& p) {
    return nll_loss(in[0], in[1], p.value("ignore_index", int64_t(-100)), reduction_of(p)); },
    [](Generator& g) {
      // nll is linear in its input, so plain normals serve as log-probabilities
      return std::vector<OpSample>{
          sample("[4, 5] mean", {rn(g, {4, 5}), ids(g, {4}, 5)},
                 {{"ignore_index", -100}, {"reduction", "mean"}}),
          sample("[6, 3] mean, rows 0 and 3 ignored", {rn(g, {6, 3}), targets(g, {6}, 3, {0, 3}, -100)},
                 {{"ignore_index", -100}, {"reduction", "mean"}}),
          sample("[5, 4] sum, ignore_index 1 (a class id)",
                 {rn(g, {5, 4}), from_vector<int64_t>({1, 0, 3, 1, 2}, {5})},
                 {{"ignore_index", 1}, {"reduction", "sum"}}),
          sample("[2, 3, 4] none, one ignored", {rn(g, {2, 3, 4}), targets(g, {2, 3}, 4, {2}, -100)},
                 {{"ignore_index", -100}, {"reduction", "none"}}),
          sample("single row [1, 3] mean", {rn(g, {1, 3}), ids(g, {1}, 3)},
                 {{"ignore_index", -100}, {"reduction", "mean"}}),
      };
    }));

  r.push_back(entry("mse_loss", [](const Inputs& in, const json& p) {
    return mse_loss(in[0], in[1], reduction_of(p)); },
    [](Generator& g) {
      return std::vector<OpSample>{
          sample("[3, 4] mean", {rn(g, {3, 4}), rn(g, {3, 4})}, {{"reduction", "mean"}}),
          sample("[2, 3, 2] sum", {rn(g, {2, 3, 2}), rn(g, {2, 3, 2})}, {{"reduction", "sum"}}),
          sample("[4, 3] none", {rn(g, {4, 3}), rn(g, {4, 3})}, {{"reduction", "none"}}),
          sample("broadcast [3, 1] vs [4] mean", {rn(g, {3, 1}), rn(g, {4})}, {{"reduction", "mean"}}),
          sample("size-1 dims [1, 5] vs [1, 5] sum", {rn(g, {1, 5}), rn(g, {1, 5})},
                 {{"reduction", "sum"}}),
      };
    }));

  r.push_back(entry("layer_norm", [](const Inputs& in, const json& p) {
    size_t k = 1;
    Tensor w = p.value("has_weight", true) ? in[k++] : Tensor();
    Tensor b = p.value("has_bias", true) ? in[k++] : Tensor();
    return layer_norm(in[0], w, b, p.value("eps", 1e-5)); },
    [](Generator& g) {
      auto params = [](bool w, bool b) {
        return json{{"eps", 1e-5}, {"has_weight", w}, {"has_bias", b}};
      };
      return std::vector<OpSample>{
          sample("[3, 5] weight and bias", {rn(g, {3, 5}), rn(g, {5}), rn(g, {5})}, params(true, true)),
          sample("[2, 3, 4] weight only", {rn(g, {2, 3, 4}), rn(g, {4})}, params(true, false)),
          sample("[4, 6] no weight, no bias", {rn(g, {4, 6})}, params(false, false)),
          sample("[2, 1, 3] bias only", {rn(g, {2, 1, 3}), rn(g, {3})}, params(false, true)),
          sample("one row [1, 7], eps 0.1", {rn(g, {1, 7}), rn(g, {7}), rn(g, {7})},
                 json{{"eps", 0.1}, {"has_weight", true}, {"has_bias", true}}),
      };
    }));

  r.push_back(entry("rms_norm", [](const Inputs& in, const json& p) {
    Tensor w = p.value("has_weight", true) ? in[1] : Tensor();
    return rms_norm(in[0], w, p.value("eps", 1e-6)); },
    [](Generator& g) {
      return std::vector<OpSample>{
          sample("[3, 5] with weight", {rn(g, {3, 5}), rn(g, {5})}, {{"eps", 1e-6}, {"has_weight", true}}),
          sample("[2, 3, 4] no weight", {rn(g, {2, 3, 4})}, {{"eps", 1e-6}, {"has_weight", false}}),
          sample("[2, 1, 6] with weight, eps 0.5", {rn(g, {2, 1, 6}), rn(g, {6})},
                 {{"eps", 0.5}, {"has_weight", true}}),
          sample("D = 1: [4, 1] with weight", {rn(g, {4, 1}), rn(g, {1})},
                 {{"eps", 1e-2}, {"has_weight", true}}),
      };
    }));

  r.push_back(entry("dropout", [](const Inputs& in, const json& p) {
    Generator gen(p.value("seed", uint64_t(0)));
    return dropout(in[0], p.value("p", 0.5), p.value("training", true), &gen); },
    [](Generator& g) {
      return std::vector<OpSample>{
          sample("[4, 5] p 0.3 training", {rn(g, {4, 5})}, {{"p", 0.3}, {"training", true}, {"seed", 11}}),
          sample("[2, 3, 4] p 0.5 training", {rn(g, {2, 3, 4})},
                 {{"p", 0.5}, {"training", true}, {"seed", 12}}),
          // seed 13 happens to drop all six: the all-zero edge case
          sample("[1, 6] p 0.9 training", {rn(g, {1, 6})}, {{"p", 0.9}, {"training", true}, {"seed", 13}}),
          sample("[3, 4] eval (identity)", {rn(g, {3, 4})}, {{"p", 0.5}, {"training", false}, {"seed", 14}}),
          sample("[3, 4] p 0 training (identity)", {rn(g, {3, 4})},
                 {{"p", 0.0}, {"training", true}, {"seed", 15}}),
      };
    }));

  // lstm_sequence (recurrent_ops.cpp): the sample sums the squares of every h_t and of the last
  // c, so both outputs' gradients reach every input; optional h0 and c0 follow gx and w_hh.
  r.push_back(entry("lstm_sequence", [](const Inputs& in, const json& p) {
    Tensor h0 = p.value("h0", false) ? in[2] : Tensor();
    Tensor c0 = p.value("c0", false) ? in[p.value("h0", false) ? 3 : 2] : Tensor();
    LstmSequence s = lstm_sequence(in[0], in[1], h0, c0);
    return add(sum(mul(s.output, s.output)), sum(mul(s.c_last, s.c_last))); },
    [](Generator& g) {
      auto make = [&](int64_t B, int64_t T, int64_t H, bool h0, bool c0, std::string label) {
        Inputs in{rn(g, {B, T, 4 * H}), rn(g, {4 * H, H})};
        if (h0) in.push_back(rn(g, {B, H}));
        if (c0) in.push_back(rn(g, {B, H}));
        return sample(label, in, {{"h0", h0}, {"c0", c0}});
      };
      return std::vector<OpSample>{
          make(2, 3, 2, false, false, "B2 T3 H2 from zeros"),
          make(1, 4, 3, true, true, "B1 T4 H3 with h0 and c0"),
          make(3, 1, 1, false, true, "a single step, H1, c0 only"),
          make(2, 5, 4, true, false, "B2 T5 H4 with h0"),
      };
    }));

  // reservoir_scan (recurrent_ops.cpp): the squares of every state weigh each step differently.
  r.push_back(entry("reservoir_scan", [](const Inputs& in, const json& p) {
    Tensor s0 = p.value("s0", false) ? in[2] : Tensor();
    Tensor s = reservoir_scan(in[0], in[1], s0, p.value("leak", 0.5));
    return sum(mul(s, s)); },
    [](Generator& g) {
      auto make = [&](int64_t B, int64_t T, int64_t R, bool s0, double leak, std::string label) {
        Inputs in{rn(g, {B, T, R}), mul(rn(g, {R, R}), 0.5)};
        if (s0) in.push_back(rn(g, {B, R}));
        return sample(label, in, {{"s0", s0}, {"leak", leak}});
      };
      return std::vector<OpSample>{
          make(2, 4, 3, false, 0.5, "B2 T4 R3 from zeros, leak 0.5"),
          make(1, 5, 2, true, 0.3, "with s0, leak 0.3"),
          make(3, 1, 4, true, 1.0, "a single step, leak 1 (no carry)"),
      };
    }));
}

}  // namespace engram
