// nn/attention.cpp — see attention.h.
#include "nn/attention.h"

#include <cmath>

#include "nn/init.h"

namespace engram::nn {

namespace {

// [B, T, E] -> [B, h, T, d] (a view; matmul reads the strides directly)
Tensor split_heads(const Tensor& x, int64_t heads) {
  int64_t B = x.shape()[0], T = x.shape()[1], E = x.shape()[2];
  return permute(reshape(x, {B, T, heads, E / heads}), {0, 2, 1, 3});
}

// [B, h, T, d] -> [B, T, h*d]
Tensor merge_heads(const Tensor& x) {
  int64_t B = x.shape()[0], h = x.shape()[1], T = x.shape()[2], d = x.shape()[3];
  return reshape(permute(x, {0, 2, 1, 3}), {B, T, h * d});
}

}  // namespace

// ---------------------------------------------------------------- MultiHeadAttention
MultiHeadAttention::MultiHeadAttention(int64_t E, int64_t heads, bool bias, double p,
                                       Generator* gen)
    : embed_dim(E), num_heads(heads), head_dim(heads > 0 ? E / heads : 0), dropout(p),
      in_proj_weight(register_parameter("in_proj_weight", empty({3 * E, E}))), gen_(gen) {
  ENGRAM_CHECK(E > 0 && heads > 0 && E % heads == 0,
               "MultiHeadAttention: embed_dim {} must be a positive multiple of num_heads {}", E,
               heads);
  ENGRAM_CHECK(p >= 0 && p < 1, "MultiHeadAttention: dropout must be in [0, 1), got {}", p);
  // PyTorch builds out_proj first, then resets in_proj: the same order of draws.
  auto out = std::make_shared<Linear>(E, E, bias, gen);
  init::xavier_uniform_(in_proj_weight, 1.0, gen);
  if (bias) {
    in_proj_bias = register_parameter("in_proj_bias", zeros({3 * E}));
    init::constant_(out->bias, 0.0);
  }
  out_proj = register_module("out_proj", out);
}

AttentionOutput MultiHeadAttention::forward(const Tensor& query, const Tensor& key,
                                            const Tensor& value, const AttentionOptions& opt) {
  const int64_t E = embed_dim;
  ENGRAM_CHECK(query.dim() == 3 && query.shape()[2] == E && key.dim() == 3 &&
                   key.shape()[2] == E && value.dim() == 3 && value.shape()[2] == E,
               "MultiHeadAttention: expected query [B, Tq, {0}], key and value [B, Tk, {0}], got "
               "query {1}, key {2}, value {3}",
               E, shape_str(query.shape()), shape_str(key.shape()), shape_str(value.shape()));
  const int64_t B = query.shape()[0], Tq = query.shape()[1], Tk = key.shape()[1];
  ENGRAM_CHECK(key.shape()[0] == B && value.shape()[0] == B && value.shape()[1] == Tk,
               "MultiHeadAttention: batch/length mismatch: query {}, key {}, value {}",
               shape_str(query.shape()), shape_str(key.shape()), shape_str(value.shape()));

  // Projections: one matmul for self-attention, otherwise one per role with row blocks of W.
  Tensor q, k, v;
  if (query.same(key) && key.same(value)) {
    Tensor qkv = matmul(query, transpose(in_proj_weight, 0, 1));  // [B, T, 3E]
    if (in_proj_bias.defined()) qkv = add(qkv, in_proj_bias);
    q = slice(qkv, 2, 0, E), k = slice(qkv, 2, E, 2 * E), v = slice(qkv, 2, 2 * E, 3 * E);
  } else {
    auto project = [&](const Tensor& x, int64_t role) {
      Tensor y = matmul(x, transpose(slice(in_proj_weight, 0, role * E, (role + 1) * E), 0, 1));
      return in_proj_bias.defined() ? add(y, slice(in_proj_bias, 0, role * E, (role + 1) * E)) : y;
    };
    q = project(query, 0), k = project(key, 1), v = project(value, 2);
  }
  // The 1/sqrt(d) scale and the causal/window/prefix mask are folded into one fused masked
  // softmax (autograd/attention_ops.cpp: no mask tensor, no masked_fill, masked keys never exp'd).
  // With an additive bias (ALiBi) the bias must not be scaled, so Q is scaled before the product
  // instead, as PyTorch does.
  const double scale = 1.0 / std::sqrt(double(head_dim));
  const bool scale_in_softmax = !opt.bias.defined();
  Tensor qh = split_heads(q, num_heads);
  if (!scale_in_softmax) qh = mul(qh, scale);
  Tensor kh = split_heads(k, num_heads), vh = split_heads(v, num_heads);
  Tensor scores = matmul(qh, transpose(kh, -1, -2));  // [B, h, Tq, Tk]

  if (opt.bias.defined()) scores = add(scores, opt.bias);
  if (opt.causal) {
    ENGRAM_CHECK(Tq <= Tk, "MultiHeadAttention: a causal mask needs Tq <= Tk, got query {} key {}",
                 shape_str(query.shape()), shape_str(key.shape()));
    ENGRAM_CHECK(opt.window >= 0 && opt.prefix >= 0 && opt.prefix <= Tk,
                 "MultiHeadAttention: window {} and prefix {} must be >= 0 (prefix <= Tk {})",
                 opt.window, opt.prefix, Tk);
  }
  ENGRAM_CHECK(opt.causal || (opt.window == 0 && opt.prefix == 0),
               "MultiHeadAttention: window and prefix apply to causal attention only");
  if (opt.key_padding_mask.defined()) {
    const Tensor& kpm = opt.key_padding_mask;
    ENGRAM_CHECK(kpm.shape() == Shape({B, Tk}),
                 "MultiHeadAttention: key_padding_mask must be [B={}, Tk={}], got {}", B, Tk,
                 shape_str(kpm.shape()));
    scores = masked_fill(scores, reshape(kpm, {B, 1, 1, Tk}), -INFINITY);
  }
  Tensor attn = masked_softmax(scores, scale_in_softmax ? scale : 1.0, opt.causal, opt.window,
                               opt.prefix);
  if (dropout > 0) attn = engram::dropout(attn, dropout, is_training(), gen_);
  Tensor y = out_proj->forward(merge_heads(matmul(attn, vh)));  // [B, Tq, E]

  AttentionOutput res{note_output(y), Tensor()};
  if (opt.weights == AttentionWeights::averaged) res.weights = mean(attn, {1});
  if (opt.weights == AttentionWeights::per_head) res.weights = attn;
  return res;
}

std::string MultiHeadAttention::extra_repr() const {
  return fmt::format("embed_dim={}, num_heads={}, dropout={}", embed_dim, num_heads, dropout);
}

// ---------------------------------------------------------------- TransformerBlock
TransformerBlock::TransformerBlock(int64_t E, int64_t heads, int64_t F, bool is_causal, double p,
                                   Generator* gen)
    : embed_dim(E), ff_dim(F < 0 ? 4 * E : F), causal(is_causal) {
  ENGRAM_CHECK(ff_dim > 0, "TransformerBlock: ff_dim must be positive, got {}", ff_dim);
  // Registered in torch.nn.TransformerEncoderLayer's order, so named_parameters() match it.
  self_attn =
      register_module("self_attn", std::make_shared<MultiHeadAttention>(E, heads, true, p, gen));
  linear1 = register_module("linear1", std::make_shared<Linear>(E, ff_dim, true, gen));
  dropout = register_module("dropout", std::make_shared<Dropout>(p, gen));
  linear2 = register_module("linear2", std::make_shared<Linear>(ff_dim, E, true, gen));
  norm1 = register_module("norm1", std::make_shared<LayerNorm>(E));
  norm2 = register_module("norm2", std::make_shared<LayerNorm>(E));
  dropout1 = register_module("dropout1", std::make_shared<Dropout>(p, gen));
  dropout2 = register_module("dropout2", std::make_shared<Dropout>(p, gen));
}

Tensor TransformerBlock::forward(const Tensor& x) { return forward(x, Tensor()); }

Tensor TransformerBlock::forward(const Tensor& x, const Tensor& key_padding_mask) {
  ENGRAM_CHECK(x.dim() == 3 && x.shape()[2] == embed_dim,
               "TransformerBlock: expected input [B, T, {}], got {}", embed_dim,
               shape_str(x.shape()));
  Tensor h = norm1->forward(x);
  AttentionOptions opt;
  opt.causal = causal;
  opt.key_padding_mask = key_padding_mask;
  Tensor y = add(x, dropout1->forward(self_attn->forward(h, h, h, opt).output));
  Tensor m = linear2->forward(dropout->forward(gelu(linear1->forward(norm2->forward(y)))));
  return note_output(add(y, dropout2->forward(m)));
}

std::string TransformerBlock::extra_repr() const {
  return fmt::format("embed_dim={}, num_heads={}, ff_dim={}, causal={}", embed_dim,
                     self_attn->num_heads, ff_dim, causal);
}

}  // namespace engram::nn

namespace engram::nn {

// ---------------------------------------------------------------- LocalSelfAttention
LocalSelfAttention::LocalSelfAttention(int64_t E, int64_t heads, int64_t W, int64_t P, double p,
                                       Generator* gen)
    : window(W), persistent(P) {
  ENGRAM_CHECK(W >= 1, "LocalSelfAttention: window must be >= 1, got {}", W);
  ENGRAM_CHECK(P >= 0, "LocalSelfAttention: persistent tokens must be >= 0, got {}", P);
  attn = register_module("attn", std::make_shared<MultiHeadAttention>(E, heads, true, p, gen));
  if (P > 0) {
    persistent_tokens = register_parameter("persistent_tokens", empty({P, E}));
    init::normal_(persistent_tokens, 0.0, 0.02, gen);
  }
}

Tensor LocalSelfAttention::forward(const Tensor& h, Tensor& cache) {
  const int64_t B = h.size(0), E = attn->embed_dim;
  ENGRAM_CHECK(h.dim() == 3 && h.size(2) == E, "LocalSelfAttention: expected h [B, T, {}], got {}",
               E, shape_str(h.shape()));
  ENGRAM_CHECK(!cache.defined() || (cache.dim() == 3 && cache.size(0) == B && cache.size(2) == E),
               "LocalSelfAttention: cache must be [{}, n, {}], got {}", B, E,
               shape_str(cache.shape()));
  Tensor past = cache.defined() && cache.size(1) > 0 ? cat({cache, h}, 1) : h;
  Tensor keys = persistent > 0
                    ? cat({expand(unsqueeze(persistent_tokens, 0), {B, persistent, E}), past}, 1)
                    : past;
  AttentionOptions opt;
  opt.causal = true, opt.window = window, opt.prefix = persistent;
  // ALiBi: [h, Tq, Tk] of -m_i * (distance from the query back to the key), 0 for the prefix
  const int64_t Tq = h.size(1), Tk = keys.size(1), H = attn->num_heads;
  std::vector<double> bias(H * Tq * Tk, 0.0);
  for (int64_t i = 0; i < H; ++i) {
    const double slope = std::pow(2.0, -8.0 * double(i + 1) / double(H));
    for (int64_t q = 0; q < Tq; ++q)
      for (int64_t k = persistent; k < Tk; ++k)
        bias[(i * Tq + q) * Tk + k] = -slope * double(std::max<int64_t>(0, q + (Tk - Tq) - k));
  }
  opt.bias = raw::to_device(from_vector(bias, {H, Tq, Tk}, h.dtype()), h.device());
  Tensor y = attn->forward(h, keys, keys, opt).output;
  const int64_t n = past.size(1), keep = std::min(window - 1, n);
  cache = slice(past, 1, n - keep, n);  // [B, 0, E] when the window is one token
  return y;
}

std::string LocalSelfAttention::extra_repr() const {
  return fmt::format("window={}, persistent={}", window, persistent);
}

}  // namespace engram::nn
