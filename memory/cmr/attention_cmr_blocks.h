// memory/cmr/attention_cmr_blocks.h — episodic CMR beside attention: the blocks of the memory LMs.
//
// Every block is pre-norm and causal, with attention that sees only the last W tokens
// (nn::LocalSelfAttention) and a GELU MLP; x [B, T, E] -> [B, T, E]:
//   LocalAttentionBlock        x += attn(LN1 x);                        x += MLP(LN2 x)   (baseline)
//   ParallelAttentionCMRBlock  h = LN1 x;  x += W [attn(h); cmr(h)];    x += MLP(LN2 x)
//   SeriesAttentionCMRBlock    attention first: x += attn(LN1 x); the CMR read is cued by the
//                              result: x += cmr(write from LN1 x_in, read with LNm x); x += MLP
//                              memory_first: the reverse order (x += cmr(LN1 x); x += attn(LNm x))
// The episodic memory (memory/cmr/episodic_cmr.h) is either the block's own (one bank per block)
// or a SharedCMRBank that the model writes once from its embeddings and every block reads with its
// own CMRReader: the placement question of the research conversation (is a bank per block
// redundant?), chosen by config and measured in apps/memory_lm.
// A block's carried state is a map of named tensors (its attention cache, its bank), so the
// language model can checkpoint it as it does every other state.
#pragma once
#include <map>

#include "memory/cmr/episodic_cmr.h"
#include "nn/attention.h"

namespace engram::cmr {

using BlockState = std::map<std::string, Tensor>;

// The bank state as named tensors under `prefix` (and back); load fills a fresh state when the
// names are missing (the first call of a stream).
void store_bank(const CMRBankState& s, BlockState& st, const std::string& prefix);
CMRBankState load_bank(const BlockState& st, const std::string& prefix,
                       const EpisodicCMRConfig& cfg, int64_t batch, DType dtype,
                       Device device = Device::cpu);

struct LocalBlockConfig {
  int64_t d_model = 64, heads = 4, window = 32, persistent = 0, ff_mult = 4;
  double dropout = 0.0;
};

// One call's shared bank: written once from the embeddings; the first block's reader plans it.
struct SharedCMRBank {
  BankWrites writes;
  CMRBankState state;
  ReadPlan plan;
};

// The parts every memory-LM block shares, and the interface the LM drives.
class MemoryLMBlock : public nn::Module {
 public:
  MemoryLMBlock(const LocalBlockConfig& cfg, Generator* gen);
  virtual Tensor forward(const Tensor& x, BlockState& st, SharedCMRBank* shared) = 0;
  LocalBlockConfig local;
  std::shared_ptr<nn::LayerNorm> norm1, norm2;
  std::shared_ptr<nn::LocalSelfAttention> attn;
  std::shared_ptr<nn::Linear> linear1, linear2;

 protected:
  Tensor attend(const Tensor& h, BlockState& st);  // local attention with st["attn_cache"]
  Tensor feed_forward(const Tensor& x);            // x + MLP(LN2 x)
};

class LocalAttentionBlock : public MemoryLMBlock {
 public:
  using MemoryLMBlock::MemoryLMBlock;
  Tensor forward(const Tensor& x, BlockState& st, SharedCMRBank* shared) override;
  std::string type_name() const override { return "LocalAttentionBlock"; }
};

// The CMR side of a block: its own bank (shared == nullptr at construction) or a reader of the
// model's shared bank.
class CMRSide : public nn::Module {
 public:
  CMRSide(const EpisodicCMRConfig& cfg, bool shared_bank, Generator* gen);
  Tensor forward(const Tensor& x, const Tensor& h, BlockState& st, SharedCMRBank* shared);
  std::string type_name() const override { return "CMRSide"; }
  EpisodicCMRConfig cfg;
  bool shared_bank;
  std::shared_ptr<EpisodicCMR> own;      // per-block placement
  std::shared_ptr<CMRReader> reader;     // shared placement
};

class ParallelAttentionCMRBlock : public MemoryLMBlock {
 public:
  ParallelAttentionCMRBlock(const LocalBlockConfig& local, const EpisodicCMRConfig& cmr,
                            bool shared_bank, Generator* gen);
  Tensor forward(const Tensor& x, BlockState& st, SharedCMRBank* shared) override;
  std::string type_name() const override { return "ParallelAttentionCMRBlock"; }
  std::shared_ptr<CMRSide> cmr;
  std::shared_ptr<nn::Linear> mix;  // W: [attn; cmr] (2E) -> E
};

class SeriesAttentionCMRBlock : public MemoryLMBlock {
 public:
  SeriesAttentionCMRBlock(const LocalBlockConfig& local, const EpisodicCMRConfig& cmr,
                          bool shared_bank, bool memory_first, Generator* gen);
  Tensor forward(const Tensor& x, BlockState& st, SharedCMRBank* shared) override;
  std::string type_name() const override { return "SeriesAttentionCMRBlock"; }
  bool memory_first;
  std::shared_ptr<CMRSide> cmr;
  std::shared_ptr<nn::LayerNorm> norm_mid;
};

}  // namespace engram::cmr
