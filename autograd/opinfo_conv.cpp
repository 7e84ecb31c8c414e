// autograd/opinfo_conv.cpp — registry entries (sample inputs) for the conv op family.
//
// Params (read by the PyTorch golden script too): "stride", "padding", "dilation", "kernel";
// conv2d's inputs are x, weight, bias, or x, weight with "bias": false. A pool sample without
// "stride" uses the default (stride = kernel). Tensors stay small: gradcheck runs two forwards
// per input element.
#include "autograd/ops.h"
#include "autograd/registry.h"

namespace engram {

using json = nlohmann::json;
using Inputs = std::vector<Tensor>;
using Samples = std::vector<OpSample>;

static json conv_params(int64_t stride, int64_t padding, int64_t dilation, bool bias = true) {
  return {{"stride", stride}, {"padding", padding}, {"dilation", dilation}, {"bias", bias}};
}

// x [B, C, H, W], weight [O, C, kh, kw], bias [O] (or none)
static OpSample conv_sample(Generator& g, std::string label, const Shape& x, const Shape& w,
                            json params) {
  Inputs in{rn(g, x), rn(g, w)};
  if (params.value("bias", true)) in.push_back(rn(g, {w[0]}));
  return sample(std::move(label), std::move(in), std::move(params));
}

static json pool_params(int64_t kernel, int64_t stride, int64_t padding) {
  json p = {{"kernel", kernel}, {"padding", padding}};
  if (stride > 0) p["stride"] = stride;  // absent: the default, stride = kernel
  return p;
}

static Samples pool_samples(Generator& g) {
  return Samples{
      sample("[1, 2, 4, 4] k2 (stride = kernel)", {rn(g, {1, 2, 4, 4})}, pool_params(2, -1, 0)),
      sample("[2, 3, 5, 7] k3 s2 p1", {rn(g, {2, 3, 5, 7})}, pool_params(3, 2, 1)),
      sample("[1, 1, 6, 5] k2 s1 p1 (overlapping, padded)", {rn(g, {1, 1, 6, 5})},
             pool_params(2, 1, 1)),
      sample("[2, 2, 5, 5] k3 s1", {rn(g, {2, 2, 5, 5})}, pool_params(3, 1, 0)),
      sample("[2, 7, 5] unbatched k2 s2 p1", {rn(g, {2, 7, 5})}, pool_params(2, 2, 1)),
  };
}

void register_conv_ops(std::vector<OpInfo>& r) {
  r.push_back(entry(
      "conv2d",
      [](const Inputs& in, const json& p) {
        return conv2d(in[0], in[1], p.value("bias", true) ? in[2] : Tensor(), p.value("stride", 1),
                      p.value("padding", 0), p.value("dilation", 1));
      },
      [](Generator& g) {
        return Samples{
            conv_sample(g, "[1, 2, 5, 5] * [3, 2, 3, 3] s1 p1", {1, 2, 5, 5}, {3, 2, 3, 3},
                        conv_params(1, 1, 1)),
            conv_sample(g, "[2, 2, 7, 6] * [2, 2, 3, 3] s2 p0, non-square", {2, 2, 7, 6},
                        {2, 2, 3, 3}, conv_params(2, 0, 1)),
            conv_sample(g, "[1, 1, 7, 7] * [2, 1, 3, 3] dilation 2 p1, no bias", {1, 1, 7, 7},
                        {2, 1, 3, 3}, conv_params(1, 1, 2, false)),
            conv_sample(g, "[2, 3, 5, 4] * [4, 3, 2, 3] s2 p1, non-square kernel", {2, 3, 5, 4},
                        {4, 3, 2, 3}, conv_params(2, 1, 1)),
            conv_sample(g, "[1, 2, 9, 8] * [2, 2, 3, 3] s2 p2 d2", {1, 2, 9, 8}, {2, 2, 3, 3},
                        conv_params(2, 2, 2)),
            conv_sample(g, "[2, 4, 3, 3] * [3, 4, 1, 1] 1x1", {2, 4, 3, 3}, {3, 4, 1, 1},
                        conv_params(1, 0, 1)),
            conv_sample(g, "[2, 3, 5] unbatched * [2, 2, 2, 2] s1 p0, no bias", {2, 3, 5},
                        {2, 2, 2, 2}, conv_params(1, 0, 1, false)),
        };
      }));
  r.push_back(entry(
      "max_pool2d",
      [](const Inputs& in, const json& p) {
        return max_pool2d(in[0], p["kernel"], p.value("stride", -1), p.value("padding", 0));
      },
      pool_samples));
  r.push_back(entry(
      "avg_pool2d",
      [](const Inputs& in, const json& p) {
        return avg_pool2d(in[0], p["kernel"], p.value("stride", -1), p.value("padding", 0));
      },
      pool_samples));
}

}  // namespace engram
