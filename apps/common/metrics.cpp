// apps/common/metrics.cpp — see metrics.h.
#include "apps/common/metrics.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "core/error.h"

namespace engram::apps {

namespace fs = std::filesystem;

// ---------------------------------------------------------------- progress

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  if (s < 60) return fmt::format("{:.1f}s", s);
  int64_t t = int64_t(s + 0.5);
  if (t < 3600) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}h{:02d}m", t / 3600, (t % 3600) / 60);
}

ProgressLine::ProgressLine(int64_t total_steps, int64_t log_every, std::FILE* out)
    : total_(total_steps), log_every_(std::max<int64_t>(1, log_every)), out_(out),
      tty_(::isatty(::fileno(out)) == 1) {}

void ProgressLine::step(int64_t step, double loss, double bpc, double tokens_per_s, double eta) {
  std::string text = fmt::format("step {}/{} | loss {:.4f} | bpc {:.3f} | {:.0f} tok/s | ETA {}",
                                 step, total_, loss, bpc, tokens_per_s, format_duration(eta));
  if (tty_) {
    std::fprintf(out_, "\r%s\033[K", text.c_str());  // \033[K clears what a longer line left
    drawn_ = true;
  } else if (step % log_every_ == 0 || step == total_) {
    std::fprintf(out_, "%s\n", text.c_str());
  }
  std::fflush(out_);
}

void ProgressLine::print(const std::string& line) {
  if (drawn_) std::fprintf(out_, "\r\033[K");
  drawn_ = false;
  std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
}

void ProgressLine::finish() {
  if (drawn_) std::fprintf(out_, "\n");
  drawn_ = false;
  std::fflush(out_);
}

// ---------------------------------------------------------------- metrics files

static const char* kCsvHeader = "step,split,loss,bpc,ppl,acc,lr,grad_norm,tokens_per_s,seconds";

// Rewrites `path` keeping the lines for which keep(line) is true.
template <class Keep> static void filter_lines(const std::string& path, Keep keep) {
  std::ifstream in(path);
  if (!in.good()) return;
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (keep(line)) lines.push_back(line);
  in.close();
  std::ofstream out(path, std::ios::trunc);
  for (const std::string& l : lines) out << l << "\n";
}

static int64_t leading_int(const std::string& s, size_t from) {
  try {
    return std::stoll(s.substr(from));
  } catch (...) {
    return INT64_MAX;  // not a row of ours: dropped
  }
}

MetricsLog::MetricsLog(const std::string& dir, int64_t keep_until)
    : csv_path_((fs::path(dir) / "metrics.csv").string()),
      jsonl_path_((fs::path(dir) / "metrics.jsonl").string()) {
  if (keep_until >= 0) {
    filter_lines(csv_path_, [&](const std::string& l) {
      return l == kCsvHeader || leading_int(l, 0) <= keep_until;
    });
    filter_lines(jsonl_path_, [&](const std::string& l) {
      size_t at = l.find("\"step\":");
      return at != std::string::npos && leading_int(l, at + 7) <= keep_until;
    });
  }
  bool fresh = keep_until < 0 || !fs::exists(csv_path_) || fs::file_size(csv_path_) == 0;
  csv_ = std::fopen(csv_path_.c_str(), fresh ? "w" : "a");
  jsonl_ = std::fopen(jsonl_path_.c_str(), fresh ? "w" : "a");
  ENGRAM_CHECK(csv_ && jsonl_, "cannot write metrics files in '{}'", dir);
  if (fresh) std::fprintf(csv_, "%s\n", kCsvHeader);
}

MetricsLog::~MetricsLog() {
  if (csv_) std::fclose(csv_);
  if (jsonl_) std::fclose(jsonl_);
}

void MetricsLog::write(const MetricsRow& r, const std::vector<std::pair<std::string, double>>& extra) {
  const std::pair<const char*, double> fields[] = {
      {"loss", r.loss}, {"bpc", r.bpc},   {"ppl", r.ppl}, {"acc", r.acc}, {"lr", r.lr},
      {"grad_norm", r.grad_norm}, {"tokens_per_s", r.tokens_per_s}, {"seconds", r.seconds}};
  std::string csv = fmt::format("{},{}", r.step, r.split);
  std::string json = fmt::format("{{\"step\":{},\"split\":\"{}\"", r.step, r.split);
  for (auto& [name, v] : fields) {
    bool has = std::isfinite(v);
    csv += has ? fmt::format(",{:.9g}", v) : ",";
    if (has) json += fmt::format(",\"{}\":{:.9g}", name, v);
  }
  for (auto& [name, v] : extra)
    if (std::isfinite(v)) json += fmt::format(",\"{}\":{:.9g}", name, v);
  std::fprintf(csv_, "%s\n", csv.c_str());
  std::fprintf(jsonl_, "%s}\n", json.c_str());
}

void MetricsLog::flush() {
  std::fflush(csv_);
  std::fflush(jsonl_);
}

// ---------------------------------------------------------------- plots

bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  for (std::string d; std::getline(dirs, d, ':');)
    if (!d.empty() && ::access((fs::path(d) / program).c_str(), X_OK) == 0) return true;
  return false;
}

std::string write_plots(const std::string& dir) {
  if (!on_path("gnuplot"))
    return "plots: skipped (gnuplot not installed; `sudo apt-get install gnuplot-nox` draws "
           "loss.png and bpc.png from metrics.csv)";
  // Columns of metrics.csv: 1 step, 2 split, 3 loss, 4 bpc; rows of the other split become NaN.
  const std::string script = fmt::format(R"(set datafile separator ','
set terminal png size 900,540
set key top right
set grid
set xlabel 'step'
set output '{0}/loss.png'
set ylabel 'loss (nats / token)'
plot '{0}/metrics.csv' using 1:(strcol(2) eq 'train' ? $3 : NaN) with lines lc rgb '#4477aa' title 'train', \
     '' using 1:(strcol(2) eq 'val' ? $3 : NaN) with linespoints lc rgb '#cc3311' pt 7 title 'val'
set output '{0}/bpc.png'
set ylabel 'bits per character'
plot '{0}/metrics.csv' using 1:(strcol(2) eq 'train' ? $4 : NaN) with lines lc rgb '#4477aa' title 'train', \
     '' using 1:(strcol(2) eq 'val' ? $4 : NaN) with linespoints lc rgb '#cc3311' pt 7 title 'val'
)", dir);
  const std::string gp = (fs::path(dir) / "plots.gp").string();
  std::ofstream(gp) << script;
  const std::string cmd = fmt::format("gnuplot '{}' > '{}/plots.log' 2>&1", gp, dir);
  if (std::system(cmd.c_str()) != 0)
    return fmt::format("plots: gnuplot failed (see {}/plots.log)", dir);
  return fmt::format("plots: {0}/loss.png {0}/bpc.png", dir);
}

}  // namespace engram::apps
