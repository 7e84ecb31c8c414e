// tests/test_cmr_semantic.cpp — memory/cmr/semantic: the semantic similarity matrix SEM behind
// CMR's M^CF_pre = s * SEM. Category similarity by hand; the matrix file format (round trip, and
// malformed files failing with file:line); LSA over tiny hand-made corpora whose structure is
// obvious (two topics sharing no contexts; both the dense and the randomized SVD paths); and, when
// Debian's fortunes are installed, a few PEERS words over the real corpus.
#include <doctest/doctest.h>

#include <filesystem>

#include "memory/cmr/semantic.h"
#include "tests/test_util.h"

using namespace engram;
using namespace engram::testing;
using namespace engram::cmr;

namespace {

using Matrix = std::vector<std::vector<double>>;

// Every matrix the sources return: square P x P, diagonal 0, off-diagonal in [0, 1], and the
// rows and columns of `missing` items all zero.
void check_shape(const Similarity& s, const std::vector<std::string>& pool) {
  REQUIRE(s.matrix.size() == pool.size());
  for (size_t i = 0; i < pool.size(); ++i) {
    REQUIRE(s.matrix[i].size() == pool.size());
    CHECK(s.matrix[i][i] == 0.0);
    const bool missing = std::find(s.missing.begin(), s.missing.end(), pool[i]) != s.missing.end();
    for (size_t j = 0; j < pool.size(); ++j) {
      CHECK(s.matrix[i][j] >= 0.0);
      CHECK(s.matrix[i][j] <= 1.0);
      if (missing) {
        CHECK(s.matrix[i][j] == 0.0);
        CHECK(s.matrix[j][i] == 0.0);
      }
    }
  }
}

double sim(const Similarity& s, const std::vector<std::string>& pool, const std::string& a, const std::string& b) {
  auto at = [&](const std::string& w) { return std::find(pool.begin(), pool.end(), w) - pool.begin(); };
  return s.matrix.at(at(a)).at(at(b));
}

// Letters-only word names: word("food", 3) = "foodd", word("food", 27) = "foodbb".
std::string word(const std::string& stem, int i) {
  std::string w = stem;
  do w += (char)('a' + i % 26), i /= 26;
  while (i > 0);
  return w;
}

// Two topics: documents (separated by "%") of one topic word followed by contexts of its topic
// only, cycling so that every topic word meets every context of its topic.
std::string two_topic_corpus(int words_per_topic, int contexts_per_topic, int repeats) {
  std::string text;
  for (int r = 0; r < repeats; ++r)
    for (const char* topic : {"food", "water"})
      for (int w = 0; w < words_per_topic; ++w) {
        text += word(topic, w);
        for (int c = 0; c < 3; ++c) text += " " + word(std::string(topic) + "ctx", (w + r + c * 7) % contexts_per_topic);
        text += "\n%\n";
      }
  return text;
}

}  // namespace

TEST_CASE("cmr semantic: category similarity by hand") {
  const Similarity s = category_similarity({0, 1, 0, -1, 1});
  const Matrix want = {{0, 0, 1, 0, 0}, {0, 0, 0, 0, 1}, {1, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 1, 0, 0, 0}};
  CHECK(s.matrix == want);
  CHECK(s.missing == std::vector<std::string>{"3"});
  CHECK(contains(s.source, "categories"));
  // One category only: max == min, so nothing to rescale; every pair stays 1.
  CHECK(category_similarity({2, 2, 2}).matrix == Matrix{{0, 1, 1}, {1, 0, 1}, {1, 1, 0}});
  CHECK(category_similarity({}).matrix.empty());
}

TEST_CASE("cmr semantic: matrix file round trip, case-insensitive names, rescaling") {
  TempDir dir;
  // A matrix already in [0, 1] with off-diagonal min 0 and max 1 comes back exactly.
  const std::vector<std::string> pool = {"PIE", "CAKE", "KITE"};
  const Matrix m = {{0, 0.25, 1}, {0, 0, 0.1}, {1, 0.7, 0}};  // row i, column j
  std::string text = "PIE CAKE KITE\n";
  for (const auto& row : m) text += fmt::format("{}\n", fmt::join(row, ", "));
  const std::string path = dir.write("sem.txt", text);
  const Similarity back = similarity_from_file(path, pool);
  CHECK(back.matrix == m);
  CHECK(back.missing.empty());
  CHECK(contains(back.source, path));

  // A subset of the file's items, in another order and case: the pool-ordered submatrix,
  // rescaled over the pool's own pairs (raw 2 and 6 become 0 and 1; the diagonal is zeroed).
  const std::string raw = dir.write("raw.csv", "a,b,c\n\n9,2,5\n6,9,4\n1,3,9\n");
  CHECK(similarity_from_file(raw, {"b", "A"}).matrix == Matrix{{0, 1}, {0, 0}});
  CHECK(similarity_from_file(raw, {"C", "a", "b"}).matrix ==
        Matrix{{0, 0, 2.0 / 5}, {4.0 / 5, 0, 1.0 / 5}, {3.0 / 5, 1, 0}});
}

TEST_CASE("cmr semantic: malformed matrix files name the file and line") {
  TempDir dir;
  const std::vector<std::string> pool = {"a", "b"};
  auto error_for = [&](const std::string& name, const std::string& text) {
    const std::string path = dir.write(name, text);
    return std::make_pair(path, error_of([&] { similarity_from_file(path, pool); }));
  };
  struct Case {
    std::string text, where, what;
  };
  const std::vector<Case> cases = {
      {"a b\n0 1\n1\n", ":3:", "expected 2 numbers, got 1"},
      {"a b\n\n0 x\n1 0\n", ":3:", "'x' is not a finite number"},
      {"a b\n0 nan\n1 0\n", ":2:", "'nan' is not a finite number"},
      {"a b\n0 1e999\n1 0\n", ":2:", "not a finite number"},
      {"a b\n0 1\n", ":2:", "expected 2 rows of numbers after the header, got 1"},
      {"a b\n0 1\n1 0\n1 1\n", ":4:", "more than 2 rows"},
      {"a A\n0 1\n1 0\n", ":1:", "item 'A' appears twice"},
      {"\na c\n0 1\n1 0\n", ":2:", "pool item 'b' is not in the header"},
      {"", ":1:", "no header line"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto [path, err] = error_for(fmt::format("bad{}.txt", i), cases[i].text);
    CHECK_MESSAGE(contains(err, path + cases[i].where), err);
    CHECK_MESSAGE(contains(err, cases[i].what), err);
  }
  const std::string none = dir.file("absent.txt");
  CHECK(contains(error_of([&] { similarity_from_file(none, pool); }), none));
}

TEST_CASE("cmr semantic: LSA on a two-topic corpus (dense SVD)") {
  TempDir dir;
  dir.write("corpus.txt", two_topic_corpus(3, 5, 20));
  const std::vector<std::string> pool = {"fooda", "foodb", "foodc", "watera", "waterb", "UNICORN", "ice cream"};
  LsaOptions opt;
  opt.window = 3, opt.dims = 2;
  const Similarity s = corpus_similarity(pool, {dir.path.string()}, opt);
  check_shape(s, pool);
  CHECK(s.missing == std::vector<std::string>{"UNICORN", "ice cream"});
  // Words of one topic share every context, the two topics none: within ~1, across ~0.
  for (const auto& [a, b] : {std::pair{"fooda", "foodb"}, {"foodb", "foodc"}, {"watera", "waterb"}})
    CHECK_MESSAGE(sim(s, pool, a, b) > 0.9, a << "-" << b << " " << sim(s, pool, a, b));
  for (const auto& [a, b] : {std::pair{"fooda", "watera"}, {"foodc", "waterb"}})
    CHECK_MESSAGE(sim(s, pool, a, b) < 0.1, a << "-" << b << " " << sim(s, pool, a, b));
  // Rescaled: the smallest and largest known off-diagonal values are 0 and 1.
  double lo = 1, hi = 0;
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 5; ++j)
      if (i != j) lo = std::min(lo, s.matrix[i][j]), hi = std::max(hi, s.matrix[i][j]);
  CHECK(lo == doctest::Approx(0.0));
  CHECK(hi == doctest::Approx(1.0));
  CHECK(contains(s.source, "2 SVD dims"));
  CHECK(contains(s.source, "2 of 7 pool items missing"));
}

TEST_CASE("cmr semantic: LSA on a larger two-topic corpus (randomized SVD)") {
  // 2 x (40 words + 30 contexts) = 140 words > 4 (k + p) = 56 for dims 2: the randomized path.
  TempDir dir;
  dir.write("corpus.txt", two_topic_corpus(40, 30, 6));
  std::vector<std::string> pool;
  for (int i = 0; i < 4; ++i) pool.push_back(word("food", i)), pool.push_back(word("water", i));
  LsaOptions opt;
  opt.window = 3, opt.dims = 2;
  const Similarity s = corpus_similarity(pool, {dir.path.string()}, opt);
  check_shape(s, pool);
  CHECK(s.missing.empty());
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) {
      if (i != j) {
        CHECK(s.matrix[2 * i][2 * j] > 0.9);
        CHECK(s.matrix[2 * i + 1][2 * j + 1] > 0.9);
      }
      CHECK(s.matrix[2 * i][2 * j + 1] < 0.1);
    }
}

TEST_CASE("cmr semantic: corpus reading (plurals, document breaks, binary files, errors)") {
  TempDir dir;
  // "cakes" only: found as "cake" when plurals fold, missing when they do not. "lonely" stands alone
  // in its document ("%" ends one), so it has no contexts and no vector. "zebra" is only in a
  // binary file, which a folder scan skips.
  dir.write("a.txt", "sweet cakes bake\n%\nsweet pies bake\n%\nlonely\n%\nsweet cakes oven\n%\nsweet pies oven\n");
  dir.write("b.dat", std::string("zebra zebra sweet\0\1", 19));
  const std::vector<std::string> pool = {"cake", "pie", "lonely", "zebra"};
  LsaOptions opt;
  opt.window = 2, opt.dims = 2;
  const Similarity s = corpus_similarity(pool, {dir.path.string()}, opt);
  check_shape(s, pool);
  CHECK(s.missing == std::vector<std::string>{"lonely", "zebra"});
  CHECK(s.matrix[0][1] == doctest::Approx(1.0));  // one known pair, cosine 1: nothing to rescale
  opt.fold_plurals = false;
  CHECK(corpus_similarity(pool, {dir.path.string()}, opt).missing.size() == 4);

  const std::string absent = dir.file("absent");
  CHECK(contains(error_of([&] { corpus_similarity(pool, {absent}); }), absent));
  const std::string empty = dir.write("empty.txt", "123 ... !!\n");
  CHECK(contains(error_of([&] { corpus_similarity(pool, {empty}); }), "no words"));
  opt.window = 0;
  CHECK(contains(error_of([&] { corpus_similarity(pool, {empty}, opt); }), "window"));
}

TEST_CASE("cmr semantic: PEERS words over Debian's fortunes (skipped without the fortunes)") {
  const std::string fortunes = "/usr/share/games/fortunes";
  if (!std::filesystem::is_directory(fortunes)) {
    MESSAGE("skipped: " << fortunes << " is not installed (Debian package fortunes)");
    return;
  }
  const std::vector<std::string> pool = {"CAKE", "PIE", "BREAD", "RIVER", "SEA", "MOUNTAIN", "DOG", "CAT", "KING"};
  LsaOptions opt;
  opt.window = 5, opt.dims = 30, opt.max_vocab = 2000;  // small and fast; the defaults take seconds
  const Similarity s = corpus_similarity(pool, {fortunes}, opt);
  check_shape(s, pool);
  CHECK(s.missing.empty());
  // Relations that hold at every window (3, 5), dims (20-50) and max_vocab (1000-4000) tried.
  CHECK(sim(s, pool, "CAKE", "PIE") > sim(s, pool, "CAKE", "RIVER"));
  CHECK(sim(s, pool, "RIVER", "SEA") > sim(s, pool, "RIVER", "CAKE"));
  CHECK(sim(s, pool, "DOG", "CAT") > sim(s, pool, "DOG", "RIVER"));
  CHECK(sim(s, pool, "DOG", "CAT") > sim(s, pool, "DOG", "KING"));
}
