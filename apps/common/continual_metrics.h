// apps/common/continual_metrics.h — the continual-learning metrics of an accuracy matrix and
// their writers (CSV, JSON, a gnuplot heatmap).
//
// R[i][j] is the test accuracy on task j after training task i (0-based here, i, j = 0..T-1; a
// value not measured is NaN). With the last trained task k (k = T-1 unless given):
//   average accuracy   ACC_k = (1/(k+1)) sum_{j<=k} R[k][j]                  (GEM, Lopez-Paz 2017)
//   backward transfer  BWT_k = (1/k) sum_{j<k} (R[k][j] - R[j][j])
//       This is the paper's definition. The GEM code (metrics/metrics.py) averages over all T
//       tasks, with a last term that is 0, so it reports (T-1)/T times this value.
//   forgetting         F_k = (1/k) sum_{j<k} (max_{l<k} R[l][j] - R[k][j])   (Chaudhry 2018, RWalk;
//                      facebookresearch/agem compute_fgt; rows l < j, before task j was
//                      trained, count in the max when measured, as np.max(data[:T, j]) does)
//   average incremental accuracy  (1/(k+1)) sum_{t<=k} ACC_t              (iCaRL, Rebuffi 2017)
// BWT and forgetting need k >= 1 (NaN otherwise). Every entry they read must be measured (not
// NaN); a NaN that is read is an error naming the entry.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace engram::apps {

using AccuracyMatrix = std::vector<std::vector<double>>;  // T rows of T values

// A T x T matrix of NaN (filled in as tasks are trained and evaluated).
AccuracyMatrix make_accuracy_matrix(int64_t tasks);

double average_accuracy(const AccuracyMatrix& R, int64_t k = -1);
double backward_transfer(const AccuracyMatrix& R, int64_t k = -1);
double forgetting(const AccuracyMatrix& R, int64_t k = -1);
double average_incremental_accuracy(const AccuracyMatrix& R, int64_t k = -1);

struct ContinualSummary {
  int64_t tasks = 0;  // k + 1: the tasks trained so far
  double avg_acc = 0, bwt = 0, forgetting = 0, avg_incremental_acc = 0;
};
ContinualSummary summarize(const AccuracyMatrix& R, int64_t k = -1);

// <dir>/<base>.csv: a header "trained,task_1,...,task_T" then one row per trained task (NaN
// written as an empty field). Returns the path.
std::string write_accuracy_csv(const std::string& dir, const AccuracyMatrix& R,
                               const std::string& base = "accuracy_matrix");
// <dir>/<base>.json: {"tasks": T, "R": [[...]], "avg_acc": .., "bwt": .., "forgetting": ..,
// "avg_incremental_acc": .., plus `extra` (already-formatted JSON members, e.g.
// "\"method\": \"replay\"")}; NaN written as null. Returns the path.
std::string write_accuracy_json(const std::string& dir, const AccuracyMatrix& R,
                                const std::string& base = "accuracy_matrix",
                                const std::vector<std::string>& extra = {});
// <dir>/<base>.png: a heatmap of R (rows: task trained, top to bottom; columns: task tested),
// each cell printed with its value, drawn by gnuplot when it is on PATH (the data goes to
// <base>_heatmap.dat, the script to <base>_heatmap.gp). Returns the PNG path, or a line saying
// why there is none.
std::string write_accuracy_heatmap(const std::string& dir, const AccuracyMatrix& R,
                                   const std::string& base = "accuracy_matrix",
                                   const std::string& title = "Accuracy after each task");

}  // namespace engram::apps
