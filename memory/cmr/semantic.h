// memory/cmr/semantic.h — semantic similarity between the items of a pool, for CMR's
// pre-experimental associations M^CF_pre = s * SEM (Polyn, Norman & Kahana 2009).
//
// Three sources, each giving SEM [P, P] (P = pool size) with the diagonal zeroed:
//   categories  1 between two items of the same category, 0 across (a coarse SEM for data sets
//               that label categories, such as Morton et al. 2013).
//   file        a matrix read from a text file: a header line with the P item names, then P rows
//               of P numbers (whitespace or comma separated); items matched to the pool by name
//               (case-insensitive); a missing item or a malformed row is an error naming the file
//               and line.
//   corpus      LSA's recipe (Deerwester et al. 1990; Landauer & Dumais 1997): a term x context
//               co-occurrence matrix over a text corpus (words within +-window of each other),
//               weighted by PPMI, a truncated SVD (LAPACK) keeping `dims` dimensions, word vectors
//               U_k S_k, similarity = cosine. Pool items missing from the corpus get similarity 0
//               to everything (and are counted in `missing`).
// Every source then rescales the off-diagonal to [0, 1] by (x - min) / (max - min), as
// cmr-matlab's prep_sem_mat.m does, and zeroes the diagonal.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace engram::cmr {

struct Similarity {
  std::vector<std::vector<double>> matrix;  // [P][P], off-diagonal in [0, 1], diagonal 0
  std::string source;                       // a one-line description for logs and READMEs
  std::vector<std::string> missing;         // pool items the source knew nothing about (for
                                            // categories: the pool indices, in decimal)
};

Similarity category_similarity(const std::vector<int64_t>& pool_categories);
Similarity similarity_from_file(const std::string& path, const std::vector<std::string>& pool);

struct LsaOptions {
  int64_t window = 5;        // co-occurrence within +-window words
  int64_t dims = 100;        // SVD dimensions kept
  int64_t max_vocab = 20000; // most frequent words kept as contexts (pool words always kept)
  bool fold_plurals = true;  // count "cakes", "boxes", "berries" as the pool words cake, box, berry
};
// Reads every regular file of `corpus_paths` (files or folders, not recursive beyond one level;
// in a folder, symbolic links and binary files, i.e. with a NUL byte, are skipped), lower-cases and
// splits on non-letters; a line that is exactly "%" (fortune's separator) ends a document.
Similarity corpus_similarity(const std::vector<std::string>& pool,
                             const std::vector<std::string>& corpus_paths, const LsaOptions& opt = {});

}  // namespace engram::cmr
