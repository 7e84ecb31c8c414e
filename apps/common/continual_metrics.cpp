// apps/common/continual_metrics.cpp — see continual_metrics.h: ACC, BWT, forgetting, average
// incremental accuracy of an accuracy matrix, and its CSV / JSON / heatmap writers.
#include "apps/common/continual_metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "apps/common/metrics.h"
#include "core/error.h"

namespace engram::apps {

namespace fs = std::filesystem;

AccuracyMatrix make_accuracy_matrix(int64_t tasks) {
  ENGRAM_CHECK(tasks >= 1, "accuracy matrix: needs at least 1 task, got {}", tasks);
  return AccuracyMatrix((size_t)tasks, std::vector<double>((size_t)tasks, NAN));
}

namespace {

// Checks R is square and resolves k (-1 = the last task).
int64_t last_task(const AccuracyMatrix& R, int64_t k, const char* what) {
  const int64_t T = (int64_t)R.size();
  ENGRAM_CHECK(T >= 1, "{}: empty accuracy matrix", what);
  for (const auto& row : R)
    ENGRAM_CHECK((int64_t)row.size() == T, "{}: accuracy matrix is not square ({} rows, a row of {})",
                 what, T, row.size());
  if (k < 0) k = T - 1;
  ENGRAM_CHECK(k < T, "{}: task {} outside 0..{}", what, k, T - 1);
  return k;
}

double at(const AccuracyMatrix& R, int64_t i, int64_t j, const char* what) {
  const double v = R[(size_t)i][(size_t)j];
  ENGRAM_CHECK(!std::isnan(v), "{}: R[{}][{}] (task {} tested after training task {}) was not measured",
               what, i, j, j + 1, i + 1);
  return v;
}

}  // namespace

double average_accuracy(const AccuracyMatrix& R, int64_t k) {
  k = last_task(R, k, "average_accuracy");
  double s = 0;
  for (int64_t j = 0; j <= k; ++j) s += at(R, k, j, "average_accuracy");
  return s / (double)(k + 1);
}

double backward_transfer(const AccuracyMatrix& R, int64_t k) {
  k = last_task(R, k, "backward_transfer");
  if (k == 0) return NAN;
  // The paper's (1/(T-1)) sum_{j<T}, not GEM code's mean over all T (which is (T-1)/T of this).
  double s = 0;
  for (int64_t j = 0; j < k; ++j) s += at(R, k, j, "backward_transfer") - at(R, j, j, "backward_transfer");
  return s / (double)k;
}

double forgetting(const AccuracyMatrix& R, int64_t k) {
  k = last_task(R, k, "forgetting");
  if (k == 0) return NAN;
  double s = 0;
  for (int64_t j = 0; j < k; ++j) {
    // max over l < k of R[l][j]; entries with l < j (task j not yet trained) are included as in
    // agem's compute_fgt (np.max(data[:T, i])) when measured, and skipped when NaN.
    double best = -INFINITY;
    for (int64_t l = 0; l < k; ++l)
      if (l >= j || !std::isnan(R[(size_t)l][(size_t)j])) best = std::max(best, at(R, l, j, "forgetting"));
    s += best - at(R, k, j, "forgetting");
  }
  return s / (double)k;
}

double average_incremental_accuracy(const AccuracyMatrix& R, int64_t k) {
  k = last_task(R, k, "average_incremental_accuracy");
  double s = 0;
  for (int64_t t = 0; t <= k; ++t) s += average_accuracy(R, t);
  return s / (double)(k + 1);
}

ContinualSummary summarize(const AccuracyMatrix& R, int64_t k) {
  k = last_task(R, k, "summarize");
  return ContinualSummary{k + 1, average_accuracy(R, k), backward_transfer(R, k), forgetting(R, k),
                          average_incremental_accuracy(R, k)};
}

namespace {

std::string num(double v, const char* nan_as) {
  return std::isfinite(v) ? fmt::format("{:.6g}", v) : std::string(nan_as);
}

std::string open_path(const std::string& dir, const std::string& name) {
  fs::create_directories(dir);
  return (fs::path(dir) / name).string();
}

}  // namespace

std::string write_accuracy_csv(const std::string& dir, const AccuracyMatrix& R,
                               const std::string& base) {
  last_task(R, -1, "write_accuracy_csv");
  const std::string path = open_path(dir, base + ".csv");
  std::ofstream f(path);
  ENGRAM_CHECK(f.good(), "cannot write {}", path);
  f << "trained";
  for (size_t j = 0; j < R.size(); ++j) f << ",task_" << j + 1;
  f << "\n";
  for (size_t i = 0; i < R.size(); ++i) {
    f << i + 1;
    for (double v : R[i]) f << "," << num(v, "");
    f << "\n";
  }
  ENGRAM_CHECK(f.good(), "cannot write {}", path);
  return path;
}

std::string write_accuracy_json(const std::string& dir, const AccuracyMatrix& R,
                                const std::string& base, const std::vector<std::string>& extra) {
  const int64_t T = (int64_t)R.size();
  last_task(R, -1, "write_accuracy_json");
  // The summary over the tasks trained so far: the last row with every needed entry measured.
  int64_t k = -1;
  for (int64_t i = T - 1; i >= 0 && k < 0; --i) {
    try {
      (void)summarize(R, i);
      k = i;
    } catch (const Error&) {
    }
  }
  const ContinualSummary s = k >= 0 ? summarize(R, k) : ContinualSummary{0, NAN, NAN, NAN, NAN};
  const std::string path = open_path(dir, base + ".json");
  std::ofstream f(path);
  ENGRAM_CHECK(f.good(), "cannot write {}", path);
  f << "{\n  \"tasks\": " << T << ",\n  \"tasks_trained\": " << s.tasks << ",\n  \"R\": [";
  for (int64_t i = 0; i < T; ++i) {
    f << (i ? ",\n        [" : "[");
    for (int64_t j = 0; j < T; ++j) f << (j ? ", " : "") << num(R[(size_t)i][(size_t)j], "null");
    f << "]";
  }
  f << "],\n  \"avg_acc\": " << num(s.avg_acc, "null") << ",\n  \"bwt\": " << num(s.bwt, "null")
    << ",\n  \"forgetting\": " << num(s.forgetting, "null")
    << ",\n  \"avg_incremental_acc\": " << num(s.avg_incremental_acc, "null");
  for (const std::string& e : extra) f << ",\n  " << e;
  f << "\n}\n";
  ENGRAM_CHECK(f.good(), "cannot write {}", path);
  return path;
}

std::string write_accuracy_heatmap(const std::string& dir, const AccuracyMatrix& R,
                                   const std::string& base, const std::string& title) {
  const int64_t T = (int64_t)R.size();
  last_task(R, -1, "write_accuracy_heatmap");
  const std::string dat = open_path(dir, base + "_heatmap.dat");
  {
    // one line per cell "tested trained value"; drawn as boxes, so unmeasured (NaN) cells stay blank
    std::ofstream f(dat);
    ENGRAM_CHECK(f.good(), "cannot write {}", dat);
    for (int64_t i = 0; i < T; ++i) {
      for (int64_t j = 0; j < T; ++j) f << j + 1 << " " << i + 1 << " " << num(R[(size_t)i][(size_t)j], "NaN") << "\n";
      f << "\n";
    }
  }
  if (!on_path("gnuplot")) return fmt::format("{} (no PNG: gnuplot not installed)", dat);
  const std::string png = (fs::path(dir) / (base + ".png")).string();
  std::string quoted;  // inside gnuplot's '...' a quote is written twice
  for (char c : title) quoted += c == '\'' ? std::string("''") : std::string(1, c);
  const int64_t side = std::clamp<int64_t>(120 * T + 200, 480, 1200);
  const std::string script = fmt::format(R"(set terminal png size {},{} font ',12'
set output '{}'
set title '{}'
set xlabel 'task tested'
set ylabel 'task trained'
set xrange [0.5:{}.5]
set yrange [{}.5:0.5]
set xtics 1
set ytics 1
set cbrange [0:1]
set cblabel 'accuracy'
set palette defined (0 '#ffffff', 0.5 '#9ecae1', 1 '#3182bd')
set datafile missing 'NaN'
unset key
set style fill solid 1.0 noborder
plot '{}' using 1:2:(0.5):(0.5):3 with boxxy fc palette, \
  '' using 1:2:(sprintf('%.2f', $3)) with labels font ',{}' tc rgb '#000000'
)", side, side - 60, png, quoted, T, T, dat, T <= 5 ? 14 : 10);
  const std::string gp = open_path(dir, base + "_heatmap.gp");
  std::ofstream(gp) << script;
  const std::string cmd = fmt::format("gnuplot '{}' > '{}.log' 2>&1", gp, gp);
  if (std::system(cmd.c_str()) != 0) return fmt::format("{} (gnuplot failed: see {}.log)", dat, gp);
  return png;
}

}  // namespace engram::apps
