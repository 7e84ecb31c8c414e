// autograd/opinfo_titans.cpp — registry entries for the Titans neural-memory fused ops
// (autograd/titans_ops.cpp; Behrouz, Zhong & Mirrokni 2024, arXiv:2501.00663).
//
// titans_linear_memory: y_t = M_{t-1} q_t, e_t = 2 (M0_c k_t - v_t), S_t = eta_t S_{t-1} -
// theta_t e_t k_t^T, M_t = (1 - alpha_t) M_{t-1} + S_t, gradients taken at the chunk's starting
// memory M0_c. The samples cover the chunk boundaries the backward has to get right: chunk 1
// (every token its own chunk), a chunk that does not divide T (a short last chunk), one chunk
// holding the whole sequence, a chunk longer than T, and with and without an initial momentum.
// The strided pass (registry_check.h) also feeds m0 as a stride-0 expand of one [1, dv, dk]
// memory, the way a model shares its learned initial memory across the batch.
//
// titans_mlp_memory (depth 2, M(x) = W2 silu(W1 x)): chunk 1, a chunk not dividing T, one chunk
// covering all of T with initial momenta s1, s2, and chunk 1 with them.
#include <cmath>

#include "autograd/ops.h"
#include "autograd/registry.h"

namespace engram {

using json = nlohmann::json;
using Inputs = std::vector<Tensor>;

void register_titans_ops(std::vector<OpInfo>& r) {
  OpInfo op;
  op.name = "titans_linear_memory";
  // The sample combines retrievals, final memory and final momentum so the gradients of all three
  // outputs are exercised.
  op.fn = [](const Inputs& in, const json& p) {
    Tensor s0 = p.value("s0", false) ? in[7] : Tensor();
    TitansMemoryScan s = titans_linear_memory(in[0], in[1], in[2], in[3], in[4], in[5], in[6], s0,
                                              p.value("chunk", 16));
    return add(add(sum(mul(s.retrieved, s.retrieved)), sum(mul(s.memory, s.memory))),
               sum(mul(s.momentum, s.momentum)));
  };
  op.samples = [](Generator& g) {
    auto make = [&](int64_t B, int64_t T, int64_t dk, int64_t dv, int64_t chunk, bool s0,
                    std::string label) {
      // Queries and keys of norm ~1 (Titans L2-normalises them) and gates in the ranges a model's
      // sigmoids would give: the inner learning rate theta then keeps each gradient step stable,
      // momentum and forgetting lie in (0, 1). Unit-scale values keep the sample's loss O(10), so
      // the central differences' rounding error (~1e-16 |loss| / eps) stays far below atol.
      const double unit = 1.0 / std::sqrt(double(dk));
      Inputs in{mul(rn(g, {B, T, dk}), unit),   mul(rn(g, {B, T, dk}), unit),
                rn(g, {B, T, dv}),              runif(g, {B, T}, 0.05, 0.5),
                runif(g, {B, T}, 0.3, 0.9),     runif(g, {B, T}, 0.05, 0.3),
                mul(rn(g, {B, dv, dk}), 0.5)};
      if (s0) in.push_back(mul(rn(g, {B, dv, dk}), 0.2));
      return sample(label, in, {{"s0", s0}, {"chunk", chunk}});
    };
    return std::vector<OpSample>{
        make(2, 5, 3, 2, 2, false, "B2 T5 dk3 dv2, chunks of 2"),
        make(2, 5, 3, 2, 1, true, "chunk 1 (sequential), with s0"),
        make(2, 4, 2, 3, 4, true, "one chunk covering all of T, with s0"),
        make(1, 7, 2, 2, 3, false, "T7 in chunks of 3 (short last chunk)"),
        make(2, 3, 2, 2, 16, false, "chunk longer than T"),
        make(1, 1, 1, 1, 4, true, "a single token"),
    };
  };
  r.push_back(op);

  OpInfo mlp;
  mlp.name = "titans_mlp_memory";
  // Depth 2: M(x) = W2 silu(W1 x), e_t = 2 (M_0c(k_t) - v_t), G2 = e z^T, G1 = ((W2_0c^T e) *
  // silu'(a)) k^T at the chunk-start weights, S = eta S - theta G, W = (1 - alpha) W + S. The
  // sample sums the squares of all five outputs.
  mlp.fn = [](const Inputs& in, const json& p) {
    const bool s = p.value("s", false);
    TitansMLPScan o = titans_mlp_memory(in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7],
                                        s ? in[8] : Tensor(), s ? in[9] : Tensor(),
                                        p.value("chunk", 16));
    return add(add(add(sum(mul(o.retrieved, o.retrieved)), sum(mul(o.w1, o.w1))),
                   add(sum(mul(o.w2, o.w2)), sum(mul(o.s1, o.s1)))),
               sum(mul(o.s2, o.s2)));
  };
  mlp.samples = [](Generator& g) {
    auto make = [&](int64_t B, int64_t T, int64_t dk, int64_t h, int64_t dv, int64_t chunk, bool s,
                    std::string label) {
      // the linear entry's scales: unit-norm q, k, gates in a sigmoid's ranges, weights ~0.5
      const double unit = 1.0 / std::sqrt(double(dk));
      Inputs in{mul(rn(g, {B, T, dk}), unit), mul(rn(g, {B, T, dk}), unit),
                rn(g, {B, T, dv}),            runif(g, {B, T}, 0.05, 0.5),
                runif(g, {B, T}, 0.3, 0.9),   runif(g, {B, T}, 0.05, 0.3),
                mul(rn(g, {B, h, dk}), 0.5),  mul(rn(g, {B, dv, h}), 0.5)};
      if (s) {
        in.push_back(mul(rn(g, {B, h, dk}), 0.2));
        in.push_back(mul(rn(g, {B, dv, h}), 0.2));
      }
      return sample(label, in, {{"s", s}, {"chunk", chunk}});
    };
    return std::vector<OpSample>{
        make(2, 4, 2, 3, 2, 1, false, "B2 T4 dk2 h3 dv2, chunk 1 (sequential)"),
        make(2, 5, 3, 2, 2, 2, false, "T5 in chunks of 2 (short last chunk)"),
        make(1, 4, 2, 3, 2, 4, true, "one chunk covering all of T, with s1, s2"),
        make(2, 3, 2, 2, 3, 1, true, "chunk 1 with s1, s2"),
    };
  };
  r.push_back(mlp);
}

}  // namespace engram
