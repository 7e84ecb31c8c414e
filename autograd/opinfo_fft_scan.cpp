// autograd/opinfo_fft_scan.cpp — registry entries (sample inputs) for rfft, irfft, complex_mul,
// linear_scan.
//
// rfft:        x [.., n]; n even and odd, n = 1 and 2, leading batch dims.
// irfft:       X [.., m, 2] with params {"n": n}; m = n/2+1 normally, plus a longer spectrum
//              (trimmed) and a shorter one (zero-padded), as torch.fft.irfft does.
// complex_mul: a, b [.., 2]; same shapes, a filter [K, 2] broadcast over a batch (SpectralMix),
//              both sides broadcasting, a single pair, a 0-dim-lead [2] against [3, 2].
// linear_scan: a, b [B, T, ...] (+ h0 [B, ...] when params {"h0": true}); a broadcast against b
//              ([B, T, 1], [1, T, D]), T = 1, no feature dims, several feature dims.
#include "autograd/ops.h"
#include "autograd/registry.h"

namespace engram {

using json = nlohmann::json;
using Inputs = std::vector<Tensor>;

// A linear_scan sample: decays a in (-1, 1) keep h bounded over the steps.
static OpSample scan_sample(Generator& g, std::string label, const Shape& as, const Shape& bs,
                            const Shape& h0s) {
  Inputs in{runif(g, as, -0.95, 0.95), rn(g, bs)};
  if (!h0s.empty()) in.push_back(rn(g, h0s));
  return sample(std::move(label), std::move(in), {{"h0", !h0s.empty()}});
}

void register_fft_scan_ops(std::vector<OpInfo>& r) {
  r.push_back(entry("rfft", [](const Inputs& in, const json&) { return rfft(in[0]); },
                    [](Generator& g) {
                      return std::vector<OpSample>{
                          sample("n=8 even", {rn(g, {8})}),
                          sample("n=7 odd", {rn(g, {7})}),
                          sample("batch [3, 6]", {rn(g, {3, 6})}),
                          sample("leading dims [2, 3, 5]", {rn(g, {2, 3, 5})}),
                          sample("n=1", {rn(g, {4, 1})}),
                          sample("n=2", {rn(g, {3, 2})}),
                      };
                    }));
  r.push_back(entry("irfft", [](const Inputs& in, const json& p) { return irfft(in[0], p["n"]); },
                    [](Generator& g) {
                      return std::vector<OpSample>{
                          sample("n=8 even from [5, 2]", {rn(g, {5, 2})}, {{"n", 8}}),
                          sample("n=7 odd from [4, 2]", {rn(g, {4, 2})}, {{"n", 7}}),
                          sample("batch [3, 4, 2] n=6", {rn(g, {3, 4, 2})}, {{"n", 6}}),
                          sample("leading dims [2, 3, 3, 2] n=5", {rn(g, {2, 3, 3, 2})}, {{"n", 5}}),
                          sample("n=1 from [2, 1, 2]", {rn(g, {2, 1, 2})}, {{"n", 1}}),
                          sample("n=2 from [2, 2]", {rn(g, {2, 2})}, {{"n", 2}}),
                          sample("trimmed: [6, 2] n=6", {rn(g, {6, 2})}, {{"n", 6}}),
                          sample("zero-padded: [2, 3, 2] n=9", {rn(g, {2, 3, 2})}, {{"n", 9}}),
                      };
                    }));
  r.push_back(entry("complex_mul", [](const Inputs& in, const json&) { return complex_mul(in[0], in[1]); },
                    [](Generator& g) {
                      return std::vector<OpSample>{
                          sample("same shape [3, 4, 2]", {rn(g, {3, 4, 2}), rn(g, {3, 4, 2})}),
                          sample("filter [5, 2] over [2, 3, 5, 2]", {rn(g, {2, 3, 5, 2}), rn(g, {5, 2})}),
                          sample("both broadcast: [2, 1, 4, 2] x [3, 1, 2]", {rn(g, {2, 1, 4, 2}), rn(g, {3, 1, 2})}),
                          sample("one pair [2] x [3, 2]", {rn(g, {2}), rn(g, {3, 2})}),
                      };
                    }));
  r.push_back(entry("linear_scan",
                    [](const Inputs& in, const json& p) {
                      return linear_scan(in[0], in[1], p.value("h0", false) ? in[2] : Tensor());
                    },
                    [](Generator& g) {
                      return std::vector<OpSample>{
                          scan_sample(g, "[2, 5, 3] no h0", {2, 5, 3}, {2, 5, 3}, {}),
                          scan_sample(g, "[2, 5, 3] with h0", {2, 5, 3}, {2, 5, 3}, {2, 3}),
                          scan_sample(g, "[3, 4] no feature dims, h0", {3, 4}, {3, 4}, {3}),
                          scan_sample(g, "T=1 [2, 1, 2] with h0", {2, 1, 2}, {2, 1, 2}, {2, 2}),
                          scan_sample(g, "a [2, 4, 1] broadcast over features, h0", {2, 4, 1},
                                      {2, 4, 3}, {2, 3}),
                          scan_sample(g, "a [1, 4, 3] shared over batch, no h0", {1, 4, 3},
                                      {2, 4, 3}, {}),
                          scan_sample(g, "two feature dims [2, 3, 2, 2], h0 [1, 2] broadcast",
                                      {2, 3, 2, 2}, {2, 3, 2, 2}, {1, 2}),
                      };
                    }));
}

}  // namespace engram
