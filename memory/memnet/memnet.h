// memory/memnet/memnet.h — MemNet: a windowed Transformer controller with an active graph memory
// (the "Memory Is All You Need" research; components named as there).
//
//   ids [B, T] -> Embedding(V, E) = x
//   TransformerController: L pre-norm causal blocks whose attention sees only the last W tokens
//     (cmr::LocalAttentionBlock, ALiBi), then LayerNorm -> features h [B, T, E]
//   MultiHeadMemoryBank (memory_bank.h): every token reads R vectors r_t [R d] from the memory as
//     it stood before its segment; every S_seg tokens the segment writes (W write heads)
//   MemorySynthesizer (synthesizer.h): every dream_every segments S <- S + g SelfAttn(S)
//   Fusion:     y_t = h_t + W_f [h_t; r_t]   -> LayerNorm -> Linear(E, V) = logits
//   Hallucination head: after each segment's write, x^ = W_h readback (readback_w = ww_w . S, what
//     the write left in memory) must reconstruct the segment's mean input embedding, layer-normed
//     (without parameters) so the embedding cannot shrink to make the task easy:
//       L_hal = mean_seg |x^ - LN(mean_t x_t)|^2 / E
//     (A stop-gradient target would do the same, but then the loss is not the function it
//     differentiates, and the gradcheck could not hold it to central differences.)
// Composite loss (memnet_losses; the LM adds l1 L_hal + l2 L_util + l3 L_sparse to the task's CE):
//   L_util   = mean_b (log N - H(p_b)) / log N,  p_b = the mean read weight of row b over its
//              tokens and heads: 0 when reads use every slot equally, 1 when they all hit one
//              (maximising the usage entropy, against addressing collapse)
//   L_sparse = mean_{b,t,r} H(C_btr) / log N, C the content (top-k) distribution of a read: each
//              read should be sharp where the model aims it. (On W itself the term would pay the
//              meta-policy to pick the random policy, whose Dirichlet draws are sharper than
//              uniform: a first run did exactly that, 0.76 random after 800 steps.)
// The stream is cut into segments by absolute position (tokens p with the same p / S_seg), so a
// stream cut into calls anywhere gives the logits of the uncut stream: the open segment's
// features and embeddings, and its read mass, are part of the carried state.
#pragma once
#include <memory>
#include <vector>

#include "memory/cmr/attention_cmr_blocks.h"
#include "memory/memnet/memory_bank.h"
#include "memory/memnet/synthesizer.h"

namespace engram::memnet {

struct MemNetConfig {
  int64_t vocab = 256, d_model = 64, layers = 2, heads = 4, window = 16, ff_mult = 4;
  double dropout = 0.0;
  int64_t segment = 4;         // S_seg: one write per head every S_seg tokens
  MemoryBankConfig bank;       // bank.d_model is set from d_model
  int64_t dream_every = 8;     // segments between two dreams (0 = never in the forward)
  int64_t dream_heads = 2;
  double dream_gate = 0.1;     // g at initialisation
  bool memory = true;          // false: the controller alone (the windowed-Transformer baseline)
};
void validate(const MemNetConfig& cfg);

struct MemNetState {
  std::vector<cmr::BlockState> controller;  // per block: its attention cache
  MemoryBankState bank;
  Tensor pending_h, pending_x;  // [B, P, E]: the open segment's features and embeddings (P < S_seg)
  Tensor pending_reads;         // [B, N]: the sum of its tokens' read weights (all heads)
  int64_t position = 0;         // tokens seen
  bool started() const { return bank.slots.defined(); }
};

// What one forward saw, for the losses and the logs.
struct MemNetStats {
  Tensor read_weights;  // [B, T, R, N]
  Tensor content_weights;  // [B, T, R, N]: the top-k distributions
  Tensor policy;        // [B, T, R, P] (undefined with one policy)
  Tensor hallucination; // scalar, undefined when no segment closed in this call
  std::vector<Tensor> write_weights;  // per closed segment [B, W, N]
  std::vector<int64_t> write_positions;  // the stream position where each closed segment ended
  int64_t dreams = 0;
  double dream_change = 0;  // mean relative change of the dreams of this call
  // slot reuse: the share of this call's write mass that landed on slots already holding a
  // write (write mass >= 0.5 before the segment), and the slots holding one after the call
  double write_mass = 0, reused_mass = 0;
  double written_slots = 0;  // mean over the batch
};

// Optional per-token record of row 0 for the forgetting-dynamics experiment (memnet_app).
struct MemNetTrace {
  std::vector<std::vector<float>> reads;   // per token: mean read weight over heads [N]
  std::vector<std::vector<float>> writes;  // per closed segment: write weight summed over heads [N]
  std::vector<int64_t> write_positions;
};

class TransformerController : public nn::Module {
 public:
  TransformerController(const MemNetConfig& cfg, Generator* gen);
  Tensor forward(const Tensor& x, std::vector<cmr::BlockState>& st);  // [B, T, E] -> h
  std::string type_name() const override { return "TransformerController"; }
  std::vector<std::shared_ptr<cmr::LocalAttentionBlock>> blocks;
  std::shared_ptr<nn::LayerNorm> norm;
};

class MemNet : public nn::Module {
 public:
  MemNet(const MemNetConfig& cfg, Generator* gen);
  MemNetState initial_state(int64_t batch, DType dtype, Device device = Device::cpu) const;
  // ids [B, T] i64 -> logits [B, T, V]; `st` advances over the T tokens. `stages` (when given)
  // gets each stage's output by name: embed, controller, reads, fused, logits.
  Tensor forward(const Tensor& ids, MemNetState& st, MemNetStats* stats = nullptr,
                 MemNetTrace* trace = nullptr, nn::NamedTensors* stages = nullptr);
  // Offline dreaming (no gradient), e.g. between phases: `rounds` synthesizer passes.
  double dream(MemNetState& st, int64_t rounds);
  std::string type_name() const override { return "MemNet"; }

  MemNetConfig cfg;
  std::shared_ptr<nn::Embedding> embed;
  std::shared_ptr<TransformerController> controller;
  std::shared_ptr<MultiHeadMemoryBank> bank;
  std::shared_ptr<MemorySynthesizer> synthesizer;
  std::shared_ptr<nn::Linear> fuse, hallucinate;
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::Linear> head;
};

struct MemNetLosses {
  Tensor hallucination, utilization, sparsity;  // undefined: not computed in this call
};
MemNetLosses memnet_losses(const MemNetStats& stats, int64_t slots);

}  // namespace engram::memnet
