// apps/common/memnet_lm.h — MemNet (memory/memnet/memnet.h) as a language model of the sandbox
// (model.kind = memnet), so the LM harness trains, evaluates, checkpoints and resumes it like
// every other kind, and the key-value recall probe (kv_recall.h) measures it.
//
// Settings (model.*): d_model, layers, heads, ff_mult, dropout and window (the controller's
// attention window W) are the shared ones; the memory's are model.memnet_* (memnet_lm_fields).
// model.memnet_memory = false drops the memory: the windowed-Transformer baseline, the same
// controller, embedding and head.
// Training adds MemNet's composite loss to the cross-entropy (auxiliary_loss):
//   memnet_hallucination * L_hal + memnet_utilization * L_util + memnet_sparsity * L_sparse
// and logs each term with the memory's statistics (diagnostics, to metrics.jsonl):
//   memnet.hallucination / .utilization / .sparsity   the loss terms of the last step
//   memnet.read_entropy    mean H(W) / log N of a read (1: uniform over the slots)
//   memnet.policy.<p>      the meta-policy's mean weight of top_k / uniform / random
//   memnet.spread          a;  memnet.dream_gate  g;  memnet.dream_change  |dS| / |S| of a dream
//   memnet.slot_reuse      share of the write mass on slots already written
//   memnet.written_slots   slots holding a write (mean over the batch rows)
// State ("carry.*" in checkpoints): controller.<l>.attn_cache, bank.{slots, links, usage,
// writes, age, activity}, pending.{h, x, reads}, position.
#pragma once
#include <memory>

#include "apps/common/lm.h"
#include "memory/memnet/memnet.h"

namespace engram::apps {

std::vector<FieldSpec> memnet_lm_fields();
memnet::MemNetConfig memnet_config(const Config& cfg, int64_t vocab_size);
std::unique_ptr<LanguageModel> make_memnet_lm(const Config& cfg, int64_t vocab_size, Generator* gen);

// The MemNet inside a memnet LM (nullptr for other kinds), and a trace of its next forwards
// (row 0; nullptr stops tracing).
memnet::MemNet* memnet_of(LanguageModel& lm);
void set_memnet_trace(LanguageModel& lm, memnet::MemNetTrace* trace);

// The carried state as named tensors and back (the names above).
// (position goes to `device`, that of the ids, like the rest of the state)
LMState pack_memnet_state(const memnet::MemNetState& s, Device device = Device::cpu);
memnet::MemNetState unpack_memnet_state(const LMState& st, const memnet::MemNet& m);

}  // namespace engram::apps
