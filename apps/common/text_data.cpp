// apps/common/text_data.cpp — see text_data.h.
#include "apps/common/text_data.h"

#include <glob.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace engram::apps {

namespace fs = std::filesystem;

static std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ENGRAM_CHECK(in.good(), "data file '{}' cannot be opened", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The files named by one entry of the spec: a file, a directory, or a glob pattern.
static std::vector<std::string> expand_entry(const std::string& entry) {
  std::vector<std::string> files;
  if (entry.find_first_of("*?[") != std::string::npos) {
    glob_t g{};
    int rc = ::glob(entry.c_str(), 0, nullptr, &g);
    for (size_t i = 0; rc == 0 && i < g.gl_pathc; ++i)
      if (fs::is_regular_file(g.gl_pathv[i])) files.emplace_back(g.gl_pathv[i]);
    ::globfree(&g);
    ENGRAM_CHECK(!files.empty(), "data path '{}': the pattern matches no file", entry);
    std::sort(files.begin(), files.end());
    return files;
  }
  std::error_code ec;
  if (fs::is_directory(entry, ec)) {
    for (const fs::directory_entry& e : fs::directory_iterator(entry)) {
      std::string name = e.path().filename().string(), ext = e.path().extension().string();
      if (!e.is_regular_file() || name.starts_with(".") || ext == ".dat" || ext == ".u8") continue;
      files.push_back(e.path().string());
    }
    ENGRAM_CHECK(!files.empty(), "data directory '{}' holds no text file", entry);
    std::sort(files.begin(), files.end());
    return files;
  }
  ENGRAM_CHECK(fs::is_regular_file(entry, ec), "data file '{}' not found{}", entry,
               entry == kDefaultCorpus ? " (the default corpus: install Debian's fortunes package, "
                                         "`sudo apt-get install fortunes`, or pass --data FILE)"
                                       : "");
  return {entry};
}

// Drops the '%' separator lines of a fortune file (strfile's format).
static std::string strip_fortune_separators(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    size_t end = nl == std::string::npos ? text.size() : nl + 1;
    std::string_view line(text.data() + start, end - start);
    if (line != "%\n" && line != "%") out.append(line);
    start = end;
  }
  return out;
}

double non_text_share(std::string_view b) {
  int64_t bad = 0;
  const size_t n = b.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = (unsigned char)b[i];
    if (c < 0x80) {  // ASCII: control characters other than \t \n \v \f \r are not text
      bad += (c < 0x09 || (c >= 0x0E && c < 0x20) || c == 0x7F);
      ++i;
      continue;
    }
    // a UTF-8 lead byte and its continuation bytes (overlong leads C0/C1 and F5.. are invalid)
    const size_t len = c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : 0;
    bool ok = len > 0 && i + len < n;
    for (size_t k = 1; ok && k <= len; ++k) ok = ((unsigned char)b[i + k] & 0xC0) == 0x80;
    if (ok) i += len + 1;
    else ++bad, ++i;
  }
  return n == 0 ? 0.0 : double(bad) / double(n);
}

Corpus read_corpus(const std::string& spec, double max_nul_share, double max_binary_share) {
  Corpus corpus;
  ENGRAM_CHECK(!spec.empty(), "data path is empty: give a file, directory or glob pattern");
  std::stringstream entries(spec);
  std::string entry;
  while (std::getline(entries, entry, ',')) {
    if (entry.empty()) continue;
    for (const std::string& file : expand_entry(entry)) {
      std::string text = read_file(file);
      int64_t nul = std::count(text.begin(), text.end(), '\0');
      ENGRAM_CHECK(text.empty() || double(nul) <= max_nul_share * double(text.size()),
                   "data file '{}' looks binary: {:.1f}% of its {} bytes are NUL (limit {:.1f}%); "
                   "engram's text loader wants text", file, 100.0 * double(nul) / double(text.size()),
                   text.size(), 100.0 * max_nul_share);
      const double binary = max_binary_share < 1 ? non_text_share(text) : 0.0;
      ENGRAM_CHECK(binary <= max_binary_share,
                   "data file '{}' looks binary: {:.1f}% of its {} bytes are control characters or "
                   "invalid UTF-8 (limit {:.1f}%, data.max_binary_share); set "
                   "data.max_binary_share=1 to train on it anyway", file, 100.0 * binary,
                   text.size(), 100.0 * max_binary_share);
      if (fs::exists(file + ".dat")) text = strip_fortune_separators(text);
      corpus.text += text;
      corpus.files.push_back(file);
    }
  }
  ENGRAM_CHECK(!corpus.text.empty(), "data path '{}': no text ({} file(s), 0 bytes)", spec,
               corpus.files.size());
  corpus.enwik8 = corpus.files.size() == 1 && int64_t(corpus.text.size()) == kEnwik8Bytes;
  return corpus;
}

TextSplits split_text(const Corpus& corpus, double val_fraction, double test_fraction,
                      int64_t block_size) {
  ENGRAM_CHECK(val_fraction >= 0 && test_fraction >= 0 && val_fraction + test_fraction < 1,
               "split fractions must be >= 0 with val + test < 1, got val={} test={}", val_fraction,
               test_fraction);
  const std::string& t = corpus.text;
  const int64_t N = int64_t(t.size());
  TextSplits s;
  if (corpus.enwik8) {  // the standard enwik8 benchmark split
    s.train = t.substr(0, 90'000'000);
    s.val = t.substr(90'000'000, 5'000'000);
    s.test = t.substr(95'000'000);
    return s;
  }
  const int64_t block = std::max<int64_t>(1, std::min(block_size, N / 100));
  const double train_end = 1.0 - val_fraction - test_fraction, val_end = 1.0 - test_fraction;
  for (int64_t i = 0, begin = 0; begin < N; ++i, begin += block) {
    double phase = (double(i % 100) + 0.5) / 100.0;  // where this block sits in its period
    std::string& dst = phase < train_end ? s.train : phase < val_end ? s.val : s.test;
    dst.append(t, size_t(begin), size_t(std::min(block, N - begin)));
  }
  return s;
}

TokenSplit tokenize_split(const std::string& name, const std::string& text, const Tokenizer& tok) {
  return {name, tok.encode(text), int64_t(text.size())};
}

StreamBatcher::StreamBatcher(const TokenSplit& split, int64_t batch, int64_t seq_len, int32_t pad_id)
    : split_(&split), B_(batch), T_(seq_len), row_count_(batch), pad_id_(pad_id) {
  ENGRAM_CHECK(B_ >= 1 && T_ >= 1, "batcher: batch and seq_len must be positive, got {} and {}", B_,
               T_);
  stream_len_ = int64_t(split.ids.size()) / B_;
  segments_ = stream_len_ >= 2 ? (stream_len_ - 1 + T_ - 1) / T_ : 0;
}

void StreamBatcher::set_rows(int64_t begin, int64_t count) {
  ENGRAM_CHECK(begin >= 0 && count >= 1 && begin + count <= B_, "batcher of split '{}': rows [{}, "
               "{}) are not inside its {} streams", split_->name, begin, begin + count, B_);
  row_begin_ = begin, row_count_ = count;
}

Batch StreamBatcher::get(int64_t k) const {
  ENGRAM_CHECK(k >= 0 && k < segments_, "split '{}': batch {} out of range [0, {})", split_->name, k,
               segments_);
  Batch b{empty({row_count_, T_}, DType::i64), empty({row_count_, T_}, DType::i64)};
  int64_t* in = b.inputs.data<int64_t>();
  int64_t* tg = b.targets.data<int64_t>();
  const int32_t* ids = split_->ids.data();
  const int64_t start = k * T_;
  for (int64_t row = 0; row < row_count_; ++row) {
    const int64_t stream = (row_begin_ + row) * stream_len_;
    for (int64_t t = 0; t < T_; ++t) {
      const bool real = start + t + 1 < stream_len_;  // the target exists inside the stream
      in[row * T_ + t] = start + t < stream_len_ ? ids[stream + start + t] : pad_id_;
      tg[row * T_ + t] = real ? ids[stream + start + t + 1] : kIgnoreIndex;
      (real ? b.real_targets : b.pad_targets) += 1;
    }
  }
  // every stream has the same length, so every row has the same number of real targets
  b.global_real_targets = b.real_targets / row_count_ * B_;
  return b;
}

double StreamBatcher::pad_share() const {
  if (segments_ == 0) return 1.0;
  return 1.0 - double(stream_len_ - 1) / double(segments_ * T_);
}

void check_split(const StreamBatcher& batcher, int64_t vocab, double max_pad_share) {
  const TokenSplit& s = batcher.split();
  ENGRAM_CHECK(!s.ids.empty(), "split '{}' is empty (0 tokens from {} characters): use more data "
               "or larger split fractions", s.name, s.chars);
  ENGRAM_CHECK(batcher.batches_per_epoch() > 0, "split '{}' has {} tokens, too few for {} streams "
               "(each needs at least 2): lower train.batch or use more data", s.name, s.ids.size(),
               batcher.global_batch());
  for (size_t i = 0; i < s.ids.size(); ++i)
    ENGRAM_CHECK(s.ids[i] >= 0 && s.ids[i] < vocab, "split '{}': token {} has id {}, outside the "
                 "vocabulary [0, {})", s.name, i, s.ids[i], vocab);
  const double share = batcher.pad_share();
  ENGRAM_CHECK(share <= max_pad_share,
               "split '{}': {:.1f}% of its target positions would be padding (limit {:.1f}%, "
               "data.max_pad_share): {} tokens make {} streams of {}, each padded to {} segment(s) "
               "of {}; use a smaller train.batch or train.seq_len, or more data", s.name,
               100.0 * share, 100.0 * max_pad_share, s.ids.size(), batcher.global_batch(),
               batcher.stream_length(), batcher.batches_per_epoch(), batcher.seq_len());
}

}  // namespace engram::apps
