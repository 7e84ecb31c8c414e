// autograd/opinfo_memory.cpp — registry entries for the fused memory ops.
#include "autograd/ops.h"
#include "autograd/registry.h"

namespace engram {

using json = nlohmann::json;
using Inputs = std::vector<Tensor>;

void register_memory_ops(std::vector<OpInfo>& r) {
  OpInfo op;
  op.name = "hebbian_scan";
  // The sample combines recall and final state so both outputs' gradients are exercised.
  op.fn = [](const Inputs& in, const json& p) {
    Tensor h0 = p.value("h0", false) ? in[5] : Tensor();
    HebbianScan s = hebbian_scan(in[0], in[1], in[2], in[3], in[4], h0, p.value("detach", false),
                                 p.value("chunk", 16));
    return add(sum(mul(s.recall, s.recall)), sum(mul(s.state, s.state)));
  };
  op.samples = [](Generator& g) {
    auto make = [&](int64_t B, int64_t T, int64_t dk, int64_t dv, bool h0, bool detach, int64_t chunk,
                    std::string label, Shape scalar_shape = {}) {
      Inputs in{rn(g, {B, T, dk}), rn(g, {B, T, dk}), rn(g, {B, T, dv}),
                runif(g, scalar_shape, 0.5, 0.95), runif(g, scalar_shape, 0.2, 0.8)};
      if (h0) in.push_back(rn(g, {B, dk, dv}));
      return sample(label, in, {{"h0", h0}, {"detach", detach}, {"chunk", chunk}});
    };
    std::vector<OpSample> s{
        make(2, 5, 3, 2, false, false, 2, "B2 T5 dk3 dv2, chunks of 2"),
        make(1, 4, 2, 3, true, false, 16, "with h0, one chunk"),
        make(1, 1, 1, 1, false, false, 4, "a single step"),
        make(2, 3, 2, 2, false, false, 2, "gamma and eta of shape [1]", {1}),
        make(2, 3, 2, 2, true, true, 1, "detached memory, chunk 1"),
    };
    // A detached memory's gradient ignores the path through H on purpose (truncated BPTT), so
    // it differs from the finite differences; tests/test_memory.cpp checks it against per-step
    // ops with detach(), and the PyTorch golden checks it against the same.
    s.back().skip_gradcheck = true;
    return s;
  };
  r.push_back(op);

  OpInfo epi;
  epi.name = "episodic_scan";
  // inputs q, k, v, start keys, values (differentiable), importance, age, filled (not); the
  // sample sums the squares of the recalls and of the final keys and values, so the gradients
  // of every write (into later reads and into the final slots) are exercised.
  epi.fn = [](const Inputs& in, const json& p) {
    EpisodicScanArgs a{p.value("temperature", 0.5), p.value("decay", 0.9), p.value("eps", 1e-6),
                       p.value("top_k", int64_t(0)), p.value("recency_window", int64_t(0)),
                       p.value("detach", false)};
    EpisodicScan s = episodic_scan(in[0], in[1], in[2], {in[3], in[4], in[5], in[6], in[7]}, a);
    return add(add(sum(mul(s.recall, s.recall)), sum(mul(s.slots.keys, s.slots.keys))),
               sum(mul(s.slots.values, s.slots.values)));
  };
  epi.samples = [](Generator& g) {
    // `filled` slots of S start filled (random keys, values, importance in [0, 1), ages 1..)
    auto make = [&](int64_t B, int64_t T, int64_t S, int64_t dk, int64_t dv, int64_t filled,
                    json params, std::string label) {
      std::vector<double> fv(B * S, 0.0), av(B * S, 0.0);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < filled; ++j) {
          const int64_t slot = (j + b) % S;  // each row fills different slots
          fv[b * S + slot] = 1.0;
          av[b * S + slot] = double(1 + (3 * j + b) % 5);
        }
      Tensor f = from_vector<double>(fv, {B, S}), age = from_vector<double>(av, {B, S});
      Tensor importance = mul(runif(g, {B, S}, 0.0, 1.0), f);
      if (params.is_null()) params = json::object();
      params["temperature"] = params.value("temperature", 0.5);
      params["decay"] = 0.9;
      params["eps"] = 1e-6;
      OpSample smp = sample(label, {rn(g, {B, T, dk}), rn(g, {B, T, dk}), rn(g, {B, T, dv}),
                                    rn(g, {B, S, dk}), rn(g, {B, S, dv}), importance, age, f},
                            params);
      smp.differentiable = {true, true, true, true, true, false, false, false};
      return smp;
    };
    std::vector<OpSample> s{
        make(2, 6, 3, 3, 2, 0, {}, "B2 T6 S3, empty start, slots replaced"),
        make(2, 5, 4, 2, 3, 2, {}, "half-filled start"),
        make(1, 1, 2, 2, 2, 1, {}, "a single step"),
        make(2, 6, 4, 3, 2, 3, {{"top_k", 2}}, "top-k 2"),
        make(2, 6, 4, 3, 2, 3, {{"recency_window", 3}}, "recency window 3"),
        make(2, 5, 3, 2, 2, 2, {{"temperature", 0.1}, {"top_k", 3}}, "sharp, top-k = slots"),
        make(2, 5, 3, 3, 2, 2, {{"detach", true}}, "detached memory"),
    };
    // As for hebbian_scan: a detached memory's gradient ignores the path through the slots on
    // purpose; tests/test_memory.cpp holds it equal to per-step ops with detach(), and the
    // PyTorch golden checks it against the same.
    s.back().skip_gradcheck = true;
    return s;
  };
  r.push_back(epi);

  OpInfo drift;
  drift.name = "cmr_drift_scan";
  // The sum of squares of every context weighs each step differently, so no gradient cancels.
  drift.fn = [](const Inputs& in, const json&) {
    Tensor c = cmr_drift_scan(in[0], in[1], in[2]);
    return sum(mul(c, c)) + sum(mul(select(c, 1, 0), in[2]));
  };
  drift.samples = [](Generator& g) {
    auto make = [&](int64_t B, int64_t T, int64_t D, bool unit, std::string label) {
      Tensor cin = rn(g, {B, T, D}), c0 = rn(g, {B, D});
      if (unit) cin = normalize(cin), c0 = normalize(c0);  // the model's case: unit contexts
      return sample(label, {cin, runif(g, {B, T}, 0.2, 0.8), c0});
    };
    return std::vector<OpSample>{make(2, 5, 3, true, "B2 T5 D3, unit rows"),
                                 make(1, 1, 4, true, "a single step"),
                                 make(3, 4, 2, false, "rows not unit length")};
  };
  r.push_back(drift);
}

}  // namespace engram
