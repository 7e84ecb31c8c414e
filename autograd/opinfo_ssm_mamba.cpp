// autograd/opinfo_ssm_mamba.cpp — registry entries of Mamba's fused ops (autograd/ssm_mamba_ops.cpp).
//
// causal_conv1d: x [B, T, D], weight [D, K], then bias [D] when params "bias", then x0
//   [B, K-1, D] when params "x0". Samples: with and without bias and carried state, K = 1,
//   T = 1 shorter than the window (the output reads x0 only), several channels.
// selective_scan: u, delta [B, T, D], A [D, N], B, C [B, T, N], then D [D], z [B, T, D],
//   delta_bias [D], h0 [B, D, N], each present when its params flag is true; params "softplus"
//   and "chunk". The entry returns [y.flatten(), state.flatten()], so both outputs' gradients are
//   checked. Samples: every optional input on and off, T not a multiple of the chunk, chunk 1,
//   T = 1, delta_softplus false, D = 17 channels (two of the kernel's blocks of 16).
// tests/golden/golden_ssm_mamba.py holds the PyTorch side of both, reading the same params.
#include "autograd/ops.h"
#include "autograd/registry.h"

namespace engram {

using json = nlohmann::json;
using Inputs = std::vector<Tensor>;

namespace {

struct ScanOptions {
  bool D = true, z = true, delta_bias = true, h0 = true, softplus = true;
  int64_t chunk = 64;
};

OpSample scan_sample(Generator& g, std::string label, int64_t B, int64_t T, int64_t D, int64_t N,
                     const ScanOptions& o) {
  // delta in a range whose softplus (or itself, without softplus) is a positive step; A < 0
  Tensor delta = o.softplus ? mul(rn(g, {B, T, D}), 0.5) : runif(g, {B, T, D}, 0.1, 0.9);
  Inputs in{rn(g, {B, T, D}), delta, runif(g, {D, N}, -1.5, -0.3), rn(g, {B, T, N}),
            rn(g, {B, T, N})};
  if (o.D) in.push_back(rn(g, {D}));
  if (o.z) in.push_back(rn(g, {B, T, D}));
  if (o.delta_bias) in.push_back(o.softplus ? mul(rn(g, {D}), 0.5) : runif(g, {D}, 0.0, 0.3));
  if (o.h0) in.push_back(rn(g, {B, D, N}));
  return sample(std::move(label), std::move(in),
                {{"D", o.D}, {"z", o.z}, {"delta_bias", o.delta_bias}, {"h0", o.h0},
                 {"softplus", o.softplus}, {"chunk", o.chunk}});
}

}  // namespace

void register_ssm_mamba_ops(std::vector<OpInfo>& r) {
  r.push_back(entry(
      "causal_conv1d",
      [](const Inputs& in, const json& p) {
        size_t k = 2;
        Tensor bias = p.value("bias", false) ? in[k++] : Tensor();
        Tensor x0 = p.value("x0", false) ? in[k++] : Tensor();
        return causal_conv1d(in[0], in[1], bias, x0);
      },
      [](Generator& g) {
        auto make = [&](std::string label, int64_t B, int64_t T, int64_t D, int64_t K, bool bias,
                        bool x0) {
          Inputs in{rn(g, {B, T, D}), rn(g, {D, K})};
          if (bias) in.push_back(rn(g, {D}));
          if (x0) in.push_back(rn(g, {B, K - 1, D}));
          return sample(std::move(label), std::move(in), {{"bias", bias}, {"x0", x0}});
        };
        return std::vector<OpSample>{
            make("B2 T5 D3 K4, bias and x0", 2, 5, 3, 4, true, true),
            make("B2 T6 D2 K3, no bias, no x0 (zeros)", 2, 6, 2, 3, false, false),
            make("K = 1 (no window), bias", 2, 4, 3, 1, true, false),
            make("T = 1 < K - 1: the window is mostly x0", 2, 1, 3, 4, true, true),
            make("B1 T4 D5 K2, x0, no bias", 1, 4, 5, 2, false, true),
        };
      }));

  r.push_back(entry(
      "selective_scan",
      [](const Inputs& in, const json& p) {
        size_t k = 5;
        auto next = [&](const char* flag) { return p.value(flag, false) ? in[k++] : Tensor(); };
        Tensor D = next("D"), z = next("z"), delta_bias = next("delta_bias"), h0 = next("h0");
        SelectiveScan s = selective_scan(in[0], in[1], in[2], in[3], in[4], D, z, delta_bias, h0,
                                         p.value("softplus", true), p.value("chunk", 64));
        return cat({reshape(s.y, {-1}), reshape(s.state, {-1})}, 0);
      },
      [](Generator& g) {
        ScanOptions all, none, chunk1, no_softplus, t1;
        all.chunk = 2;
        none.D = none.z = none.delta_bias = none.h0 = false;
        chunk1.chunk = 1, chunk1.delta_bias = chunk1.h0 = false;
        no_softplus.softplus = false, no_softplus.z = false, no_softplus.chunk = 3;
        t1.chunk = 4;
        ScanOptions wide = all;
        wide.chunk = 4;
        return std::vector<OpSample>{
            scan_sample(g, "B2 T5 D3 N2, D z delta_bias h0, chunks of 2 (T not a multiple)", 2, 5,
                        3, 2, all),
            scan_sample(g, "B1 T4 D2 N3, no optional input, one chunk", 1, 4, 2, 3, none),
            scan_sample(g, "chunk 1, D and z", 2, 3, 2, 2, chunk1),
            scan_sample(g, "T = 1, every optional input", 2, 1, 3, 2, t1),
            scan_sample(g, "delta_softplus false, T7 chunks of 3", 1, 7, 2, 2, no_softplus),
            scan_sample(g, "D = 17 channels: two kernel blocks", 1, 5, 17, 2, wide),
        };
      }));
}

}  // namespace engram
