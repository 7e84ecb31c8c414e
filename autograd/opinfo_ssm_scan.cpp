// autograd/opinfo_ssm_scan.cpp — registry entries of linear_scan_2x2, cauchy_kernel and vandermonde.
//
// linear_scan_2x2: M, f [B, T, F..., 2] (+ h0 when params {"h0": true}); M per step, shared over
//                  B and T ([F, 2, 2]), shared over B only, broadcast inside F..., a complex mode
//                  [[re, -im], [im, re]]; T = 1, no feature dims, two feature dims, h0 broadcast.
// cauchy_kernel:   v, z, w; no leading dims (one row), rows [H], z shared over the rows, leading
//                  dims of v, w and z that broadcast against each other, N = 1 and L = 1. The
//                  poles w sit left of the imaginary axis and the points z right of it (as in
//                  S4: Re w < 0, z on the bilinear image of the unit circle), so |z - w| >= 0.3.
// vandermonde:     a [.., 2] with Re a in [-0.5, 0.1) (decaying modes, as S4D's dt A, and a few
//                  growing), Im a ~ N(0, 1); powers 0..P-1, a start and fractional step, powers
//                  counting down (S4D's carried state reads them reversed), count 1, more than
//                  the kernel's 16-power reseed block.
#include "autograd/ops.h"
#include "autograd/registry.h"

namespace engram {

using json = nlohmann::json;
using Inputs = std::vector<Tensor>;

// Complex values [lead.., 2] with Re ~ U[re_lo, re_hi) and Im ~ N(0, im_scale^2).
static Tensor complex_sample(Generator& g, const Shape& lead, double re_lo, double re_hi,
                             double im_scale) {
  Tensor re = runif(g, lead, re_lo, re_hi), im = mul(rn(g, lead), im_scale);
  return stack({re, im}, -1);
}

static OpSample scan_sample(Generator& g, std::string label, const Shape& ms, const Shape& fs,
                            const Shape& h0s) {
  // entries in (-0.6, 0.6): |M| < 1.2 keeps h of order one over the few steps of a sample
  Inputs in{runif(g, ms, -0.6, 0.6), rn(g, fs)};
  if (!h0s.empty()) in.push_back(rn(g, h0s));
  return sample(std::move(label), std::move(in), {{"h0", !h0s.empty()}});
}

void register_ssm_scan_ops(std::vector<OpInfo>& r) {
  r.push_back(entry(
      "linear_scan_2x2",
      [](const Inputs& in, const json& p) {
        return linear_scan_2x2(in[0], in[1], p.value("h0", false) ? in[2] : Tensor());
      },
      [](Generator& g) {
        std::vector<OpSample> s{
            scan_sample(g, "per-step M [2, 5, 3, 2, 2], no h0", {2, 5, 3, 2, 2}, {2, 5, 3, 2}, {}),
            scan_sample(g, "per-step M, h0 [2, 3, 2]", {2, 5, 3, 2, 2}, {2, 5, 3, 2}, {2, 3, 2}),
            scan_sample(g, "M [3, 2, 2] shared over B and T, h0", {3, 2, 2}, {2, 4, 3, 2},
                        {2, 3, 2}),
            scan_sample(g, "M [1, 4, 3, 2, 2] shared over B, no h0", {1, 4, 3, 2, 2},
                        {2, 4, 3, 2}, {}),
            scan_sample(g, "T=1, h0", {2, 1, 2, 2, 2}, {2, 1, 2, 2}, {2, 2, 2}),
            scan_sample(g, "no feature dims: f [2, 4, 2], M [2, 4, 2, 2], h0 [2, 2]",
                        {2, 4, 2, 2}, {2, 4, 2}, {2, 2}),
            scan_sample(g, "two feature dims, M [2, 1, 2, 2] broadcast inside F, h0 [2, 2, 2] "
                           "shared over B",
                        {2, 1, 2, 2}, {2, 3, 2, 2, 2}, {2, 2, 2}),
        };
        // a complex diagonal mode a = |a| e^{i theta} per (B, F), as S5 writes it
        Tensor re = runif(g, {2, 1, 3}, -0.9, 0.9), im = runif(g, {2, 1, 3}, -0.4, 0.4);
        Tensor Mc = stack({stack({re, neg(im)}, -1), stack({im, re}, -1)}, -2);  // [2, 1, 3, 2, 2]
        s.push_back(sample("complex mode [[re, -im], [im, re]] shared over T, h0",
                           {Mc, rn(g, {2, 6, 3, 2}), rn(g, {2, 3, 2})}, {{"h0", true}}));
        return s;
      }));

  r.push_back(entry(
      "cauchy_kernel", [](const Inputs& in, const json&) { return cauchy_kernel(in[0], in[1], in[2]); },
      [](Generator& g) {
        auto make = [&](std::string label, const Shape& vl, const Shape& zl, const Shape& wl) {
          // v ~ complex normal, z right of the imaginary axis, w left of it
          Tensor v = complex_sample(g, vl, -1, 1, 1);
          Tensor z = complex_sample(g, zl, 0.0, 0.5, 2), w = complex_sample(g, wl, -1.0, -0.3, 2);
          return sample(std::move(label), {v, z, w});
        };
        return std::vector<OpSample>{
            make("one row: N=4, L=5", {4}, {5}, {4}),
            make("rows [3]: N=4, L=6", {3, 4}, {3, 6}, {3, 4}),
            make("z [6] shared over rows [3]", {3, 4}, {6}, {3, 4}),
            make("v [2, 1, 3], w [1, 4, 3], z [4, 5] broadcast to [2, 4]", {2, 1, 3}, {4, 5},
                 {1, 4, 3}),
            make("w [3] shared over rows [2]", {2, 3}, {2, 4}, {3}),
            make("N=1, L=1", {2, 1}, {2, 1}, {2, 1}),
        };
      }));

  r.push_back(entry(
      "vandermonde",
      [](const Inputs& in, const json& p) {
        return vandermonde(in[0], p.at("count").get<int64_t>(), p.value("start", 0.0),
                           p.value("step", 1.0));
      },
      [](Generator& g) {
        auto make = [&](std::string label, const Shape& lead, json params) {
          return sample(std::move(label), {complex_sample(g, lead, -0.5, 0.1, 1)},
                        std::move(params));
        };
        return std::vector<OpSample>{
            make("a [3, 4], powers 0..5", {3, 4}, {{"count", 6}}),
            make("a [5], start 1, step 0.5, 7 powers", {5}, {{"count", 7}, {"start", 1.0}, {"step", 0.5}}),
            make("a [2, 3], powers 5 down to 0", {2, 3}, {{"count", 6}, {"start", 5.0}, {"step", -1.0}}),
            make("a [2], count 1 (the single power 2)", {2}, {{"count", 1}, {"start", 2.0}}),
            make("a [2, 2], 37 powers (past the 16-power reseed)", {2, 2}, {{"count", 37}, {"step", 0.25}}),
        };
      }));
}

}  // namespace engram
