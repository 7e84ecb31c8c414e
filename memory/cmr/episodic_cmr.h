// memory/cmr/episodic_cmr.h — multi-head episodic CMR: a drifting context per head as the key of
// an episodic store, the memory that sits beside attention in the CMR research conversation.
//
// Classic CMR (memory/cmr/cmr.h) binds each studied item to the temporal context of its study and
// recalls by cueing with the current context. Here the "items" are tokens of a sequence, and each
// of H heads (width dh) keeps its own context, x_t [B, T, E] the block's input:
//   cin_t  = normalize(W_in^h x_t)                                   [dh]   the context input
//   beta_h = sigmoid(b_h)                                            (0, 1) learned per head
//   c_t    = rho_t c_{t-1} + beta_h cin_t                            memory/cmr/context.h's drift,
//            run over the whole sequence as one fused op (cmr_drift_scan)
//   f_t    = W_v^h x_t                                               [dh]   item features
// Writes. Every S tokens (S = `segment`; S = 1 writes per token) one slot of M receives
//   key = c_t (the context at the segment's last token), value = the mean of f over the segment.
// The slot is chosen by `policy`: ring (the oldest write goes) or lowest_use (the slot with the
// least decayed read mass u <- usage_decay u + w goes; a new write starts at u = 1, one read's
// worth, so it is not evicted by the very next write). Empty slots are filled first.
// Reads, with q_t = W_q^h h_t (h = x, or in a series block the attention's output):
//   s_tj = q_t . key_j / sqrt(dh)                 (read = softmax), or
//   s_tj = cos(q_t, key_j) / temperature          (read = cosine; keys are unit contexts)
//   w_t  = softmax over the slots live at t (written before t; the top_k best if top_k > 0),
//          plus one always-present null slot of score 0 and value 0, so a token with an empty
//          memory reads zero instead of NaN and any token may decline to read
//   r_t  = sum_j w_tj value_j  (+ M_pre^h c_t with pre_assoc: CMR's pre-experimental M^CF,
//          a learned context-to-feature map per head)
//   y_t  = W_o concat_h(r_t)                                         [B, T, E]
// Differentiable through everything except the slot choice (which slot, which top-k): the
// choice is planned without gradient from the same scores (plan_reads), then the read is one
// masked softmax over all candidates (the slots carried in, and this call's writes).
//
// Placement: EpisodicCMR is a bank and its reader in one module (one bank per block). For one
// bank shared by all blocks, the model holds one CMRBank and one CMRReader per block; the first
// reader's queries plan the slot choice, later readers read the same slots.
// State (carried between calls, detached by the LM): per row r = b * H + h the context, the M
// slots (keys, values, usage, write position) and the running sum of the open segment.
#pragma once
#include <string>

#include "nn/layers.h"

namespace engram::cmr {

// Heads as rows, as every per-head memory here (and memory/titans/) runs them:
//   rows_of_heads  [B, T, H * dh] -> [B * H, T, dh]  (row b * H + h)
//   heads_to_width [B * H, T, dh] -> [B, T, H * dh]
Tensor rows_of_heads(const Tensor& x, int64_t heads);
Tensor heads_to_width(const Tensor& x, int64_t batch);

enum class SlotPolicy { ring, lowest_use };
enum class ReadRule { softmax, cosine };

struct EpisodicCMRConfig {
  int64_t d_model = 64, heads = 4, head_dim = 16;
  int64_t slots = 64;   // M
  int64_t segment = 1;  // S: one write every S tokens
  SlotPolicy policy = SlotPolicy::ring;
  ReadRule read = ReadRule::softmax;
  double temperature = 0.1;   // cosine reads
  int64_t top_k = 0;          // 0 = every live slot
  bool pre_assoc = false;     // add M_pre^h c_t to the read
  double beta_init = 0.5;     // initial drift rate of every head
  double usage_decay = 0.99;  // lowest_use
};
void validate(const EpisodicCMRConfig& cfg);  // one-line errors naming the field

// Everything carried from one call to the next; rows are b * heads + h.
struct CMRBankState {
  Tensor context;      // [BH, dh]
  Tensor keys;         // [BH, M, dh]
  Tensor values;       // [BH, M, dh]
  Tensor usage;        // [BH, M]
  Tensor written_at;   // [BH, M] (f64) global position of the write, -1 = empty
  Tensor segment_sum;  // [BH, dh]  sum of f over the open segment
  Tensor position;     // [1] (f64) tokens seen so far
};
CMRBankState initial_bank_state(const EpisodicCMRConfig& cfg, int64_t batch, DType dtype,
                                Device device = Device::cpu);

// One call's writes: every context, and the candidates a read may see (M carried + N new).
struct BankWrites {
  Tensor contexts;        // [BH, T, dh]
  Tensor keys, values;    // [BH, M + N, dh]
  std::vector<int64_t> write_steps;  // t of each new write (candidate M + i), within the call
  Tensor new_segment_sum;            // [BH, dh]
  int64_t batch = 0, steps = 0;
  double position = 0;  // global position of the call's first token
};

// The slot choice for one call, made without gradient.
struct ReadPlan {
  Tensor hidden;           // [BH, T, M + N + 1]: 1 = not readable at t (last column: null slot)
  std::vector<int64_t> final_candidate;  // [BH * M]: which candidate each slot holds at the end
  std::vector<double> final_usage, final_written_at;  // [BH * M]
};

class CMRBank : public nn::Module {
 public:
  CMRBank(const EpisodicCMRConfig& cfg, Generator* gen);
  BankWrites write(const Tensor& x, const CMRBankState& state);  // x [B, T, E]
  // The state after the call: slots gathered from the candidates, context, position (still on
  // the tape; the LM detaches states between training steps).
  CMRBankState next_state(const BankWrites& w, const ReadPlan& plan) const;
  Tensor beta() const;  // [H], the drift rates
  std::string type_name() const override { return "CMRBank"; }
  std::string extra_repr() const override;

  EpisodicCMRConfig cfg;
  std::shared_ptr<nn::Linear> context_in, features;
  Tensor& beta_logit;  // [H]
};

class CMRReader : public nn::Module {
 public:
  CMRReader(const EpisodicCMRConfig& cfg, Generator* gen);
  // Queries from h [B, T, E]; plans the slot choice when `plan` is empty (plan->hidden undefined).
  Tensor read(const Tensor& h, const BankWrites& w, const CMRBankState& state, ReadPlan& plan);
  std::string type_name() const override { return "CMRReader"; }

  EpisodicCMRConfig cfg;
  std::shared_ptr<nn::Linear> query, out;
  Tensor pre_assoc;  // [H, dh, dh] when cfg.pre_assoc
  Tensor last_weights;  // [BH, T, M + N + 1] of the last read (for logging slot use)
};

// The slot choice (no gradient): which candidates each token may read, and the slots at the end.
ReadPlan plan_reads(const EpisodicCMRConfig& cfg, const Tensor& queries /*[BH, T, dh]*/,
                    const BankWrites& w, const CMRBankState& state);

// One bank with its reader: the per-block placement.
class EpisodicCMR : public nn::Module {
 public:
  EpisodicCMR(const EpisodicCMRConfig& cfg, Generator* gen);
  // Writes from x, reads with queries from h (h = x for a plain memory read). x, h [B, T, E].
  Tensor forward(const Tensor& x, const Tensor& h, CMRBankState& state);
  std::string type_name() const override { return "EpisodicCMR"; }

  std::shared_ptr<CMRBank> bank;
  std::shared_ptr<CMRReader> reader;
};

}  // namespace engram::cmr
