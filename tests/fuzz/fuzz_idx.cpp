// tests/fuzz/fuzz_idx.cpp — fuzzes the IDX reader (apps/common/idx.cpp), plain and gzip: the magic
// number, the element type, the rank, the big-endian dimension sizes and the data length. Each
// input is read twice: (1) written as it is, so the seeds that are .gz files fuzz zlib's handling
// of a damaged gzip stream under read_idx, and (2) gzip-compressed first, so that the IDX header
// inside a valid gzip stream is fuzzed too (mutating compressed bytes rarely reaches it). An
// accepted file of rank 3 or 1 also goes through load_idx_images / load_idx_labels.
#include <zlib.h>

#include "apps/common/idx.h"
#include "tests/fuzz/fuzz_util.h"

using namespace engram;

static void read_one(const std::string& path) {
  try {
    apps::IdxArray a = apps::read_idx(path);
    int64_t n = 1;
    for (int64_t d : a.dims) n *= d;
    if (n != int64_t(a.data.size())) std::abort();  // the reader's promise: prod(dims) bytes
    if (a.dims.size() == 3) apps::load_idx_images(path);
    if (a.dims.size() == 1) apps::load_idx_labels(path);
  } catch (const Error& e) {
    fuzz::check_names_source(e, path);
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  read_one(fuzz::write_temp("data-idx", data, size));

  const std::string gz = fuzz::temp_path("data-idx.gz");
  gzFile f = gzopen(gz.c_str(), "wb");
  if (!f || (size > 0 && gzwrite(f, data, unsigned(size)) != int(size)) || gzclose(f) != Z_OK)
    std::abort();
  read_one(gz);
  return 0;
}
