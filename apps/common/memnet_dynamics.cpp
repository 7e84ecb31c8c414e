// apps/common/memnet_dynamics.cpp — see memnet_dynamics.h.
#include "apps/common/memnet_dynamics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "apps/common/metrics.h"

namespace fs = std::filesystem;

namespace engram::apps {

std::vector<WriteLifetime> write_lifetimes(const memnet::MemNetTrace& trace, std::string_view text,
                                           int64_t segment, double threshold) {
  ENGRAM_CHECK(trace.writes.size() == trace.write_positions.size(), "memnet dynamics: the trace has "
               "{} writes but {} positions", trace.writes.size(), trace.write_positions.size());
  const size_t n = trace.writes.size();
  const int64_t end = n ? trace.write_positions.back() : 0;
  std::vector<WriteLifetime> out;
  for (size_t s = 0; s < n; ++s) {
    const std::vector<float>& w = trace.writes[s];
    WriteLifetime l;
    l.position = trace.write_positions[s];
    l.slot = int64_t(std::max_element(w.begin(), w.end()) - w.begin());
    for (int64_t p = std::max<int64_t>(1, l.position - segment); p < l.position; ++p)
      if (size_t(p) < text.size() && text[size_t(p) - 1] == '=') l.binding = true;
    double kept = 1;
    l.lifetime = double(end - l.position);
    for (size_t t = s + 1; t < n; ++t) {
      kept *= 1.0 - std::min(1.0, double(trace.writes[t][size_t(l.slot)]));
      if (kept < threshold) {
        l.died = true;
        l.lifetime = double(trace.write_positions[t] - l.position);
        break;
      }
    }
    out.push_back(l);
  }
  return out;
}

namespace {
bool of_kind(const WriteLifetime& l, WriteKind k) {
  return k == WriteKind::all || (k == WriteKind::binding) == l.binding;
}
}  // namespace

std::vector<double> kaplan_meier(const std::vector<WriteLifetime>& lifetimes,
                                 const std::vector<double>& ages, WriteKind kind) {
  std::map<double, std::pair<int64_t, int64_t>> events;  // age -> (deaths, censored)
  int64_t at_risk = 0;
  for (const WriteLifetime& l : lifetimes) {
    if (!of_kind(l, kind)) continue;
    ++at_risk;
    (l.died ? events[l.lifetime].first : events[l.lifetime].second) += 1;
  }
  std::vector<double> out(ages.size(), at_risk ? 1.0 : NAN);
  if (!at_risk) return out;
  double survival = 1;
  auto it = events.begin();
  for (size_t a = 0; a < ages.size(); ++a) {
    for (; it != events.end() && it->first <= ages[a]; ++it) {  // events up to this age
      if (it->second.first > 0 && at_risk > 0)
        survival *= 1.0 - double(it->second.first) / double(at_risk);
      at_risk -= it->second.first + it->second.second;
    }
    out[a] = survival;
  }
  return out;
}

double median_lifetime(const std::vector<WriteLifetime>& lifetimes, WriteKind kind) {
  std::vector<double> ages;
  for (const WriteLifetime& l : lifetimes)
    if (of_kind(l, kind) && l.died) ages.push_back(l.lifetime);
  std::sort(ages.begin(), ages.end());
  ages.erase(std::unique(ages.begin(), ages.end()), ages.end());
  std::vector<double> s = kaplan_meier(lifetimes, ages, kind);
  for (size_t i = 0; i < ages.size(); ++i)
    if (s[i] <= 0.5) return ages[i];
  return NAN;
}

std::string write_heatmap(const std::string& dir, const std::string& base,
                          const std::vector<std::vector<float>>& rows, const std::string& title,
                          const std::string& ylabel) {
  const std::string csv = (fs::path(dir) / (base + ".csv")).string();
  {
    std::ofstream f(csv);
    ENGRAM_CHECK(f.good(), "memnet dynamics: cannot write '{}'", csv);
    const size_t N = rows.empty() ? 0 : rows[0].size();
    f << "row";
    for (size_t i = 0; i < N; ++i) f << ",slot_" << i;
    f << "\n";
    for (size_t r = 0; r < rows.size(); ++r) {
      f << r;
      for (float v : rows[r]) f << "," << v;
      f << "\n";
    }
  }
  if (!on_path("gnuplot")) return fmt::format("{} (no PNG: gnuplot not installed)", csv);
  const std::string dat = (fs::path(dir) / (base + "_heatmap.dat")).string(), gp = dat + ".gp",
                    png = (fs::path(dir) / (base + ".png")).string();
  {
    std::ofstream d(dat);  // gnuplot's `matrix` format: one line per row, values by column
    for (const auto& row : rows) {
      for (size_t i = 0; i < row.size(); ++i) d << (i ? " " : "") << row[i];
      d << "\n";
    }
  }
  std::ofstream(gp) << fmt::format(R"(set terminal png size 900,700 font ',10'
set output '{}'
set title '{}'
set xlabel 'slot'
set ylabel '{}'
set yrange [] reverse
set palette defined (0 '#ffffff', 0.25 '#fee08b', 0.6 '#f46d43', 1 '#67001f')
set cbrange [0:*]
plot '{}' matrix with image notitle
)", png, title, ylabel, dat);
  if (std::system(fmt::format("gnuplot '{}' > '{}.log' 2>&1", gp, gp).c_str()) != 0)
    return fmt::format("{} (gnuplot failed: see {}.log)", csv, gp);
  return png;
}

}  // namespace engram::apps
