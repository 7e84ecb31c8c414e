// tests/test_idx.cpp — the IDX reader (apps/common/idx.h): tiny IDX files written to a temp dir,
// plain and gzip-compressed, read back; truncated or malformed files give errors naming the file;
// and Debian's Fashion-MNIST test split, where that package is installed.
#include <doctest/doctest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "apps/common/idx.h"

using namespace engram;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the system temp dir, removed when the test ends.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / fmt::format("engram_test_idx_{}", ::getpid());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

// The bytes of an unsigned-byte IDX file: magic 0x000008<rank>, big-endian sizes, data.
std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out = {0, 0, 0x08, uint8_t(dims.size())};
  for (uint32_t d : dims)
    for (int shift : {24, 16, 8, 0}) out.push_back(uint8_t(d >> shift));
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

void write_plain(const fs::path& p, const std::vector<uint8_t>& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

void write_gz(const fs::path& p, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(p.string().c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), unsigned(bytes.size())) == int(bytes.size()));
  gzclose(f);
}

std::vector<uint8_t> read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// Runs fn, which must throw engram::Error, and returns its message.
template <class F> std::string error_of(F fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("expected an engram::Error");
  return "";
}

const std::vector<uint8_t> kPixels = {0, 255, 51, 102, 1, 2, 3, 4, 5, 6, 7, 8};  // [3, 2, 2]
const std::vector<uint8_t> kLabels = {9, 0, 4};

}  // namespace

TEST_CASE("idx: plain and gzip-compressed files read back as f32 images and i64 labels") {
  TempDir tmp;
  write_plain(tmp.path / "images.idx", idx_bytes({3, 2, 2}, kPixels));
  write_gz(tmp.path / "images.idx.gz", idx_bytes({3, 2, 2}, kPixels));
  write_gz(tmp.path / "labels.idx.gz", idx_bytes({3}, kLabels));

  for (const std::string name : {"images.idx", "images.idx.gz"}) {
    INFO(name);  // a std::string: doctest logs a const char* as a pointer
    Tensor images = apps::load_idx_images((tmp.path / name).string());
    CHECK(images.shape() == Shape{3, 2, 2});
    CHECK(images.dtype() == DType::f32);
    std::vector<float> v = images.to_vector<float>();
    for (size_t i = 0; i < kPixels.size(); ++i) CHECK(v[i] == doctest::Approx(kPixels[i] / 255.0));
  }
  Tensor labels = apps::load_idx_labels((tmp.path / "labels.idx.gz").string());
  CHECK(labels.dtype() == DType::i64);
  CHECK(labels.to_vector<int64_t>() == std::vector<int64_t>{9, 0, 4});
}

TEST_CASE("idx: a dataset split pairs images with labels") {
  TempDir tmp;
  write_gz(tmp.path / "t10k-images-idx3-ubyte.gz", idx_bytes({3, 2, 2}, kPixels));
  write_plain(tmp.path / "t10k-labels-idx1-ubyte", idx_bytes({3}, kLabels));
  apps::ImageDataset ds = apps::load_mnist_split(tmp.path.string(), /*train=*/false);
  CHECK(ds.size() == 3);
  CHECK(ds.images.shape() == Shape{3, 2, 2});

  std::string msg = error_of([&] { apps::load_mnist_split(tmp.path.string(), /*train=*/true); });
  CHECK(msg.find("train-images-idx3-ubyte") != std::string::npos);
}

TEST_CASE("idx: truncated, overlong and malformed files give errors naming the file") {
  TempDir tmp;
  std::vector<uint8_t> full = idx_bytes({3, 2, 2}, kPixels);

  fs::path cut = tmp.path / "cut.idx";
  write_plain(cut, std::vector<uint8_t>(full.begin(), full.end() - 5));
  std::string msg = error_of([&] { apps::load_idx_images(cut.string()); });
  CHECK(msg.find(cut.string()) != std::string::npos);
  CHECK(msg.find("truncated") != std::string::npos);

  // A gzip stream cut in the middle: zlib reports it, or the data comes up short.
  fs::path gz = tmp.path / "cut.idx.gz";
  write_gz(gz, full);
  std::vector<uint8_t> compressed = read_all(gz);
  write_plain(gz, std::vector<uint8_t>(compressed.begin(), compressed.begin() + 12));
  msg = error_of([&] { apps::load_idx_images(gz.string()); });
  CHECK(msg.find(gz.string()) != std::string::npos);

  fs::path header_only = tmp.path / "header.idx";
  write_plain(header_only, std::vector<uint8_t>(full.begin(), full.begin() + 6));
  msg = error_of([&] { apps::load_idx_images(header_only.string()); });
  CHECK(msg.find(header_only.string()) != std::string::npos);

  fs::path longer = tmp.path / "long.idx";
  std::vector<uint8_t> extra = full;
  extra.push_back(7);
  write_plain(longer, extra);
  msg = error_of([&] { apps::load_idx_images(longer.string()); });
  CHECK(msg.find("longer than its header") != std::string::npos);

  fs::path labels = tmp.path / "labels.idx";
  write_plain(labels, idx_bytes({3}, kLabels));
  msg = error_of([&] { apps::load_idx_images(labels.string()); });
  CHECK(msg.find(labels.string()) != std::string::npos);
  CHECK(msg.find("3-dimensional") != std::string::npos);

  fs::path bad_magic = tmp.path / "bad.idx";
  std::vector<uint8_t> wrong = full;
  wrong[0] = 0x1f;
  write_plain(bad_magic, wrong);
  msg = error_of([&] { apps::load_idx_images(bad_magic.string()); });
  CHECK(msg.find("not an IDX file") != std::string::npos);

  msg = error_of([&] { apps::load_idx_images((tmp.path / "missing.idx").string()); });
  CHECK(msg.find("missing.idx: no such file") != std::string::npos);
}

TEST_CASE("idx: Debian's Fashion-MNIST test split loads when installed") {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::is_directory(dir)) {
    MESSAGE("skipped: " << dir << " not found (Debian package dataset-fashion-mnist)");
    return;
  }
  apps::ImageDataset test = apps::load_mnist_split(dir, /*train=*/false);
  CHECK(test.images.shape() == Shape{10000, 28, 28});
  CHECK(test.labels.shape() == Shape{10000});
  std::vector<int64_t> labels = test.labels.to_vector<int64_t>();
  CHECK(labels[0] == 9);  // the first test image is an ankle boot
  CHECK(*std::max_element(labels.begin(), labels.end()) == 9);
  CHECK(*std::min_element(labels.begin(), labels.end()) == 0);
  std::vector<float> pixels = test.images.to_vector<float>();
  CHECK(*std::max_element(pixels.begin(), pixels.end()) == 1.0f);
  CHECK(*std::min_element(pixels.begin(), pixels.end()) == 0.0f);
}
