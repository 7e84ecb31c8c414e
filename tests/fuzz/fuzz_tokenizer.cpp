// tests/fuzz/fuzz_tokenizer.cpp — fuzzes the tokenizer file reader (apps/common/tokenizer.cpp):
// engram's "engram-tokenizer byte|word|sentencepiece" files (escaped word pieces, base64 of a
// SentencePiece model) and raw SentencePiece .model protobufs. The input goes to
// deserialize_tokenizer, the in-memory form of load_tokenizer. A tokenizer it accepts must then
// work: encode and decode its own file text, decode every id, and serialise to text that reads
// back to the same serialisation.
#include "apps/common/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

using namespace engram;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size), source = "fuzz.tokenizer";
  std::unique_ptr<apps::Tokenizer> tok;
  try {
    tok = apps::deserialize_tokenizer(text, source);
  } catch (const Error& e) {
    fuzz::check_names_source(e, source);
    return 0;
  }
  std::vector<int32_t> ids = tok->encode(text);
  for (int32_t id : ids)
    if (id < 0 || id >= tok->vocab_size()) std::abort();
  tok->decode(ids);
  for (int32_t id = 0; id < std::min<int64_t>(tok->vocab_size(), 512); ++id) tok->token_repr(id);
  const std::string s = tok->serialize();
  if (apps::deserialize_tokenizer(s, "round trip")->serialize() != s) std::abort();
  return 0;
}
