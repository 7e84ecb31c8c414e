// apps/common/curve_plot.h — observed-versus-model curves on the same axes, as the figures of
// the CMR papers draw them: a CSV with one column per series and a gnuplot PNG.
//
//   CurvePlot p{"spc", "Serial position curve", "serial position", "recall probability"};
//   p.x = {1, 2, ...};
//   p.series.push_back({"observed", obs});
//   p.series.push_back({"CMR", sim});
//   write_curve_plot(dir, p);  // dir/spc.csv, dir/spc.png (when gnuplot is installed)
// NaN values (a lag of 0, a subject with nothing possible) are written as NaN in the CSV and are
// gaps in the plot.
#pragma once
#include <string>
#include <vector>

namespace engram::apps {

struct CurveSeries {
  std::string name;
  std::vector<double> y;
};

struct CurvePlot {
  std::string file;    // base name: <file>.csv, <file>.png
  std::string title, xlabel, ylabel;
  std::vector<double> x;
  std::vector<CurveSeries> series;  // the first is drawn as points+lines, the rest as lines
  double ymin = 0, ymax = 1;        // fixed axis range (probabilities)
};

// Writes the CSV always and the PNG when gnuplot is on PATH; returns a one-line note naming what
// it wrote (or why the PNG was skipped).
std::string write_curve_plot(const std::string& dir, const CurvePlot& plot);

// max over x of |a - b| where both are finite (the "largest gap" between two curves).
double largest_gap(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace engram::apps
