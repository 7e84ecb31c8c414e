// apps/common/tokenizer.h — text <-> token ids: byte, word and SentencePiece subword tokenizers.
//
//   byte           ids 0..255 are the bytes of the text (UTF-8 passes through untouched). No
//                  training, nothing unknown, decode(encode(s)) == s for every s. The default.
//   word           the text is cut into pieces: a run of letters/digits with at most one space
//                  in front (" world"), or any other single byte ("," "\n"). The vocabulary is
//                  built from the training split: id 0 is <unk>, then every piece seen at least
//                  min_freq times, most frequent first (ties alphabetical), at most vocab_size
//                  ids in all. decode is concatenation, so decode(encode(s)) == s whenever no
//                  piece of s is unknown; an unknown piece decodes as "<unk>".
//   sentencepiece  a SentencePiece model (Debian's libsentencepiece) trained on the training
//                  split, with identity normalisation and byte fallback so no text is lost. A
//                  SentencePiece model sees one line at a time, so the text is encoded line by
//                  line and the newline is one extra id (the last one): decode(encode(s)) == s.
//
// Every tokenizer can be saved to a file, loaded back, and serialised to a text-safe string that
// rides in checkpoint metadata (so a resumed run and generation use the very same vocabulary).
// Malformed vocabulary/model files are an engram::Error naming the file (and line).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace engram::apps {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::string kind() const = 0;  // "byte", "word", "sentencepiece"
  virtual int64_t vocab_size() const = 0;
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  // One token as readable text for traces ("\n" shown as "\\n", bytes >= 0x80 as "\\xe2").
  std::string token_repr(int32_t id) const;
  // A text-safe serialisation (ASCII only) and file form.
  virtual std::string serialize() const = 0;
  void save(const std::string& path) const;
};

std::unique_ptr<Tokenizer> make_byte_tokenizer();

// Builds a word vocabulary from `text` (at most vocab_size ids including <unk>).
std::unique_ptr<Tokenizer> build_word_tokenizer(std::string_view text, int64_t vocab_size,
                                                int64_t min_freq);
// Splits text into the word tokenizer's pieces (exposed for tests and for the docs above).
std::vector<std::string_view> word_pieces(std::string_view text);

// Trains a SentencePiece model ("unigram") on the lines of `text`; vocab_size counts the
// SentencePiece pieces (including its 256 byte-fallback pieces), the newline id comes on top.
std::unique_ptr<Tokenizer> train_sentencepiece_tokenizer(std::string_view text, int64_t vocab_size);

// Restores a tokenizer from serialize()'s text or from a file written by save(); `source` names
// it in errors.
std::unique_ptr<Tokenizer> deserialize_tokenizer(const std::string& text, const std::string& source);
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace engram::apps
