// nn/attention.h — multi-head attention and the pre-norm Transformer block.
//
// MultiHeadAttention (batch first; query [B, Tq, E], key and value [B, Tk, E], h heads of
// d = E / h):
//   Q = query W_q^T + b_q,  K = key W_k^T + b_k,  V = value W_v^T + b_v     [B, T, E]
//   split into heads                                                         [B, h, T, d]
//   A = softmax(Q K^T / sqrt(d) + mask)                                      [B, h, Tq, Tk]
//   y = concat_heads(A V) W_o^T + b_o                                        [B, Tq, E]
// Parameters are PyTorch's nn.MultiheadAttention: in_proj_weight [3E, E] = [W_q; W_k; W_v]
// (xavier_uniform_), in_proj_bias [3E] (zeros), out_proj.weight [E, E] (Linear's default) and
// out_proj.bias [E] (zeros). When query, key and value are the same tensor (self-attention) the
// three projections are one matmul.
// Masks (positions masked get -inf before the softmax, hence exactly zero weight):
//   causal:            query i sees key j only if j <= i + (Tk - Tq), i.e. the causal diagonal
//                      is aligned bottom-right, so Tq new queries can attend to a longer memory
//                      of Tk >= Tq keys that ends with them (for Tq == Tk it is the usual mask).
//   window W > 0:      (with causal) sliding-window attention: query i also must not see keys more
//                      than W - 1 behind its diagonal, j <= i + (Tk - Tq) - W (Longformer/Mistral's
//                      local attention; the memory LMs of memory/cmr and memory/titans use it).
//   prefix P > 0:      the first P keys are visible to every query whatever the window says
//                      (Titans' persistent memory tokens, arXiv:2501.00663 §3.3).
//   key_padding_mask:  [B, Tk], nonzero = this key is padding and is ignored (PyTorch's meaning).
//   bias:              a float tensor added to the scores (PyTorch's float attn_mask), e.g. ALiBi.
// The scale and the causal/window/prefix rule are one fused op, masked_softmax (autograd/ops.h):
// the mask is computed from indices inside the kernel, hidden keys are never exp'd, and no mask
// tensor or masked_fill exists forward or backward. A query row with every key masked gives NaN,
// as in PyTorch. Attention dropout (training only)
// is applied to A, and the returned weights are those after dropout, as in PyTorch.
// Returned weights: none (default; cheapest), averaged over heads [B, Tq, Tk] (PyTorch's default
// need_weights=True, average_attn_weights=True), or per head [B, h, Tq, Tk].
//
// TransformerBlock (pre-norm, GPT-2 style):
//   x = x + dropout1(MHA(norm1(x)))
//   x = x + dropout2(linear2(dropout(GELU(linear1(norm2(x))))))
// Child names follow torch.nn.TransformerEncoderLayer(E, h, F, dropout, activation="gelu",
// batch_first=True, norm_first=True), so its state dict maps one to one.
#pragma once
#include "nn/layers.h"

namespace engram::nn {

enum class AttentionWeights { none, averaged, per_head };

struct AttentionOptions {
  bool causal = false;
  int64_t window = 0;  // with causal: keys at most window - 1 behind the diagonal (0 = no limit)
  int64_t prefix = 0;  // with causal: the first `prefix` keys are always visible
  Tensor key_padding_mask;  // [B, Tk], nonzero = ignore that key; undefined = none
  Tensor bias;              // added to the scores before the masks, broadcast to [B, h, Tq, Tk]
  AttentionWeights weights = AttentionWeights::none;
};

struct AttentionOutput {
  Tensor output;   // [B, Tq, E]
  Tensor weights;  // [B, Tq, Tk] averaged, [B, h, Tq, Tk] per head, undefined when not asked
};

class MultiHeadAttention : public Module {
 public:
  MultiHeadAttention(int64_t embed_dim, int64_t num_heads, bool bias = true, double dropout = 0.0,
                     Generator* gen = nullptr);
  AttentionOutput forward(const Tensor& query, const Tensor& key, const Tensor& value,
                          const AttentionOptions& options = {});
  AttentionOutput operator()(const Tensor& query, const Tensor& key, const Tensor& value,
                             const AttentionOptions& options = {}) {
    return forward(query, key, value, options);
  }
  std::string type_name() const override { return "MultiHeadAttention"; }
  std::string extra_repr() const override;

  int64_t embed_dim, num_heads, head_dim;
  double dropout;
  Tensor& in_proj_weight;
  Tensor in_proj_bias;  // undefined when bias = false
  std::shared_ptr<Linear> out_proj;

 private:
  Generator* gen_;
};

class TransformerBlock : public UnaryModule {
 public:
  TransformerBlock(int64_t embed_dim, int64_t num_heads, int64_t ff_dim = -1 /* 4E */,
                   bool causal = false, double dropout = 0.0, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;  // x [B, T, E] -> [B, T, E]
  Tensor forward(const Tensor& x, const Tensor& key_padding_mask);  // mask [B, T]
  std::string type_name() const override { return "TransformerBlock"; }
  std::string extra_repr() const override;

  int64_t embed_dim, ff_dim;
  bool causal;
  std::shared_ptr<MultiHeadAttention> self_attn;
  std::shared_ptr<Linear> linear1, linear2;
  std::shared_ptr<LayerNorm> norm1, norm2;
  std::shared_ptr<Dropout> dropout, dropout1, dropout2;
};

}  // namespace engram::nn

namespace engram::nn {

// LocalSelfAttention: causal sliding-window self-attention over a stream, for the memory LMs
// (memory/cmr/attention_cmr_blocks.h, memory/titans/), whose attention sees only the last W
// tokens while a memory carries everything older.
//   keys   = [persistent (P learned tokens) ; cache (the last <= W - 1 inputs of earlier calls) ; h]
//   y      = MultiHeadAttention(h, keys, keys) with causal, window W, prefix P
//   cache' = the last min(W - 1, |cache| + T) rows of [cache ; h]
// Positions enter as ALiBi (Press et al. 2022): head i adds -m_i (query pos - key pos) to its
// scores, m_i = 2^(-8 (i + 1) / h), and 0 for the persistent tokens. ALiBi is relative, so a
// stream of any length needs no position table.
// h [B, T, E] -> y [B, T, E]. The cache makes a stream cut into calls see exactly the window an
// uncut stream would (the LM detaches it between training steps: truncated backprop).
class LocalSelfAttention : public Module {
 public:
  LocalSelfAttention(int64_t embed_dim, int64_t num_heads, int64_t window, int64_t persistent = 0,
                     double dropout = 0.0, Generator* gen = nullptr);
  Tensor forward(const Tensor& h, Tensor& cache);  // cache [B, n, E], undefined = empty
  std::string type_name() const override { return "LocalSelfAttention"; }
  std::string extra_repr() const override;

  int64_t window, persistent;
  std::shared_ptr<MultiHeadAttention> attn;
  Tensor persistent_tokens;  // [P, E] when persistent > 0
};

}  // namespace engram::nn
