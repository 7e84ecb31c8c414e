// apps/common/idx.h — reader for IDX files, the format of MNIST and Fashion-MNIST.
//
// An IDX file is a 4-byte magic number, the dimension sizes, then the raw elements:
//
//     bytes 0-1   zero
//     byte  2     element type (0x08 = unsigned byte, the only one these datasets use)
//     byte  3     number of dimensions D
//     then D big-endian uint32 sizes, then prod(sizes) elements in row-major order.
//
// So images are 0x00000803 [N, rows, cols] and labels 0x00000801 [N]. Files may be stored
// gzip-compressed (Debian's dataset-fashion-mnist ships train-images-idx3-ubyte.gz etc.); zlib's
// gzread reads both compressed and plain files, so one code path serves both. Every malformed
// file (bad magic, wrong rank, a data section shorter or longer than the header promises) is an
// engram::Error naming the file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace engram::apps {

// The raw contents of an unsigned-byte IDX file.
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;  // prod(dims) bytes, row-major
};

// Reads `path` (gzip-compressed or plain). `expected_rank` > 0 checks the number of dimensions.
IdxArray read_idx(const std::string& path, int expected_rank = 0);

// Images as f32 [N, rows, cols] scaled from 0..255 to [0, 1].
Tensor load_idx_images(const std::string& path);
// Labels as i64 [N].
Tensor load_idx_labels(const std::string& path);

// One split of an MNIST-style dataset: images f32 [N, 28, 28] and labels i64 [N].
struct ImageDataset {
  Tensor images, labels;
  int64_t size() const { return labels.numel(); }
};

// Loads `dir`/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] (the .gz name is tried first)
// and checks that images and labels agree in count.
ImageDataset load_mnist_split(const std::string& dir, bool train);

}  // namespace engram::apps
