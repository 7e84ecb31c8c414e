// apps/common/tokenizer.cpp — see tokenizer.h.
#include "apps/common/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "core/error.h"

namespace engram::apps {

static const char* kHeader = "engram-tokenizer ";

std::string Tokenizer::token_repr(int32_t id) const {
  std::string raw = decode(std::span<const int32_t>(&id, 1)), out;
  for (unsigned char c : raw) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c >= 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += char(c);
  }
  return out;
}

void Tokenizer::save(const std::string& path) const {
  std::ofstream out(path, std::ios::binary);
  out << serialize();
  ENGRAM_CHECK(out.good(), "tokenizer: cannot write '{}'", path);
}

// ---------------------------------------------------------------- byte

namespace {

class ByteTokenizer : public Tokenizer {
 public:
  std::string kind() const override { return "byte"; }
  int64_t vocab_size() const override { return 256; }
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> ids(text.size());
    for (size_t i = 0; i < text.size(); ++i) ids[i] = int32_t(uint8_t(text[i]));
    return ids;
  }
  std::string decode(std::span<const int32_t> ids) const override {
    std::string s(ids.size(), '\0');
    for (size_t i = 0; i < ids.size(); ++i) {
      ENGRAM_CHECK(ids[i] >= 0 && ids[i] < 256, "byte tokenizer: id {} out of range [0, 256)", ids[i]);
      s[i] = char(uint8_t(ids[i]));
    }
    return s;
  }
  std::string serialize() const override { return std::string(kHeader) + "byte\n"; }
};

// ---------------------------------------------------------------- word

// Escapes a piece onto one ASCII line: \\ \n \t and \xHH for other bytes outside printable ASCII.
std::string escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c >= 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += char(c);
  }
  return out;
}

std::string unescape(std::string_view s, const std::string& where) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    ENGRAM_CHECK(i + 1 < s.size(), "{}: dangling backslash", where);
    char e = s[++i];
    if (e == '\\') out += '\\';
    else if (e == 'n') out += '\n';
    else if (e == 't') out += '\t';
    else if (e == 'x' && i + 2 < s.size() && std::isxdigit((unsigned char)s[i + 1]) &&
             std::isxdigit((unsigned char)s[i + 2])) {
      out += char(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      ENGRAM_FAIL("{}: bad escape '\\{}'", where, e);
    }
  }
  return out;
}

class WordTokenizer : public Tokenizer {
 public:
  explicit WordTokenizer(std::vector<std::string> pieces) : pieces_(std::move(pieces)) {
    for (size_t i = 0; i < pieces_.size(); ++i) index_.emplace(pieces_[i], int32_t(i));
  }
  std::string kind() const override { return "word"; }
  int64_t vocab_size() const override { return int64_t(pieces_.size()); }
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    for (std::string_view p : word_pieces(text)) {
      auto it = index_.find(std::string(p));
      ids.push_back(it == index_.end() ? 0 : it->second);  // 0 = <unk>
    }
    return ids;
  }
  std::string decode(std::span<const int32_t> ids) const override {
    std::string s;
    for (int32_t id : ids) {
      ENGRAM_CHECK(id >= 0 && id < vocab_size(), "word tokenizer: id {} out of range [0, {})", id,
                   vocab_size());
      s += pieces_[id];
    }
    return s;
  }
  std::string serialize() const override {
    std::string s = std::string(kHeader) + "word\n";
    for (size_t i = 1; i < pieces_.size(); ++i) s += escape(pieces_[i]) + "\n";  // <unk> implied
    return s;
  }

 private:
  std::vector<std::string> pieces_;  // pieces_[0] = "<unk>"
  std::unordered_map<std::string, int32_t> index_;
};

bool is_word_byte(unsigned char c) { return std::isalnum(c) || c >= 0x80; }  // UTF-8 stays whole

// ---------------------------------------------------------------- sentencepiece

std::string base64_encode(const std::string& in) {
  static const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < in.size(); i += 3) {
    uint32_t n = uint32_t(uint8_t(in[i])) << 16;
    if (i + 1 < in.size()) n |= uint32_t(uint8_t(in[i + 1])) << 8;
    if (i + 2 < in.size()) n |= uint32_t(uint8_t(in[i + 2]));
    out += abc[(n >> 18) & 63];
    out += abc[(n >> 12) & 63];
    out += i + 1 < in.size() ? abc[(n >> 6) & 63] : '=';
    out += i + 2 < in.size() ? abc[n & 63] : '=';
  }
  return out;
}

std::string base64_decode(std::string_view in, const std::string& where) {
  auto value = [&](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    ENGRAM_FAIL("{}: invalid base64 character (code {})", where, int(uint8_t(c)));
  };
  std::string clean;
  for (char c : in)
    if (!std::isspace((unsigned char)c)) clean += c;
  ENGRAM_CHECK(clean.size() % 4 == 0, "{}: base64 text length {} is not a multiple of 4", where,
               clean.size());
  std::string out;
  for (size_t i = 0; i < clean.size(); i += 4) {
    uint32_t n = 0;
    int pad = 0;
    for (int j = 0; j < 4; ++j) {
      char c = clean[i + j];
      if (c == '=') ++pad, n <<= 6;
      else n = (n << 6) | uint32_t(value(c));
    }
    out += char((n >> 16) & 255);
    if (pad < 2) out += char((n >> 8) & 255);
    if (pad < 1) out += char(n & 255);
  }
  return out;
}

class SentencePieceTokenizer : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::string& proto, const std::string& source) : proto_(proto) {
    auto status = sp_.LoadFromSerializedProto(proto_);
    ENGRAM_CHECK(status.ok(), "{}: not a valid SentencePiece model: {}", source, status.ToString());
    newline_ = sp_.GetPieceSize();
  }
  std::string kind() const override { return "sentencepiece"; }
  int64_t vocab_size() const override { return newline_ + 1; }
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    size_t start = 0;
    while (true) {
      size_t nl = text.find('\n', start);
      std::string_view line = text.substr(start, nl == std::string_view::npos ? nl : nl - start);
      if (!line.empty()) {
        std::vector<int> part;
        auto status = sp_.Encode(std::string(line), &part);
        ENGRAM_CHECK(status.ok(), "sentencepiece: encoding failed: {}", status.ToString());
        ids.insert(ids.end(), part.begin(), part.end());
      }
      if (nl == std::string_view::npos) break;
      ids.push_back(newline_);
      start = nl + 1;
    }
    return ids;
  }
  std::string decode(std::span<const int32_t> ids) const override {
    std::string out;
    std::vector<int> line;
    auto flush = [&] {
      if (line.empty()) return;
      std::string s;
      auto status = sp_.Decode(line, &s);
      ENGRAM_CHECK(status.ok(), "sentencepiece: decoding failed: {}", status.ToString());
      out += s;
      line.clear();
    };
    for (int32_t id : ids) {
      ENGRAM_CHECK(id >= 0 && id <= newline_, "sentencepiece tokenizer: id {} out of range [0, {})",
                   id, newline_ + 1);
      if (id == newline_) flush(), out += '\n';
      else line.push_back(id);
    }
    flush();
    return out;
  }
  std::string serialize() const override {
    std::string s = std::string(kHeader) + "sentencepiece\n", b64 = base64_encode(proto_);
    for (size_t i = 0; i < b64.size(); i += 76) s += b64.substr(i, 76) + "\n";
    return s;
  }

 private:
  std::string proto_;  // the serialised ModelProto
  sentencepiece::SentencePieceProcessor sp_;
  int32_t newline_ = 0;
};

// Feeds the non-empty lines of a text to the SentencePiece trainer without copying the text.
class LineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(std::string_view text) : text_(text) { Next(); }
  bool done() const override { return done_; }
  void Next() override {
    while (pos_ <= text_.size()) {
      size_t nl = text_.find('\n', pos_);
      if (nl == std::string_view::npos) nl = text_.size();
      line_.assign(text_.substr(pos_, nl - pos_));
      pos_ = nl + 1;
      if (!line_.empty()) return;
    }
    done_ = true;
  }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  std::string_view text_;
  size_t pos_ = 0;
  std::string line_;
  bool done_ = false;
};

}  // namespace

std::unique_ptr<Tokenizer> make_byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

std::vector<std::string_view> word_pieces(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0, n = text.size();
  while (i < n) {
    size_t j = i;
    if (text[j] == ' ' && j + 1 < n && is_word_byte(text[j + 1])) ++j;  // one leading space
    if (is_word_byte(text[j])) {
      while (j < n && is_word_byte(text[j])) ++j;
    } else {
      j = i + 1;
    }
    out.push_back(text.substr(i, j - i));
    i = j;
  }
  return out;
}

std::unique_ptr<Tokenizer> build_word_tokenizer(std::string_view text, int64_t vocab_size,
                                                int64_t min_freq) {
  ENGRAM_CHECK(vocab_size >= 2, "word tokenizer: vocab_size must be at least 2 (<unk> and one "
               "word), got {}", vocab_size);
  std::unordered_map<std::string_view, int64_t> counts;
  for (std::string_view p : word_pieces(text)) ++counts[p];
  std::vector<std::pair<std::string_view, int64_t>> ranked;
  for (auto& [p, c] : counts)
    if (c >= min_freq) ranked.emplace_back(p, c);
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  std::vector<std::string> pieces{"<unk>"};
  for (auto& [p, c] : ranked) {
    if (int64_t(pieces.size()) >= vocab_size) break;
    if (p != "<unk>") pieces.emplace_back(p);
  }
  return std::make_unique<WordTokenizer>(std::move(pieces));
}

std::unique_ptr<Tokenizer> train_sentencepiece_tokenizer(std::string_view text, int64_t vocab_size) {
  ENGRAM_CHECK(vocab_size > 260, "sentencepiece tokenizer: vocab_size must exceed 260 (256 byte "
               "pieces + <unk>, <s>, </s> + some pieces), got {}", vocab_size);
  LineIterator lines(text);
  ENGRAM_CHECK(!lines.done(), "sentencepiece tokenizer: the training text has no non-empty line");
  std::unordered_map<std::string, std::string> args = {
      {"model_type", "unigram"},
      {"vocab_size", std::to_string(vocab_size)},
      {"hard_vocab_limit", "false"},   // a small corpus may support fewer pieces: not an error
      {"byte_fallback", "true"},       // characters outside the vocabulary become byte pieces
      {"character_coverage", "1.0"},
      {"normalization_rule_name", "identity"},  // so decode(encode(s)) == s
      {"add_dummy_prefix", "false"},
      {"remove_extra_whitespaces", "false"},
      {"num_threads", "1"},            // deterministic
      {"minloglevel", "2"},            // training chatter off
  };
  std::string proto;
  auto status = sentencepiece::SentencePieceTrainer::Train(args, &lines, &proto);
  ENGRAM_CHECK(status.ok(), "sentencepiece training failed: {}", status.ToString());
  return std::make_unique<SentencePieceTokenizer>(proto, "trained sentencepiece model");
}

std::unique_ptr<Tokenizer> deserialize_tokenizer(const std::string& text, const std::string& source) {
  if (!text.starts_with(kHeader)) {
    // Not engram's format: perhaps a SentencePiece .model file written by spm_train.
    sentencepiece::SentencePieceProcessor probe;
    ENGRAM_CHECK(probe.LoadFromSerializedProto(text).ok(), "{}: not a tokenizer file (expected a "
                 "first line 'engram-tokenizer byte|word|sentencepiece' or a SentencePiece .model)",
                 source);
    return std::make_unique<SentencePieceTokenizer>(text, source);
  }
  size_t eol = text.find('\n');
  std::string kind = text.substr(std::string(kHeader).size(), eol - std::string(kHeader).size());
  std::string body = eol == std::string::npos ? "" : text.substr(eol + 1);
  if (kind == "byte") return make_byte_tokenizer();
  if (kind == "sentencepiece")
    return std::make_unique<SentencePieceTokenizer>(base64_decode(body, source), source);
  ENGRAM_CHECK(kind == "word", "{}: unknown tokenizer kind '{}' (byte, word, sentencepiece)", source,
               kind);
  std::vector<std::string> pieces{"<unk>"};
  std::unordered_map<std::string, int> line_of;
  std::istringstream in(body);
  std::string line;
  for (int n = 2; std::getline(in, line); ++n) {
    std::string where = fmt::format("{} line {}", source, n);
    ENGRAM_CHECK(!line.empty(), "{}: empty piece", where);
    std::string piece = unescape(line, where);
    ENGRAM_CHECK(piece != "<unk>" && !line_of.count(piece), "{}: piece '{}' is listed twice{}",
                 where, line, line_of.count(piece) ? fmt::format(" (also line {})", line_of[piece]) : "");
    line_of[piece] = n;
    pieces.push_back(piece);
  }
  return std::make_unique<WordTokenizer>(std::move(pieces));
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ENGRAM_CHECK(in.good(), "tokenizer file '{}' cannot be opened", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return deserialize_tokenizer(ss.str(), path);
}

}  // namespace engram::apps
