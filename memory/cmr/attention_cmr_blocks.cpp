// memory/cmr/attention_cmr_blocks.cpp — see attention_cmr_blocks.h.
#include "memory/cmr/attention_cmr_blocks.h"

#include "autograd/ops.h"

namespace engram::cmr {

namespace {
const char* kBankNames[] = {"context", "keys", "values", "usage", "written_at", "segment_sum",
                            "position"};
Tensor* bank_fields(CMRBankState& s, int i) {
  Tensor* f[] = {&s.context, &s.keys, &s.values, &s.usage, &s.written_at, &s.segment_sum,
                 &s.position};
  return f[i];
}
}  // namespace

void store_bank(const CMRBankState& s, BlockState& st, const std::string& prefix) {
  CMRBankState copy = s;
  for (int i = 0; i < 7; ++i) st[prefix + kBankNames[i]] = *bank_fields(copy, i);
}

CMRBankState load_bank(const BlockState& st, const std::string& prefix, const EpisodicCMRConfig& cfg,
                       int64_t batch, DType dtype, Device device) {
  if (!st.count(prefix + "context")) return initial_bank_state(cfg, batch, dtype, device);
  CMRBankState s;
  for (int i = 0; i < 7; ++i) {
    auto it = st.find(prefix + kBankNames[i]);
    ENGRAM_CHECK(it != st.end(), "episodic CMR state: '{}{}' is missing", prefix, kBankNames[i]);
    *bank_fields(s, i) = it->second;
  }
  return s;
}

// ---------------------------------------------------------------- shared parts

MemoryLMBlock::MemoryLMBlock(const LocalBlockConfig& c, Generator* gen) : local(c) {
  const int64_t E = c.d_model;
  norm1 = register_module("norm1", std::make_shared<nn::LayerNorm>(E));
  attn = register_module("attn", std::make_shared<nn::LocalSelfAttention>(
                                     E, c.heads, c.window, c.persistent, c.dropout, gen));
  norm2 = register_module("norm2", std::make_shared<nn::LayerNorm>(E));
  linear1 = register_module("linear1", std::make_shared<nn::Linear>(E, c.ff_mult * E, true, gen));
  linear2 = register_module("linear2", std::make_shared<nn::Linear>(c.ff_mult * E, E, true, gen));
}

Tensor MemoryLMBlock::attend(const Tensor& h, BlockState& st) {
  auto it = st.find("attn_cache");
  Tensor cache = it == st.end() ? Tensor() : it->second;
  Tensor y = attn->forward(h, cache);
  st["attn_cache"] = cache;
  return y;
}

Tensor MemoryLMBlock::feed_forward(const Tensor& x) {
  return add(x, linear2->forward(gelu(linear1->forward(norm2->forward(x)))));
}

Tensor LocalAttentionBlock::forward(const Tensor& x, BlockState& st, SharedCMRBank*) {
  return note_output(feed_forward(add(x, attend(norm1->forward(x), st))));
}

// ---------------------------------------------------------------- the CMR side

CMRSide::CMRSide(const EpisodicCMRConfig& c, bool shared, Generator* gen) : cfg(c), shared_bank(shared) {
  if (shared) reader = register_module("reader", std::make_shared<CMRReader>(c, gen));
  else own = register_module("memory", std::make_shared<EpisodicCMR>(c, gen));
}

Tensor CMRSide::forward(const Tensor& x, const Tensor& h, BlockState& st, SharedCMRBank* shared) {
  if (shared_bank) {
    ENGRAM_CHECK(shared != nullptr, "CMRSide: this block reads a shared bank, but none was given");
    return reader->read(h, shared->writes, shared->state, shared->plan);
  }
  CMRBankState s = load_bank(st, "bank.", cfg, x.size(0), x.dtype(), x.device());
  Tensor y = own->forward(x, h, s);
  store_bank(s, st, "bank.");
  return y;
}

// ---------------------------------------------------------------- parallel and series blocks

ParallelAttentionCMRBlock::ParallelAttentionCMRBlock(const LocalBlockConfig& local,
                                                     const EpisodicCMRConfig& c, bool shared,
                                                     Generator* gen)
    : MemoryLMBlock(local, gen) {
  cmr = register_module("cmr", std::make_shared<CMRSide>(c, shared, gen));
  mix = register_module("mix", std::make_shared<nn::Linear>(2 * local.d_model, local.d_model, true, gen));
}

Tensor ParallelAttentionCMRBlock::forward(const Tensor& x, BlockState& st, SharedCMRBank* shared) {
  Tensor h = norm1->forward(x);
  Tensor z = mix->forward(cat({attend(h, st), cmr->forward(h, h, st, shared)}, 2));
  return note_output(feed_forward(add(x, z)));
}

SeriesAttentionCMRBlock::SeriesAttentionCMRBlock(const LocalBlockConfig& local,
                                                 const EpisodicCMRConfig& c, bool shared,
                                                 bool first, Generator* gen)
    : MemoryLMBlock(local, gen), memory_first(first) {
  cmr = register_module("cmr", std::make_shared<CMRSide>(c, shared, gen));
  norm_mid = register_module("norm_mid", std::make_shared<nn::LayerNorm>(local.d_model));
}

Tensor SeriesAttentionCMRBlock::forward(const Tensor& x, BlockState& st, SharedCMRBank* shared) {
  Tensor h = norm1->forward(x), y;
  if (memory_first) {
    y = add(x, cmr->forward(h, h, st, shared));
    y = add(y, attend(norm_mid->forward(y), st));
  } else {
    y = add(x, attend(h, st));
    y = add(y, cmr->forward(h, norm_mid->forward(y), st, shared));  // attention's output cues it
  }
  return note_output(feed_forward(y));
}

}  // namespace engram::cmr
