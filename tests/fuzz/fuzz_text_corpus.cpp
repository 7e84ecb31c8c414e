// tests/fuzz/fuzz_text_corpus.cpp — fuzzes the text-corpus reader of the language-model apps
// (apps/common/text_data.cpp): read_corpus's binary check (NUL share, non-text share with its
// UTF-8 decoder), the fortune-file separator stripping, then split_text, tokenisation and batching,
// and the word tokenizer built from the fuzzed text. The input's first byte chooses the layout
// (bit 0: a strfile index NAME.dat lies beside the file, as in Debian's fortunes); the rest is
// the file, written to a temporary directory. A corpus it accepts must split into three texts that
// add up to the whole, and tokenise, batch and round-trip through the byte tokenizer exactly.
#include <filesystem>

#include "apps/common/text_data.h"
#include "tests/fuzz/fuzz_util.h"

using namespace engram;
using namespace engram::apps;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool fortune = data[0] & 1;
  const std::string path = fuzz::write_temp("corpus.txt", data + 1, size - 1);
  const std::string dat = path + ".dat";
  if (fortune) fuzz::write_temp("corpus.txt.dat", "", 0);
  else std::filesystem::remove(dat);

  Corpus corpus;
  try {
    corpus = read_corpus(path);
  } catch (const Error& e) {
    fuzz::check_names_source(e, path);
    return 0;
  }
  TextSplits s = split_text(corpus, 0.1, 0.1, 64);
  if (s.train.size() + s.val.size() + s.test.size() != corpus.text.size()) std::abort();
  auto byte = make_byte_tokenizer();
  TokenSplit train = tokenize_split("train", s.train, *byte);
  if (byte->decode(train.ids) != s.train) std::abort();
  try {
    StreamBatcher batcher(train, 2, 8);
    check_split(batcher, byte->vocab_size(), 0.5);
    for (int64_t k = 0; k < std::min<int64_t>(batcher.batches_per_epoch(), 4); ++k) batcher.get(k);
  } catch (const Error&) {
    // too short a split for two streams of 8: refused with a message naming the split, fine
  }
  auto words = build_word_tokenizer(corpus.text, 64, 1);
  words->decode(words->encode(corpus.text));
  return 0;
}
