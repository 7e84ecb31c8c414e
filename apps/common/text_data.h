// apps/common/text_data.h — text corpora, the train/val/test split, and batches of token streams.
//
// Reading (read_corpus). `spec` is a comma-separated list of files, directories and glob
// patterns. A directory contributes its regular, non-hidden files in name order, skipping
// strfile indexes (*.dat) and their UTF-8 twins (*.u8). A file with a strfile index beside it
// (NAME and NAME.dat, the layout of Debian's fortunes package) is a fortune file: its '%' lines
// separate fortunes and are dropped. The default corpus is /usr/share/games/fortunes (~2.4 MB of
// English). A file whose bytes are more than max_nul_share NUL, or more than max_binary_share
// "non-text" (control characters other than \t \n \v \f \r, and bytes of invalid UTF-8), is
// refused as binary: 3 MB of random bytes are 54% non-text, Debian's fortunes 0.014% (its worst
// file 0.11%). A share of 1 accepts anything (deliberately training on bytes).
//
// Splitting (split_text), deterministic and without randomness:
//   enwik8 (one file of exactly 100,000,000 bytes): the standard split, bytes [0, 90M) train,
//     [90M, 95M) val, [95M, 100M) test, whatever the fractions say.
//   anything else: the text is cut into blocks of min(block_size, N / 100) bytes; of every 100
//     consecutive blocks the first (1 - val - test) * 100 go to train, the next val * 100 to val,
//     the rest to test. So val and test sample the whole corpus (fortunes' files differ in
//     topic) instead of only its last files, and each split is its blocks concatenated in order.
//
// Batching (StreamBatcher), llm.c's loader with B parallel streams: a split's N tokens are cut
// into B contiguous streams of L = floor(N / B) tokens (the last N mod B tokens are dropped), and
// batch k of an epoch holds, for every stream b, its tokens [kT, kT + T] (T + 1 of them):
//     inputs  = tokens[:, 0:T]      targets = tokens[:, 1:T+1]                    [B, T] each
// Row b of batch k + 1 continues row b of batch k, so a recurrent state carried from one batch to
// the next is meaningful. An epoch is ceil((L - 1) / T) batches; the last one is padded (inputs
// pad_id, targets kIgnoreIndex, which cross_entropy skips).
//
// Checks (check_split) refuse silent corruption: an empty split, too few tokens for B streams,
// token ids outside [0, vocab), and PAD flooding (padding above max_pad_share of the target
// positions of an epoch). Each error names the split.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "apps/common/tokenizer.h"
#include "core/tensor.h"

namespace engram::apps {

inline constexpr const char* kDefaultCorpus = "/usr/share/games/fortunes";
inline constexpr int64_t kEnwik8Bytes = 100'000'000;
inline constexpr int64_t kIgnoreIndex = -100;  // cross_entropy's default ignore_index

struct Corpus {
  std::string text;
  std::vector<std::string> files;  // what was read, in order
  bool enwik8 = false;
};
Corpus read_corpus(const std::string& spec, double max_nul_share = 0.01,
                   double max_binary_share = 0.05);
// The fraction of `bytes` that is not text in the sense above.
double non_text_share(std::string_view bytes);

struct TextSplits {
  std::string train, val, test;
};
TextSplits split_text(const Corpus& corpus, double val_fraction, double test_fraction,
                      int64_t block_size = 4096);

// A split as token ids, with the number of characters (bytes) of its text, so that bits per
// character can be reported for any tokenizer: total nats / characters / ln 2.
struct TokenSplit {
  std::string name;
  std::vector<int32_t> ids;
  int64_t chars = 0;
  double chars_per_token() const { return ids.empty() ? 1.0 : double(chars) / double(ids.size()); }
};
TokenSplit tokenize_split(const std::string& name, const std::string& text, const Tokenizer& tok);

struct Batch {
  Tensor inputs;   // [B, T] i64
  Tensor targets;  // [B, T] i64, kIgnoreIndex at padded positions
  int64_t real_targets = 0, pad_targets = 0;
  int64_t global_real_targets = 0;  // over all B streams, when the batch holds only some (set_rows)
};

// Keeps a pointer to `split`, which must outlive it.
class StreamBatcher {
 public:
  StreamBatcher(const TokenSplit& split, int64_t batch, int64_t seq_len, int32_t pad_id = 0);
  int64_t batches_per_epoch() const { return segments_; }
  int64_t stream_length() const { return stream_len_; }
  Batch get(int64_t index) const;  // the index-th batch of an epoch, 0 <= index < batches_per_epoch
  double pad_share() const;        // padded target positions / all target positions, per epoch
  const TokenSplit& split() const { return *split_; }
  // Data parallelism (nn/distributed.h): get() returns only streams [begin, begin + count), the
  // rows one rank trains on, while the streams stay those of all B (so N ranks see exactly the
  // batches of one process).
  void set_rows(int64_t begin, int64_t count);
  int64_t batch() const { return row_count_; }  // rows of each batch get() returns
  int64_t global_batch() const { return B_; }   // streams the split is cut into
  int64_t seq_len() const { return T_; }

 private:
  const TokenSplit* split_;
  int64_t B_, T_, stream_len_, segments_;
  int64_t row_begin_ = 0, row_count_;
  int32_t pad_id_;
};

// Throws naming the split when it is empty, too short for its streams, holds an id outside
// [0, vocab), or would be more than max_pad_share padding.
void check_split(const StreamBatcher& batcher, int64_t vocab, double max_pad_share);

}  // namespace engram::apps
