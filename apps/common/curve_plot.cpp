// apps/common/curve_plot.cpp — see curve_plot.h.
#include "apps/common/curve_plot.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "apps/common/metrics.h"
#include "core/error.h"

namespace engram::apps {

namespace fs = std::filesystem;

std::string write_curve_plot(const std::string& dir, const CurvePlot& plot) {
  fs::create_directories(dir);
  const std::string csv = (fs::path(dir) / (plot.file + ".csv")).string();
  {
    std::ofstream f(csv);
    ENGRAM_CHECK(f.good(), "cannot write {}", csv);
    f << "x";
    for (const CurveSeries& s : plot.series) f << "," << s.name;
    f << "\n";
    for (size_t i = 0; i < plot.x.size(); ++i) {
      f << fmt::format("{:g}", plot.x[i]);
      for (const CurveSeries& s : plot.series) {
        f << ",";
        // NaN written out: gnuplot breaks the line there (an empty field it would bridge)
        f << (i < s.y.size() && std::isfinite(s.y[i]) ? fmt::format("{:.6g}", s.y[i]) : "NaN");
      }
      f << "\n";
    }
  }
  if (!on_path("gnuplot")) return fmt::format("{} (no PNG: gnuplot not installed)", csv);
  const std::string png = (fs::path(dir) / (plot.file + ".png")).string();
  std::string lines;
  const char* colours[] = {"#222222", "#cc3311", "#4477aa", "#228833", "#ccbb44",
                           "#66ccee", "#aa3377", "#bbbbbb", "#ee7733", "#009988"};
  for (size_t k = 0; k < plot.series.size(); ++k)
    lines += fmt::format("{}'{}' using 1:{} with {} lw 2 lc rgb '{}' {}title '{}'", k ? ", \\\n  " : "",
                         csv, k + 2, k == 0 ? "linespoints" : "lines", colours[k % 10],
                         k == 0 ? "pt 7 ps 1.2 " : "", plot.series[k].name);
  const std::string script = fmt::format(R"(set datafile separator ','
set terminal png size 720,540 font ',12'
set output '{}'
set title '{}'
set xlabel '{}'
set ylabel '{}'
set yrange [{}:{}]
set grid
set key top center
plot {}
)", png, plot.title, plot.xlabel, plot.ylabel, plot.ymin, plot.ymax, lines);
  const std::string gp = (fs::path(dir) / (plot.file + ".gp")).string();
  std::ofstream(gp) << script;
  const std::string cmd = fmt::format("gnuplot '{}' > '{}.log' 2>&1", gp, gp);
  if (std::system(cmd.c_str()) != 0) return fmt::format("{} (gnuplot failed: see {}.log)", csv, gp);
  return png;
}

double largest_gap(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    if (std::isfinite(a[i]) && std::isfinite(b[i])) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

}  // namespace engram::apps
