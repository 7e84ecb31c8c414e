// tests/test_fuzz_regressions.cpp — every input the fuzzers (tests/fuzz/, docs/hardening.md) found
// to break a reader, replayed through the fixed reader.
//
// Each file in tests/fuzz/regressions/ is named after its target ("idx-...", "config-..."); the
// first test gives every file to its reader and requires what the fuzz target requires: the
// reader accepts it or refuses it with an engram::Error naming the source, and nothing else (a
// sanitizer build, `make sanitize`, also catches the memory errors). The tests after it pin down
// what each fix promises beyond "no crash".
#include <doctest/doctest.h>
#include <sys/resource.h>

#include <filesystem>
#include <functional>
#include <map>

#include "apps/common/config.h"
#include "apps/common/idx.h"
#include "memory/cmr/semantic.h"
#include "nn/checkpoint.h"
#include "tests/fuzz/fuzz_config_schema.h"
#include "tests/test_util.h"

using namespace engram;
using namespace engram::apps;
namespace fs = std::filesystem;
using engram::testing::error_of;
using engram::testing::TempDir;

namespace {

const fs::path kRegressions = "tests/fuzz/regressions";

std::shared_ptr<const Schema> fuzz_schema() { return fuzz_config_schema(); }

// Peak resident memory of this process so far, in MB (getrusage reports KB on Linux).
double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

}  // namespace

TEST_CASE("fuzz regressions: every saved input is accepted or refused with an error naming it") {
  // What a replay does with a file of each target: read it the way the fuzz target does.
  const std::map<std::string, std::function<void(const std::string&)>> readers = {
      {"idx", [](const std::string& path) { read_idx(path); }},
      {"safetensors", [](const std::string& path) { nn::load_safetensors(path); }},
      {"semantic_matrix",
       [](const std::string& path) { cmr::similarity_from_file(path, {"apple", "banana", "cherry"}); }},
      {"config",
       [](const std::string& path) {
         Config cfg(fuzz_schema());
         cfg.merge_yaml_file(path);
       }},
  };
  REQUIRE(fs::is_directory(kRegressions));
  int replayed = 0;
  for (const auto& e : fs::directory_iterator(kRegressions)) {
    const std::string name = e.path().filename().string(), path = e.path().string();
    const std::string target = name.substr(0, name.find('-'));
    CAPTURE(name);
    REQUIRE_MESSAGE(readers.count(target), "no reader for regression input " << name);
    try {
      readers.at(target)(path);
    } catch (const Error& err) {
      CHECK(std::string(err.what()).find(path) != std::string::npos);
    }
    ++replayed;
  }
  CHECK(replayed >= 4);
}

TEST_CASE("fuzz regressions: an IDX header promising more data than the file holds costs no memory") {
  // 12 bytes whose header claims 0x7f000804 (2.1 billion) one-byte elements: the reader used to
  // allocate all of them before finding the file truncated (libFuzzer: out-of-memory). The
  // buffer now grows with the data read, so the error comes at once and the peak memory stays put.
  const std::string path = (kRegressions / "idx-oom-huge-header").string();
  const double before = peak_rss_mb();
  const std::string err = error_of([&] { read_idx(path); });
  CHECK(err.find(path + ": truncated IDX file") != std::string::npos);
  CHECK(err.find("promises 2130708484 bytes of data, found 4") != std::string::npos);
  CHECK(peak_rss_mb() - before < 256);

  // The largest header the reader allows (2^32 elements) with its product checked in 64 bits, and
  // ranks whose product would wrap a signed 64-bit count: refused by name, never wrapped.
  TempDir dir;
  const std::string big = dir.write("big", std::string("\0\0\x08\x02\xff\xff\xff\xff\xff\xff\xff\xff", 12));
  CHECK(error_of([&] { read_idx(big); }).find("too many elements (4294967295 x 4294967295)") !=
        std::string::npos);
  const std::string max = dir.write("max", std::string("\0\0\x08\x02\x00\x01\x00\x00\x00\x01\x00\x00", 12));
  CHECK(error_of([&] { read_idx(max); }).find("promises 4294967296 bytes of data, found 0") !=
        std::string::npos);
  CHECK(peak_rss_mb() - before < 256);
}

TEST_CASE("fuzz regressions: a config string that is not UTF-8 is refused, not rewritten") {
  // The fuzzer's input: a data.path holding the bytes 89 89 89 89. yaml-cpp read them, but its
  // emitter writes U+FFFD for each, so to_yaml() (the copy saved with every checkpoint) named
  // another file than the run used. Now the value is refused, naming the key and the file.
  const std::string path = (kRegressions / "config-non-utf8-string.yaml").string();
  Config cfg(fuzz_schema());
  const std::string err = error_of([&] { cfg.merge_yaml_file(path); });
  CHECK(err.find(path) != std::string::npos);
  CHECK(err.find("'data.path' must be UTF-8 text") != std::string::npos);
  CHECK(error_of([&] { cfg.apply_override("run.name=caf\xe9"); }).find("must be UTF-8") !=
        std::string::npos);
  // Real UTF-8 (two, three and four byte forms) is kept and reads back from to_yaml() unchanged.
  cfg.apply_override("run.name=caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80");
  Config back(fuzz_schema());
  back.merge_yaml(cfg.to_yaml(), "to_yaml");
  CHECK(back.get_string("run.name") == "caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80");
  CHECK(back.diff(cfg).empty());
  // Overlong forms and UTF-16 surrogates are not UTF-8 either.
  CHECK_THROWS_AS(cfg.apply_override("run.name=\xc0\xaf"), Error);
  CHECK_THROWS_AS(cfg.apply_override("run.name=\xed\xa0\x80"), Error);
  CHECK_THROWS_AS(cfg.apply_override("run.name=\xe2\x80"), Error);
}

TEST_CASE("fuzz regressions: a safetensors shape whose strides overflow is refused, even with numel 0") {
  // [0, 2^62, 2^62] holds no element, so the old numel check passed it, but the tensor's strides
  // (2^124) overflow int64 (UBSan: signed integer overflow in contiguous_strides); [0, 2^63] made a
  // size of -2^63 and an error from empty() that did not name the file. Both are now the reader's
  // own "too large" error, naming the file and the entry.
  for (const char* name : {"safetensors-zero-size-huge-strides", "safetensors-size-past-int64"}) {
    const std::string path = (kRegressions / name).string();
    const std::string err = error_of([&] { nn::load_safetensors(path); });
    CAPTURE(err);
    CHECK(err.find(path) != std::string::npos);
    CHECK(err.find("'a': shape [0,") != std::string::npos);
    CHECK(err.find("is too large") != std::string::npos);
  }
}

TEST_CASE("fuzz regressions: a similarity matrix with values near +-1e308 rescales to [0, 1], not NaN") {
  // Off-diagonal values from -1e308 to 1e308: the rescale (x - lo) / (hi - lo) was inf / inf. It
  // now divides by the largest magnitude first; the order of the values is kept.
  const std::string path = (kRegressions / "semantic_matrix-nan-range").string();
  cmr::Similarity s = cmr::similarity_from_file(path, {"apple", "banana", "cherry"});
  REQUIRE(s.matrix.size() == 3);
  for (const auto& row : s.matrix)
    for (double v : row) {
      CHECK(std::isfinite(v));
      CHECK(v >= 0.0);
      CHECK(v <= 1.0);
    }
  CHECK(s.matrix[0][1] == doctest::Approx(1.0));  // 1e308, the largest
  CHECK(s.matrix[0][2] == doctest::Approx(0.0));  // -1e308, the smallest
  CHECK(s.matrix[1][2] == doctest::Approx(0.5));  // 1, in the middle
}
