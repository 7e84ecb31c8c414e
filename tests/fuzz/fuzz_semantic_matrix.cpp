// tests/fuzz/fuzz_semantic_matrix.cpp — fuzzes the similarity-matrix file reader of the CMR app
// (memory/cmr/semantic.cpp, similarity_from_file): the header line of item names, rows of numbers
// separated by whitespace or commas, the matching of the pool to the header. The input is written
// to a temporary file and read against a fixed pool of three items; an accepted matrix must be
// what semantic.h promises: P x P, off-diagonal in [0, 1], diagonal 0 (so never NaN).
#include <cmath>

#include "memory/cmr/semantic.h"
#include "tests/fuzz/fuzz_util.h"

using namespace engram;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_temp("similarity.txt", data, size);
  const std::vector<std::string> pool = {"apple", "Banana", "cherry"};
  try {
    cmr::Similarity s = cmr::similarity_from_file(path, pool);
    if (s.matrix.size() != pool.size()) std::abort();
    for (size_t i = 0; i < pool.size(); ++i) {
      if (s.matrix[i].size() != pool.size() || s.matrix[i][i] != 0) std::abort();
      for (double x : s.matrix[i])
        if (!(x >= 0 && x <= 1)) {
          std::fprintf(stderr, "fuzz: similarity %g outside [0, 1]\n", x);
          std::abort();
        }
    }
  } catch (const Error& e) {
    fuzz::check_names_source(e, path);
  }
  return 0;
}
