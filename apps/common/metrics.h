// apps/common/metrics.h — what a training run shows and leaves behind: the progress line, the
// metrics files (CSV and JSON lines) and the plots.
//
// Progress: on a terminal one line is redrawn in place with '\r' after every step
//     step 120/500 | loss 1.9321 | bpc 2.787 | 5,012 tok/s | ETA 1m14s
// and when stdout is a file or a pipe (isatty false) a plain line is printed every log_every
// steps instead, so logs hold no carriage returns.
//
// Metrics: <run>/metrics.csv and <run>/metrics.jsonl get one row per training step ("train") and
// per evaluation ("val"), with the same fields:
//     step, split, loss, bpc, ppl, acc, lr, grad_norm, tokens_per_s, seconds
// A field that does not apply (acc of a train row, lr of a val row) is empty in the CSV and
// absent from the JSON line. On resume the rows after the resumed step are dropped first, so the
// files describe the run as if it had never stopped.
//
// Plots: <run>/loss.png and <run>/bpc.png (train and val curves) are drawn by gnuplot from
// metrics.csv when gnuplot is installed; otherwise a note says how to get them.
#pragma once
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace engram::apps {

class ProgressLine {
 public:
  ProgressLine(int64_t total_steps, int64_t log_every, std::FILE* out = stdout);
  // Shows one step (redraw on a terminal; a plain line every log_every steps otherwise).
  void step(int64_t step, double loss, double bpc, double tokens_per_s, double eta_seconds);
  // Prints a whole line, first clearing a half-drawn progress line.
  void print(const std::string& line);
  void finish();  // ends a half-drawn progress line
  bool is_tty() const { return tty_; }

 private:
  int64_t total_, log_every_;
  std::FILE* out_;
  bool tty_, drawn_ = false;
};

std::string format_duration(double seconds);  // "1m14s", "2h03m", "9.5s"

struct MetricsRow {
  int64_t step = 0;
  std::string split;  // "train" or "val"
  double loss = NAN, bpc = NAN, ppl = NAN, acc = NAN, lr = NAN, grad_norm = NAN;
  double tokens_per_s = NAN, seconds = NAN;
};

class MetricsLog {
 public:
  // Opens <dir>/metrics.csv and <dir>/metrics.jsonl; keeps the rows with step <= keep_until
  // (-1 = start afresh).
  MetricsLog(const std::string& dir, int64_t keep_until);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  // `extra`: a model's own diagnostics (memory_lm's gate statistics), JSONL only.
  void write(const MetricsRow& row, const std::vector<std::pair<std::string, double>>& extra = {});
  void flush();
  std::string csv_path() const { return csv_path_; }

 private:
  std::string csv_path_, jsonl_path_;
  std::FILE *csv_ = nullptr, *jsonl_ = nullptr;
};

// Draws <dir>/loss.png and <dir>/bpc.png from <dir>/metrics.csv with gnuplot; returns a line
// saying what was written or why nothing was (gnuplot missing or failing).
std::string write_plots(const std::string& dir);

// True when `program` is an executable file in one of $PATH's folders (gnuplot, before plotting).
bool on_path(const std::string& program);

}  // namespace engram::apps
