// autograd/opinfo_shape.cpp — registry entries for views, joins, matmul and indexing.
#include "autograd/ops.h"
#include "autograd/registry.h"

namespace engram {

using json = nlohmann::json;
using Inputs = std::vector<Tensor>;
using Samples = std::vector<OpSample>;

void register_shape_ops(std::vector<OpInfo>& r) {
  // ---- matmul family
  r.push_back(entry("matmul", [](const Inputs& in, const json&) { return matmul(in[0], in[1]); },
                    [](Generator& g) {
                      return Samples{
                          sample("[3, 4] @ [4, 2]", {rn(g, {3, 4}), rn(g, {4, 2})}),
                          sample("batched [2, 3, 4] @ [2, 4, 5]", {rn(g, {2, 3, 4}), rn(g, {2, 4, 5})}),
                          sample("broadcast batch [2, 1, 3, 4] @ [3, 4, 2]",
                                 {rn(g, {2, 1, 3, 4}), rn(g, {3, 4, 2})}),
                          sample("vector [4] @ [4, 3]", {rn(g, {4}), rn(g, {4, 3})}),
                          sample("[2, 4] @ vector [4]", {rn(g, {2, 4}), rn(g, {4})}),
                          sample("size-1 [1, 3] @ [3, 1]", {rn(g, {1, 3}), rn(g, {3, 1})}),
                      };
                    }));
  r.push_back(entry("complex_matmul",
                    [](const Inputs& in, const json&) { return complex_matmul(in[0], in[1]); },
                    [](Generator& g) {
                      return Samples{
                          sample("[3, 4, 2] @ [4, 2, 2]", {rn(g, {3, 4, 2}), rn(g, {4, 2, 2})}),
                          sample("batched [2, 3, 4, 2] @ [2, 4, 5, 2]",
                                 {rn(g, {2, 3, 4, 2}), rn(g, {2, 4, 5, 2})}),
                          sample("broadcast batch [2, 1, 3, 4, 2] @ [3, 4, 2, 2]",
                                 {rn(g, {2, 1, 3, 4, 2}), rn(g, {3, 4, 2, 2})}),
                          sample("a column [3, 3, 2] @ [3, 1, 2]", {rn(g, {3, 3, 2}), rn(g, {3, 1, 2})}),
                          sample("size-1 [1, 1, 2] @ [1, 1, 2]", {rn(g, {1, 1, 2}), rn(g, {1, 1, 2})}),
                      };
                    }));
  r.push_back(entry("outer", [](const Inputs& in, const json&) { return outer(in[0], in[1]); },
                    [](Generator& g) {
                      return Samples{sample("[3] x [4]", {rn(g, {3}), rn(g, {4})}),
                                     sample("[1] x [2]", {rn(g, {1}), rn(g, {2})})};
                    }));
  // ---- views
  r.push_back(entry("reshape",
                    [](const Inputs& in, const json& p) { return reshape(in[0], p["shape"].get<Shape>()); },
                    [](Generator& g) {
                      return Samples{sample("[3, 4] -> [2, 6]", {rn(g, {3, 4})}, {{"shape", Shape{2, 6}}}),
                                     sample("[2, 3] -> [-1]", {rn(g, {2, 3})}, {{"shape", Shape{-1}}}),
                                     sample("[6] -> [3, 1, 2]", {rn(g, {6})}, {{"shape", Shape{3, 1, 2}}})};
                    }));
  r.push_back(entry("permute",
                    [](const Inputs& in, const json& p) { return permute(in[0], p["dims"].get<Dims>()); },
                    [](Generator& g) {
                      return Samples{sample("[2, 3, 4] (2, 0, 1)", {rn(g, {2, 3, 4})}, {{"dims", Dims{2, 0, 1}}}),
                                     sample("[3, 4] (1, 0)", {rn(g, {3, 4})}, {{"dims", Dims{1, 0}}})};
                    }));
  r.push_back(entry("transpose",
                    [](const Inputs& in, const json& p) { return transpose(in[0], p["d0"], p["d1"]); },
                    [](Generator& g) {
                      return Samples{sample("[2, 3, 4] (0, 2)", {rn(g, {2, 3, 4})}, {{"d0", 0}, {"d1", 2}}),
                                     sample("[3, 4] (-1, -2)", {rn(g, {3, 4})}, {{"d0", -1}, {"d1", -2}})};
                    }));
  r.push_back(entry("slice",
                    [](const Inputs& in, const json& p) {
                      return slice(in[0], p["dim"], p["start"], p["end"], p.value("step", 1));
                    },
                    [](Generator& g) {
                      return Samples{
                          sample("[5, 3] rows 1:4", {rn(g, {5, 3})}, {{"dim", 0}, {"start", 1}, {"end", 4}}),
                          sample("[2, 7] cols 0:7:3", {rn(g, {2, 7})},
                                 {{"dim", 1}, {"start", 0}, {"end", 7}, {"step", 3}}),
                          sample("[4, 3] rows -2:", {rn(g, {4, 3})}, {{"dim", 0}, {"start", -2}, {"end", 4}})};
                    }));
  r.push_back(entry("expand",
                    [](const Inputs& in, const json& p) { return expand(in[0], p["shape"].get<Shape>()); },
                    [](Generator& g) {
                      return Samples{sample("[3, 1] -> [3, 4]", {rn(g, {3, 1})}, {{"shape", Shape{3, 4}}}),
                                     sample("[2] -> [3, 2]", {rn(g, {2})}, {{"shape", Shape{3, 2}}})};
                    }));
  r.push_back(entry("squeeze", [](const Inputs& in, const json& p) { return squeeze(in[0], p["dim"]); },
                    [](Generator& g) {
                      return Samples{sample("[3, 1, 2] dim 1", {rn(g, {3, 1, 2})}, {{"dim", 1}})};
                    }));
  r.push_back(entry("unsqueeze", [](const Inputs& in, const json& p) { return unsqueeze(in[0], p["dim"]); },
                    [](Generator& g) {
                      return Samples{sample("[3, 2] dim 1", {rn(g, {3, 2})}, {{"dim", 1}}),
                                     sample("[3] dim -1", {rn(g, {3})}, {{"dim", -1}})};
                    }));
  r.push_back(entry("contiguous",
                    [](const Inputs& in, const json&) { return contiguous(transpose(in[0], 0, 1)); },
                    [](Generator& g) { return Samples{sample("transposed [3, 4]", {rn(g, {3, 4})})}; }));
  r.push_back(entry("to_dtype",
                    [](const Inputs& in, const json&) { return to_dtype(to_dtype(in[0], DType::f32), DType::f64); },
                    [](Generator& g) { return Samples{sample("[3, 2] through f32", {rn(g, {3, 2})})}; }));
  r.back().grad_eps = 1e-2;  // f32 rounding would swamp a 1e-6 difference
  // Even at eps 1e-2 each of x +- eps is rounded to f32 (relative 6e-8, so up to ~1e-7 absolute
  // for |x| ~ 2), and the difference quotient divides that by 2 eps: measured error 2e-6. The
  // tolerance is 5x that; a backward scaled by 1.001 (an error of 1e-3) still fails.
  r.back().grad_atol = 1e-5;
  r.back().grad_rtol = 1e-6;
  r.back().golden_atol = 1e-6;
  r.push_back(entry("cat",
                    [](const Inputs& in, const json& p) { return cat(in, p["dim"]); },
                    [](Generator& g) {
                      return Samples{
                          sample("[2, 3] + [4, 3] dim 0", {rn(g, {2, 3}), rn(g, {4, 3})}, {{"dim", 0}}),
                          sample("three [2, 1], [2, 2], [2, 3] dim -1",
                                 {rn(g, {2, 1}), rn(g, {2, 2}), rn(g, {2, 3})}, {{"dim", -1}})};
                    }));
  r.push_back(entry("stack",
                    [](const Inputs& in, const json& p) { return stack(in, p["dim"]); },
                    [](Generator& g) {
                      return Samples{sample("two [2, 3] dim 1", {rn(g, {2, 3}), rn(g, {2, 3})}, {{"dim", 1}}),
                                     sample("three [3] dim 0", {rn(g, {3}), rn(g, {3}), rn(g, {3})}, {{"dim", 0}})};
                    }));
  // split returns several tensors: the sample combines them with distinct weights so every
  // piece's gradient is exercised.
  r.push_back(entry("split",
                    [](const Inputs& in, const json& p) {
                      auto parts = split(in[0], p["size"], p["dim"]);
                      Tensor acc = mul(sum(parts[0]), 1.0);
                      for (size_t i = 1; i < parts.size(); ++i)
                        acc = add(acc, mul(sum(square(parts[i])), double(i + 1)));
                      return acc;
                    },
                    [](Generator& g) {
                      return Samples{sample("[5, 2] by 2 along 0", {rn(g, {5, 2})}, {{"size", 2}, {"dim", 0}}),
                                     sample("[2, 6] by 3 along 1", {rn(g, {2, 6})}, {{"size", 3}, {"dim", 1}})};
                    }));
  // unbind: every slice weighted differently, one slice unused (its gradient must be zero)
  r.push_back(entry("unbind",
                    [](const Inputs& in, const json& p) {
                      auto parts = unbind(in[0], p["dim"]);
                      Tensor acc = sum(parts[0]);
                      for (size_t i = 2; i < parts.size(); ++i)
                        acc = add(acc, mul(sum(square(parts[i])), double(i)));
                      return acc;
                    },
                    [](Generator& g) {
                      return Samples{sample("[4, 3] along 0", {rn(g, {4, 3})}, {{"dim", 0}}),
                                     sample("[2, 5, 2] along 1", {rn(g, {2, 5, 2})}, {{"dim", 1}})};
                    }));
  // ---- indexing
  r.push_back(entry("index_select",
                    [](const Inputs& in, const json& p) { return index_select(in[0], p["dim"], in[1]); },
                    [](Generator& g) {
                      return Samples{sample("[5, 3] rows (repeats)", {rn(g, {5, 3}), from_vector<int64_t>({4, 0, 4, 2}, {4})},
                                            {{"dim", 0}}),
                                     sample("[2, 4] cols", {rn(g, {2, 4}), ids(g, {3}, 4)}, {{"dim", 1}})};
                    }));
  r.push_back(entry("gather",
                    [](const Inputs& in, const json& p) { return gather(in[0], p["dim"], in[1]); },
                    [](Generator& g) {
                      return Samples{sample("[3, 4] dim 1", {rn(g, {3, 4}), ids(g, {3, 2}, 4)}, {{"dim", 1}}),
                                     sample("[3, 4] dim 0", {rn(g, {3, 4}), ids(g, {2, 4}, 3)}, {{"dim", 0}})};
                    }));
  r.push_back(entry("scatter_add",
                    [](const Inputs& in, const json& p) { return scatter_add(in[0], p["dim"], in[1], in[2]); },
                    [](Generator& g) {
                      return Samples{sample("[3, 4] dim 1", {rn(g, {3, 4}), ids(g, {3, 5}, 4), rn(g, {3, 5})}, {{"dim", 1}}),
                                     sample("[4, 2] dim 0", {rn(g, {4, 2}), ids(g, {3, 2}, 4), rn(g, {3, 2})}, {{"dim", 0}})};
                    }));
  r.push_back(entry("embedding",
                    [](const Inputs& in, const json& p) { return embedding(in[0], in[1], p.value("padding_idx", -1)); },
                    [](Generator& g) {
                      Samples s{sample("[6, 3] ids [2, 3]", {rn(g, {6, 3}), ids(g, {2, 3}, 6)}),
                                sample("[5, 2] ids with padding_idx 1 (row 1 gets no grad)",
                                       {rn(g, {5, 2}), from_vector<int64_t>({1, 3, 1, 0}, {4})},
                                       {{"padding_idx", 1}})};
                      s[1].skip_gradcheck = true;
                      return s;
                    }));
}

}  // namespace engram
