// memory/cmr/semantic.cpp — the semantic similarity matrix SEM [P, P] behind CMR's pre-experimental
// associations M^CF_pre = s * SEM (Polyn, Norman & Kahana 2009), from category labels, a matrix
// file or a text corpus (see semantic.h for the three sources and the file format).
//
// Corpus similarity is LSA's recipe (Deerwester et al. 1990; Landauer & Dumais 1997) over
// word-window contexts, as in the PPMI + SVD models of Bullinaria & Levy (2007) and Levy,
// Goldberg & Dagan (2015):
//   1. Tokens: each file lower-cased and split on non-letters (ASCII a-z; other bytes split). A
//      line that is exactly "%" (the fortune(6) separator) ends a document: windows do not cross
//      it. With fold_plurals, a token that is not a pool word but is a pool word plus "s", "es"
//      or with "y" -> "ies" counts as that pool word (cakes -> cake, boxes -> box).
//   2. Vocabulary V: the max_vocab most frequent words (ties alphabetical) plus every pool word
//      found. The same V indexes rows (terms) and columns (contexts).
//   3. Counts N(w, c) = how often c lies within +-window tokens of w in one document.
//   4. PPMI(w, c) = max(0, log(N(w, c) N / (N(w) N(c)))), N(w) = sum_c N(w, c), N = sum N(w, c).
//      (Levy et al. 2015's context smoothing N(c)^0.75 was tried and scored worse on fortunes.)
//   5. Truncated SVD PPMI ~ U_k S_k V_k^T, k = dims. The matrix is sparse, so for |V| > 4 (k + p)
//      it is the randomized subspace iteration of Halko, Martinsson & Tropp (2011, Alg. 4.4;
//      scikit-learn's TruncatedSVD): Omega ~ N(0, 1) [|V|, k + p] with p = k + 10 oversampling,
//      Q = orth(A Omega), then q = 8 times Q = orth(A orth(A^T Q)); B = Q^T A; B = U_B S V^T
//      (LAPACKE_dgesdd); U = Q U_B. orth is CholeskyQR2, or LAPACKE_dgeqrf + dorgqr when Y is
//      near rank-deficient. Smaller matrices take LAPACKE_dgesdd of the dense matrix. Seeded, so
//      deterministic. On the PEERS pool over fortunes (max_vocab 2000, 3169 x 3169, k = 100) its
//      similarities match the dense dgesdd's to 0.005 on average (0.04 at most) in 1/10 the time.
//   6. Word vector x_w = (U_k S_k)[w]; SEM(i, j) = cos(x_i, x_j). A pool item that is not in the
//      corpus (or whose vector is zero) is "missing": its row and column are 0.
// Every source then rescales the off-diagonal over pairs of known items, x -> (x - min) /
// (max - min) (cmr-matlab's prep_sem_mat.m), and zeroes the diagonal. When max == min there is
// nothing to rescale: the values are clamped to [0, 1] instead (all-one categories stay 1).
#include "memory/cmr/semantic.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numbers>
#include <numeric>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"

namespace engram::cmr {
namespace {

namespace fs = std::filesystem;
using Matrix = std::vector<std::vector<double>>;

std::string lower(std::string s) {
  for (char& ch : s) ch = (char)std::tolower((unsigned char)ch);
  return s;
}

// The off-diagonal of the known x known block to [0, 1] by min/range; everything else 0.
void rescale(Similarity& sim, const std::vector<bool>& known) {
  Matrix& m = sim.matrix;
  const size_t P = m.size();
  double lo = INFINITY, hi = -INFINITY;
  for (size_t i = 0; i < P; ++i)
    for (size_t j = 0; j < P; ++j)
      if (i != j && known[i] && known[j]) lo = std::min(lo, m[i][j]), hi = std::max(hi, m[i][j]);
  // When hi - lo overflows (values near +-1e308: (x - lo) / (hi - lo) was inf / inf = NaN, found
  // by tests/fuzz/fuzz_semantic_matrix.cpp), everything is divided by the largest magnitude first.
  const double scale = std::max(std::abs(lo), std::abs(hi));
  const double s = std::isfinite(hi - lo) || !std::isfinite(scale) ? 1.0 : scale;
  const double lo_s = lo / s, hi_s = hi / s;
  for (size_t i = 0; i < P; ++i)
    for (size_t j = 0; j < P; ++j) {
      double& x = m[i][j];
      if (i == j || !known[i] || !known[j]) x = 0;
      else x = hi > lo ? std::clamp((x / s - lo_s) / (hi_s - lo_s), 0.0, 1.0) : std::clamp(x, 0.0, 1.0);
    }
}

// Fields of a matrix-file line: separated by whitespace and commas.
std::vector<std::string> fields(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : line) {
    if (ch == ',' || std::isspace((unsigned char)ch)) {
      if (!cur.empty()) out.push_back(std::move(cur)), cur.clear();
    } else {
      cur += ch;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

// ---- corpus reading

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  ENGRAM_CHECK(in, "corpus_similarity: cannot read {}", p.string());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The files of the corpus: named files as they are; a folder's regular files (not symbolic
// links, which would count a file twice, e.g. fortune's *.u8) that hold no NUL byte (binary
// files such as strfile's *.dat indexes), in name order.
std::vector<std::pair<std::string, std::string>> corpus_files(const std::vector<std::string>& paths) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const std::string& path : paths) {
    std::error_code ec;
    if (fs::is_regular_file(path, ec)) {
      out.emplace_back(path, read_all(path));
    } else if (fs::is_directory(path, ec)) {
      std::vector<fs::path> names;
      for (const auto& e : fs::directory_iterator(path))
        if (e.is_regular_file() && !e.is_symlink()) names.push_back(e.path());
      std::sort(names.begin(), names.end());
      for (const auto& p : names) {
        std::string text = read_all(p);
        if (text.find('\0') == std::string::npos) out.emplace_back(p.string(), std::move(text));
      }
    } else {
      ENGRAM_FAIL("corpus_similarity: {}: no such file or folder", path);
    }
  }
  return out;
}

// Appends the documents of one text to docs as word ids (new words are added to ids/words).
void tokenize(const std::string& text, std::unordered_map<std::string, int32_t>& ids,
              std::vector<std::string>& words, std::vector<std::vector<int32_t>>& docs) {
  docs.emplace_back();
  std::string word;
  auto flush = [&] {
    if (word.empty()) return;
    auto [it, added] = ids.try_emplace(word, (int32_t)words.size());
    if (added) words.push_back(word);
    docs.back().push_back(it->second);
    word.clear();
  };
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line == "%") {
      flush();
      if (!docs.back().empty()) docs.emplace_back();
    } else {
      for (char ch : line) {
        if (std::isalpha((unsigned char)ch) && (unsigned char)ch < 128) word += (char)std::tolower((unsigned char)ch);
        else flush();
      }
      flush();
    }
    pos = end + 1;
  }
  if (docs.back().empty()) docs.pop_back();
}

// ---- sparse matrix and the randomized truncated SVD

struct Csr {
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> start;  // [rows + 1]
  std::vector<int32_t> col;
  std::vector<double> val;
};

Csr transpose(const Csr& a) {
  Csr t;
  t.rows = a.cols, t.cols = a.rows;
  t.start.assign(t.rows + 1, 0);
  for (int32_t c : a.col) ++t.start[c + 1];
  for (int64_t r = 0; r < t.rows; ++r) t.start[r + 1] += t.start[r];
  t.col.resize(a.col.size()), t.val.resize(a.val.size());
  std::vector<int64_t> next(t.start.begin(), t.start.end() - 1);
  for (int64_t r = 0; r < a.rows; ++r)
    for (int64_t e = a.start[r]; e < a.start[r + 1]; ++e) {
      const int64_t dst = next[a.col[e]]++;
      t.col[dst] = (int32_t)r, t.val[dst] = a.val[e];
    }
  return t;
}

// y [a.rows, l] = a x, x [a.cols, l], both row-major.
std::vector<double> spmm(const Csr& a, const std::vector<double>& x, int64_t l) {
  std::vector<double> y(a.rows * l, 0.0);
#pragma omp parallel for schedule(dynamic, 256)
  for (int64_t r = 0; r < a.rows; ++r) {
    double* yr = y.data() + r * l;
    for (int64_t e = a.start[r]; e < a.start[r + 1]; ++e) {
      const double v = a.val[e];
      const double* xc = x.data() + (int64_t)a.col[e] * l;
      for (int64_t t = 0; t < l; ++t) yr[t] += v * xc[t];
    }
  }
  return y;
}

// One pass of Cholesky QR: Y <- Y R^-1 with R^T R = Y^T Y (BLAS-3, several times faster than
// Householder); false, leaving Y's span unchanged, when Y is too ill-conditioned for it.
bool cholesky_qr(std::vector<double>& y, int64_t m, int64_t n) {
  std::vector<double> g(n * n, 0.0);
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n, m, 1.0, y.data(), n, 0.0, g.data(), n);
  if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', n, g.data(), n) != 0) return false;
  double lo = INFINITY, hi = 0;
  for (int64_t i = 0; i < n; ++i) lo = std::min(lo, std::abs(g[i * n + i])), hi = std::max(hi, std::abs(g[i * n + i]));
  if (!(lo > 1e-6 * hi)) return false;
  cblas_dtrsm(CblasRowMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, m, n, 1.0, g.data(), n, y.data(), n);
  return true;
}

// Orthonormal columns spanning y [m, n] (m >= n), in place: CholeskyQR2 (Fukaya et al. 2014),
// or Householder QR when Y is close to rank-deficient.
void orthonormalize(std::vector<double>& y, int64_t m, int64_t n) {
  if (cholesky_qr(y, m, n) && cholesky_qr(y, m, n)) return;
  std::vector<double> tau(n);
  lapack_int info = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, m, n, y.data(), n, tau.data());
  ENGRAM_CHECK(info == 0, "corpus_similarity: dgeqrf failed (info {})", info);
  info = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, m, n, n, y.data(), n, tau.data());
  ENGRAM_CHECK(info == 0, "corpus_similarity: dorgqr failed (info {})", info);
}

// Thin SVD of a dense row-major [m, n] matrix (destroyed): u [m, r], s [r], r = min(m, n).
void dense_svd(std::vector<double>& a, int64_t m, int64_t n, std::vector<double>& u, std::vector<double>& s) {
  const int64_t r = std::min(m, n);
  u.assign(m * r, 0.0), s.assign(r, 0.0);
  std::vector<double> vt(r * n);
  lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', m, n, a.data(), n, s.data(), u.data(), r, vt.data(), n);
  ENGRAM_CHECK(info == 0, "corpus_similarity: dgesdd failed (info {})", info);
}

// Rows `want` of U_k S_k for the sparse matrix a: out[i] has k entries.
Matrix truncated_svd_rows(const Csr& a, int64_t k, const std::vector<int64_t>& want) {
  const int64_t m = a.rows, n = a.cols;
  std::vector<double> u, s;  // u [m, r] (only `want` rows are read), s [r]
  int64_t r = 0;
  const int64_t l = 2 * k + 10;
  if (std::min(m, n) <= 4 * l) {
    std::vector<double> dense(m * n, 0.0);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t e = a.start[i]; e < a.start[i + 1]; ++e) dense[i * n + a.col[e]] = a.val[e];
    dense_svd(dense, m, n, u, s);
    r = std::min(m, n);
  } else {
    const Csr at = transpose(a);
    std::vector<double> omega(n * l);
    uint64_t state = 0x9E3779B97F4A7C15ull;  // splitmix64 + Box-Muller: the same Omega everywhere
    auto uniform = [&] {
      uint64_t z = (state += 0x9E3779B97F4A7C15ull);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull, z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      return ((z ^ (z >> 31)) >> 11) * 0x1.0p-53 + 0x1.0p-54;
    };
    for (double& w : omega) w = std::sqrt(-2 * std::log(uniform())) * std::cos(2 * std::numbers::pi * uniform());
    std::vector<double> q = spmm(a, omega, l);
    orthonormalize(q, m, l);
    for (int iter = 0; iter < 8; ++iter) {
      std::vector<double> z = spmm(at, q, l);
      orthonormalize(z, n, l);
      q = spmm(a, z, l);
      orthonormalize(q, m, l);
    }
    const std::vector<double> bt = spmm(at, q, l);  // B^T = A^T Q [n, l]
    std::vector<double> b(l * n);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t t = 0; t < l; ++t) b[t * n + i] = bt[i * l + t];
    std::vector<double> ub;
    dense_svd(b, l, n, ub, s);  // ub [l, l]
    // Only the wanted rows of U = Q U_B.
    u.assign(m * l, 0.0);
    for (int64_t w : want)
      for (int64_t t = 0; t < l; ++t)
        for (int64_t j = 0; j < l; ++j) u[w * l + j] += q[w * l + t] * ub[t * l + j];
    r = l;
  }
  k = std::min(k, r);
  Matrix out;
  for (int64_t w : want) {
    std::vector<double> x(k);
    for (int64_t j = 0; j < k; ++j) x[j] = u[w * r + j] * s[j];
    out.push_back(std::move(x));
  }
  return out;
}

}  // namespace

Similarity category_similarity(const std::vector<int64_t>& pool_categories) {
  const size_t P = pool_categories.size();
  Similarity sim;
  sim.matrix.assign(P, std::vector<double>(P, 0.0));
  std::vector<bool> known(P);
  std::unordered_set<int64_t> cats;
  for (size_t i = 0; i < P; ++i) {
    known[i] = pool_categories[i] >= 0;
    if (known[i]) cats.insert(pool_categories[i]);
    else sim.missing.push_back(std::to_string(i));
    for (size_t j = 0; j < P; ++j) sim.matrix[i][j] = pool_categories[i] == pool_categories[j] ? 1.0 : 0.0;
  }
  rescale(sim, known);
  sim.source = fmt::format("categories: 1 within, 0 across ({} items, {} categories, {} unlabelled)", P,
                           cats.size(), sim.missing.size());
  return sim;
}

Similarity similarity_from_file(const std::string& path, const std::vector<std::string>& pool) {
  std::ifstream in(path);
  ENGRAM_CHECK(in, "{}: cannot open", path);
  std::vector<std::string> names;
  std::unordered_map<std::string, int64_t> index;
  Matrix values;
  int64_t lineno = 0, header_line = 0;
  std::string line;
  while (std::getline(in, line)) {
    ++lineno;
    const std::vector<std::string> f = fields(line);
    if (f.empty()) continue;
    if (names.empty()) {
      header_line = lineno;
      for (const std::string& name : f) {
        ENGRAM_CHECK(index.emplace(lower(name), (int64_t)names.size()).second,
                     "{}:{}: item '{}' appears twice in the header", path, lineno, name);
        names.push_back(name);
      }
      continue;
    }
    ENGRAM_CHECK(values.size() < names.size(), "{}:{}: more than {} rows of numbers", path, lineno, names.size());
    ENGRAM_CHECK(f.size() == names.size(), "{}:{}: expected {} numbers, got {}", path, lineno, names.size(), f.size());
    std::vector<double> row;
    for (const std::string& s : f) {
      char* end = nullptr;
      const double x = std::strtod(s.c_str(), &end);
      ENGRAM_CHECK(end == s.c_str() + s.size() && std::isfinite(x), "{}:{}: '{}' is not a finite number", path,
                   lineno, s);
      row.push_back(x);
    }
    values.push_back(std::move(row));
  }
  ENGRAM_CHECK(!names.empty(), "{}:{}: no header line of item names", path, lineno + 1);
  ENGRAM_CHECK(values.size() == names.size(), "{}:{}: expected {} rows of numbers after the header, got {}", path,
               lineno, names.size(), values.size());
  const size_t P = pool.size();
  std::vector<int64_t> at(P);
  for (size_t i = 0; i < P; ++i) {
    auto it = index.find(lower(pool[i]));
    ENGRAM_CHECK(it != index.end(), "{}:{}: pool item '{}' is not in the header", path, header_line, pool[i]);
    at[i] = it->second;
  }
  Similarity sim;
  sim.matrix.assign(P, std::vector<double>(P, 0.0));
  for (size_t i = 0; i < P; ++i)
    for (size_t j = 0; j < P; ++j) sim.matrix[i][j] = values[at[i]][at[j]];
  rescale(sim, std::vector<bool>(P, true));
  sim.source = fmt::format("matrix file {} ({} items, {} used)", path, names.size(), P);
  return sim;
}

Similarity corpus_similarity(const std::vector<std::string>& pool, const std::vector<std::string>& corpus_paths,
                             const LsaOptions& opt) {
  ENGRAM_CHECK(opt.window >= 1 && opt.dims >= 1 && opt.max_vocab >= 1,
               "corpus_similarity: window, dims and max_vocab must be >= 1 (got {}, {}, {})", opt.window, opt.dims,
               opt.max_vocab);
  // 1. Tokens (raw word ids), then the plural fold onto pool words.
  const auto files = corpus_files(corpus_paths);
  std::unordered_map<std::string, int32_t> raw_ids;
  std::vector<std::string> raw_words;
  std::vector<std::vector<int32_t>> docs;
  for (const auto& [name, text] : files) tokenize(text, raw_ids, raw_words, docs);
  int64_t tokens = 0;
  for (const auto& d : docs) tokens += (int64_t)d.size();
  ENGRAM_CHECK(tokens > 0, "corpus_similarity: no words in {} ({} files)", fmt::join(corpus_paths, ", "), files.size());

  std::unordered_set<std::string> pool_words;
  for (const std::string& p : pool) pool_words.insert(lower(p));
  std::unordered_map<std::string, int32_t> ids;  // final word types
  std::vector<std::string> words;
  auto id_of = [&](const std::string& w) {
    auto [it, added] = ids.try_emplace(w, (int32_t)words.size());
    if (added) words.push_back(w);
    return it->second;
  };
  std::vector<int32_t> remap(raw_words.size());
  for (size_t r = 0; r < raw_words.size(); ++r) {
    const std::string& w = raw_words[r];
    std::string to = w;
    if (opt.fold_plurals && !pool_words.count(w) && w.size() > 3 && w.back() == 's') {
      const std::string ies = w.ends_with("ies") ? w.substr(0, w.size() - 3) + "y" : "";
      const std::string es = w.ends_with("es") ? w.substr(0, w.size() - 2) : "";
      const std::string s = w.substr(0, w.size() - 1);
      for (const std::string& c : {ies, es, s})
        if (!c.empty() && pool_words.count(c)) {
          to = c;
          break;
        }
    }
    remap[r] = id_of(to);
  }
  std::vector<int64_t> count(words.size(), 0);
  for (auto& d : docs)
    for (int32_t& t : d) ++count[t = remap[t]];

  // 2. Vocabulary: the max_vocab most frequent words plus the pool words found.
  std::vector<int32_t> order(words.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return count[a] != count[b] ? count[a] > count[b] : words[a] < words[b];
  });
  std::vector<int32_t> vocab_of(words.size(), -1);
  int32_t V = 0;
  for (int32_t w : order)
    if (V < opt.max_vocab || pool_words.count(words[w])) vocab_of[w] = V++;

  // 3. Window co-occurrence counts, as sorted (row << 32 | col) keys, compacted as they grow.
  std::vector<std::pair<uint64_t, double>> counts;  // sorted by key
  std::vector<uint64_t> pending;
  auto compact = [&] {
    std::sort(pending.begin(), pending.end());
    std::vector<std::pair<uint64_t, double>> run;
    for (size_t i = 0; i < pending.size();) {
      size_t j = i;
      while (j < pending.size() && pending[j] == pending[i]) ++j;
      run.emplace_back(pending[i], (double)(j - i));
      i = j;
    }
    pending.clear();
    std::vector<std::pair<uint64_t, double>> merged;
    merged.reserve(counts.size() + run.size());
    size_t a = 0, b = 0;
    while (a < counts.size() || b < run.size()) {
      if (b == run.size() || (a < counts.size() && counts[a].first < run[b].first)) merged.push_back(counts[a++]);
      else if (a == counts.size() || run[b].first < counts[a].first) merged.push_back(run[b++]);
      else merged.emplace_back(counts[a].first, counts[a].second + run[b].second), ++a, ++b;
    }
    counts.swap(merged);
  };
  for (const auto& d : docs) {
    for (size_t i = 0; i < d.size(); ++i) {
      const int64_t vi = vocab_of[d[i]];
      if (vi < 0) continue;
      for (size_t j = i + 1; j < d.size() && j <= i + (size_t)opt.window; ++j) {
        const int64_t vj = vocab_of[d[j]];
        if (vj < 0) continue;
        pending.push_back((uint64_t)vi << 32 | (uint64_t)vj);
        pending.push_back((uint64_t)vj << 32 | (uint64_t)vi);
      }
    }
    if (pending.size() > (size_t{1} << 24)) compact();
  }
  compact();

  // 4. PPMI as a CSR matrix [V, V].
  std::vector<double> row_sum(V, 0.0), col_sum(V, 0.0);
  for (const auto& [key, n] : counts) row_sum[key >> 32] += n, col_sum[key & 0xFFFFFFFFu] += n;
  double total = 0;
  for (double c : col_sum) total += c;
  Csr a;
  a.rows = a.cols = V;
  a.start.assign(V + 1, 0);
  for (const auto& [key, n] : counts) {
    const int64_t w = (int64_t)(key >> 32), c = (int64_t)(key & 0xFFFFFFFFu);
    const double pmi = std::log(n * total / (row_sum[w] * col_sum[c]));
    if (pmi <= 0) continue;
    ++a.start[w + 1];
    a.col.push_back((int32_t)c), a.val.push_back(pmi);
  }
  for (int64_t r = 0; r < V; ++r) a.start[r + 1] += a.start[r];

  // 5-6. Pool word vectors U_k S_k and their cosines.
  const size_t P = pool.size();
  std::vector<int64_t> row_of(P, -1), want;
  for (size_t i = 0; i < P; ++i) {
    auto it = ids.find(lower(pool[i]));
    if (it != ids.end() && vocab_of[it->second] >= 0) row_of[i] = vocab_of[it->second];
    if (row_of[i] >= 0) want.push_back(row_of[i]);
  }
  const Matrix vecs = want.empty() ? Matrix{} : truncated_svd_rows(a, opt.dims, want);
  std::vector<std::vector<double>> x(P);
  std::vector<double> norm(P, 0.0);
  double max_norm = 0;
  for (size_t i = 0, next = 0; i < P; ++i) {
    if (row_of[i] < 0) continue;
    x[i] = vecs[next++];
    for (double v : x[i]) norm[i] += v * v;
    norm[i] = std::sqrt(norm[i]);
    max_norm = std::max(max_norm, norm[i]);
  }
  Similarity sim;
  sim.matrix.assign(P, std::vector<double>(P, 0.0));
  std::vector<bool> known(P);
  for (size_t i = 0; i < P; ++i) {
    known[i] = row_of[i] >= 0 && norm[i] > 1e-12 * max_norm;
    if (!known[i]) sim.missing.push_back(pool[i]);
  }
  for (size_t i = 0; i < P; ++i)
    for (size_t j = i + 1; j < P && known[i]; ++j) {
      if (!known[j]) continue;
      double dot = 0;
      for (size_t t = 0; t < x[i].size(); ++t) dot += x[i][t] * x[j][t];
      sim.matrix[i][j] = sim.matrix[j][i] = dot / (norm[i] * norm[j]);
    }
  rescale(sim, known);
  sim.source = fmt::format(
      "LSA over {} files ({} tokens, {} words kept): window +-{}, PPMI, {} SVD dims, "
      "cosine; {} of {} pool items missing",
      files.size(), tokens, V, opt.window, std::min<int64_t>(opt.dims, V), sim.missing.size(),
      P);
  return sim;
}

}  // namespace engram::cmr
