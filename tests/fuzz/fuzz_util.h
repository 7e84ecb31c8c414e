// tests/fuzz/fuzz_util.h — what every libFuzzer target in tests/fuzz/ shares.
//
// The rule of every target: a reader given hostile bytes may refuse them, and refusing means
// throwing engram::Error with a message that names the source (the file, so a user knows which
// file is bad). Anything else is a finding and stops the fuzzer: a crash or undefined behaviour
// (ASan/UBSan), a leak (LeakSanitizer at exit), an input slower than -timeout, an allocation
// beyond -rss_limit_mb, any other exception escaping (std::bad_alloc, std::out_of_range, a JSON or
// YAML library's own exception: the readers promise engram::Error), or an Error that does not name
// its source.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/error.h"

namespace engram::fuzz {

// Readers that take a path get the input as a file. One file per process and name (libFuzzer's
// -jobs=N runs N processes), rewritten for every input; $TMPDIR or /tmp.
inline std::string temp_path(const std::string& name) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/engram-fuzz-" + std::to_string(::getpid()) +
         "-" + name;
}

inline std::string write_temp(const std::string& name, const void* data, size_t size) {
  const std::string path = temp_path(name);
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || (size > 0 && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();  // the harness, not the reader, failed: stop rather than fuzz nothing
  }
  return path;
}

// An expected rejection must still say which file it rejects.
inline void check_names_source(const Error& e, std::string_view source) {
  if (std::string_view(e.what()).find(source) == std::string_view::npos) {
    std::fprintf(stderr, "fuzz: error message does not name '%.*s':\n%s\n", int(source.size()),
                 source.data(), e.what());
    std::abort();
  }
}

}  // namespace engram::fuzz
