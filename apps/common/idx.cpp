// apps/common/idx.cpp — see idx.h.
#include "apps/common/idx.h"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <filesystem>
#include <memory>

namespace engram::apps {

namespace {

constexpr uint8_t kUnsignedByte = 0x08;  // IDX element-type code for uint8
constexpr int64_t kMaxElements = int64_t(1) << 32;  // refuse absurd headers before allocating

// Owns a gzFile so every early error still closes the file.
struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};
using GzHandle = std::unique_ptr<gzFile_s, GzCloser>;

// Reads up to n bytes; returns how many were read (fewer only at end of file). A zlib error
// (corrupt gzip stream, truncated compressed data) is reported with the file name.
int64_t read_bytes(gzFile f, const std::string& path, uint8_t* out, int64_t n) {
  int64_t done = 0;
  while (done < n) {
    // gzread takes an unsigned count and returns an int, so read in chunks below INT_MAX.
    unsigned chunk = unsigned(std::min<int64_t>(n - done, INT_MAX / 2));
    int got = gzread(f, out + done, chunk);
    if (got < 0) {
      int errnum = 0;
      const char* msg = gzerror(f, &errnum);
      ENGRAM_FAIL("{}: read error: {}", path, msg ? msg : "unknown zlib error");
    }
    if (got == 0) break;
    done += got;
  }
  return done;
}

uint32_t big_endian_u32(const uint8_t* b) {
  return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | uint32_t(b[3]);
}

}  // namespace

IdxArray read_idx(const std::string& path, int expected_rank) {
  ENGRAM_CHECK(std::filesystem::is_regular_file(path), "{}: no such file", path);
  GzHandle file(gzopen(path.c_str(), "rb"));
  ENGRAM_CHECK(file != nullptr, "{}: cannot open for reading", path);

  uint8_t magic[4];
  ENGRAM_CHECK(read_bytes(file.get(), path, magic, 4) == 4,
               "{}: truncated IDX file (shorter than the 4-byte magic number)", path);
  ENGRAM_CHECK(magic[0] == 0 && magic[1] == 0,
               "{}: not an IDX file (magic number {:02x}{:02x}{:02x}{:02x} should start with 0000)",
               path, magic[0], magic[1], magic[2], magic[3]);
  ENGRAM_CHECK(magic[2] == kUnsignedByte,
               "{}: IDX element type 0x{:02x} is not supported (only 0x08 = unsigned byte)", path,
               magic[2]);
  int rank = magic[3];
  ENGRAM_CHECK(rank >= 1, "{}: IDX header declares 0 dimensions", path);
  ENGRAM_CHECK(expected_rank <= 0 || rank == expected_rank,
               "{}: expected a {}-dimensional IDX file (magic 0x000008{:02x}), got {} dimensions",
               path, expected_rank, expected_rank, rank);

  IdxArray arr;
  // Unsigned: the product so far is at most kMaxElements (2^32) and a size below 2^32, so the
  // next product fits in 64 bits and is checked before it can wrap.
  uint64_t count = 1;
  for (int d = 0; d < rank; ++d) {
    uint8_t b[4];
    ENGRAM_CHECK(read_bytes(file.get(), path, b, 4) == 4,
                 "{}: truncated IDX header (dimension {} of {} is missing)", path, d + 1, rank);
    int64_t size = big_endian_u32(b);
    arr.dims.push_back(size);
    count *= uint64_t(size);
    ENGRAM_CHECK(count <= uint64_t(kMaxElements), "{}: IDX header declares too many elements ({})",
                 path, fmt::join(arr.dims, " x "));
  }

  // The buffer grows with the bytes that actually arrive, a chunk at a time, never to what the
  // header promises up front: a 12-byte file whose header claims 2^31 elements must be reported
  // as truncated, not cost 2 GB first (found by tests/fuzz/fuzz_idx.cpp).
  constexpr int64_t kChunk = int64_t(1) << 24;  // 16 MB
  int64_t got = 0;
  while (got < int64_t(count)) {
    const int64_t want = std::min<int64_t>(int64_t(count) - got, kChunk);
    arr.data.resize(size_t(got + want));
    const int64_t n = read_bytes(file.get(), path, arr.data.data() + got, want);
    got += n;
    if (n < want) break;
  }
  arr.data.resize(size_t(got));
  ENGRAM_CHECK(got == int64_t(count),
               "{}: truncated IDX file: header [{}] promises {} bytes of data, found {}", path,
               fmt::join(arr.dims, ", "), count, got);
  uint8_t extra;
  ENGRAM_CHECK(read_bytes(file.get(), path, &extra, 1) == 0,
               "{}: IDX file is longer than its header [{}] says ({} bytes of data expected)",
               path, fmt::join(arr.dims, ", "), count);
  return arr;
}

Tensor load_idx_images(const std::string& path) {
  IdxArray arr = read_idx(path, 3);
  Tensor images = empty({arr.dims[0], arr.dims[1], arr.dims[2]}, DType::f32);
  float* out = images.data<float>();
  for (size_t i = 0; i < arr.data.size(); ++i) out[i] = float(arr.data[i]) / 255.0f;
  return images;
}

Tensor load_idx_labels(const std::string& path) {
  IdxArray arr = read_idx(path, 1);
  Tensor labels = empty({arr.dims[0]}, DType::i64);
  int64_t* out = labels.data<int64_t>();
  for (size_t i = 0; i < arr.data.size(); ++i) out[i] = arr.data[i];
  return labels;
}

// The compressed name first (what Debian ships), then the plain one.
static std::string find_split_file(const std::string& dir, const std::string& stem) {
  for (const char* suffix : {".gz", ""}) {
    std::filesystem::path p = std::filesystem::path(dir) / (stem + suffix);
    if (std::filesystem::is_regular_file(p)) return p.string();
  }
  ENGRAM_FAIL("{}: neither {}.gz nor {} exists", dir, stem, stem);
}

ImageDataset load_mnist_split(const std::string& dir, bool train) {
  std::string prefix = train ? "train" : "t10k";
  std::string images_path = find_split_file(dir, prefix + "-images-idx3-ubyte");
  std::string labels_path = find_split_file(dir, prefix + "-labels-idx1-ubyte");
  ImageDataset ds{load_idx_images(images_path), load_idx_labels(labels_path)};
  ENGRAM_CHECK(ds.images.size(0) == ds.labels.size(0), "{} has {} images but {} has {} labels",
               images_path, ds.images.size(0), labels_path, ds.labels.size(0));
  return ds;
}

}  // namespace engram::apps
