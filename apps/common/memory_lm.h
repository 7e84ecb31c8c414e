// apps/common/memory_lm.h — the memory language models of apps/memory_lm (and crsd_tiny's
// --model list): local attention, with episodic CMR and/or Titans' neural memory beside it.
//
//   ids [B, T] -> Embedding(V, E) -> L blocks -> LayerNorm -> Linear(E, V) -> logits [B, T, V]
//
// Every block's attention sees only the last model.window tokens (nn::LocalSelfAttention, ALiBi
// positions); what lies further back reaches the model only through a memory. model.kind picks
// the block (memory/cmr/attention_cmr_blocks.h, memory/titans/memory_blocks.h):
//   local_attention   LocalAttentionBlock: the attention-only baseline
//   cmr_parallel      ParallelAttentionCMRBlock            x += W [attn; cmr]
//   cmr_series        SeriesAttentionCMRBlock              model.memory_order picks the order
//   titans_mag        MAGBlock: Titans' memory-as-gate with model.persistent persistent tokens
//   hybrid            GatedHybridBlock: neural + episodic memory, gate model.hybrid_gate
// model.memory_placement = shared gives the CMR kinds (and hybrid's episodic side) one bank,
// written from the embeddings, that every block reads with its own reader.
// The state (carried between calls; "carry.*" in checkpoints) is every block's attention cache
// and memories, named blocks.<l>.<name> and shared_bank.<name>.
#pragma once
#include <memory>

#include "apps/common/lm.h"

namespace engram::apps {

bool is_memory_lm_kind(const std::string& kind);
std::vector<std::string> memory_lm_kinds();
std::vector<FieldSpec> memory_lm_fields();  // model.window, model.memory_*, model.titans_*, ...
std::unique_ptr<LanguageModel> make_memory_lm(const Config& cfg, int64_t vocab_size, Generator* gen);

// The hybrid blocks' gates of the last forward, one row per layer: [B, T] (sigmoid gate: the
// weight of the neural memory) or [B, T, 3] (softmax: attention, neural, episodic). Empty for
// other kinds.
std::vector<Tensor> memory_lm_gates(LanguageModel& lm);

}  // namespace engram::apps
