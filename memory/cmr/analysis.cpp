// memory/cmr/analysis.cpp — the free-recall measures of analysis.h with psifr's definitions:
// spc (fr.spc), pnr (fr.pnr: stats.count_outputs + maskers.outputs_masker), lag_crp (fr.lag_crp:
// stats.count_lags + maskers.transitions_masker), category_crp (stats.count_category) and
// semantic_crp (fr.distance_crp's stats.count_distance, with similarities in place of distances).
//
// Each measure counts actual and possible events per subject (pooled over that subject's lists),
// takes actual / possible (NaN where nothing was possible), then the mean and standard error
// (sample sd, ddof 1, over sqrt(n)) over the subjects that are not NaN at that x. Subjects are in
// ascending order of their ids, as pandas' groupby gives them.
//
// The masks, on one list's recalls r_1..r_R (serial positions, 0 = intrusion) and a pool that
// starts as every serial position 1..L:
//   outputs      for each recall: skip it if it is not in the pool (an intrusion or a repeat);
//                otherwise it is output number op (op counts only these), counted against the pool
//                as it stands (itself included), then removed from the pool.
//   transitions  for n = 1..R-1: skip if r_n is not in the pool; remove r_n; skip if r_{n+1} is
//                not in the pool; else the transition (r_n -> r_{n+1}) is counted against the pool
//                as it stands (without r_n, with r_{n+1}).
#include "memory/cmr/analysis.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "core/error.h"

namespace engram::cmr {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Counts {
  std::vector<double> actual, possible;
  explicit Counts(size_t n = 0) : actual(n, 0.0), possible(n, 0.0) {}
};

int64_t max_length(const std::vector<RecallList>& lists) {
  int64_t l = 0;
  for (const RecallList& list : lists) l = std::max(l, list.length());
  return l;
}

void check_recalls(const char* what, const RecallList& list) {
  for (int64_t r : list.recalls)
    ENGRAM_CHECK(r >= 0 && r <= list.length(),
                 "{}: subject {} list {}: recall {} outside 0..{} (0 = intrusion)", what,
                 list.subject, list.list, r, list.length());
}

// Calls fn(prev, curr, in_pool) for each transition the transitions mask keeps; in_pool[q] for
// serial position q = 1..L is the pool at that transition (prev removed, curr still in).
template <typename F> void for_each_transition(const RecallList& list, F&& fn) {
  std::vector<char> in_pool(size_t(list.length()) + 1, 1);
  in_pool[0] = 0;  // position 0 is an intrusion, never in the pool
  const auto& r = list.recalls;
  for (size_t n = 0; n + 1 < r.size(); ++n) {
    if (!in_pool[size_t(r[n])]) continue;
    in_pool[size_t(r[n])] = 0;
    if (!in_pool[size_t(r[n + 1])]) continue;
    fn(r[n], r[n + 1], in_pool);
  }
}

// Counts each list into its subject's counts (over x), then forms the per-subject curves and their
// mean and SEM, subjects in ascending order.
template <typename F> Curve measure(const char* what, const std::vector<RecallList>& lists,
                                    std::vector<double> x, F&& count_list) {
  std::map<int64_t, Counts> subjects;
  for (const RecallList& list : lists) {
    check_recalls(what, list);
    count_list(list, subjects.try_emplace(list.subject, x.size()).first->second);
  }
  Curve c;
  c.x = std::move(x);
  const size_t nx = c.x.size();
  for (const auto& [subject, counts] : subjects) {
    std::vector<double> curve(nx, kNaN);
    for (size_t i = 0; i < nx; ++i)
      if (counts.possible[i] > 0) curve[i] = counts.actual[i] / counts.possible[i];
    c.subjects.push_back(subject);
    c.per_subject.push_back(std::move(curve));
  }
  c.mean.assign(nx, kNaN);
  c.sem.assign(nx, kNaN);
  for (size_t i = 0; i < nx; ++i) {
    double sum = 0;
    int64_t n = 0;
    for (const auto& row : c.per_subject)
      if (!std::isnan(row[i])) sum += row[i], ++n;
    if (n == 0) continue;
    const double mean = sum / double(n);
    c.mean[i] = mean;
    if (n < 2) continue;
    double ss = 0;
    for (const auto& row : c.per_subject)
      if (!std::isnan(row[i])) ss += (row[i] - mean) * (row[i] - mean);
    c.sem[i] = std::sqrt(ss / double(n - 1) / double(n));
  }
  return c;
}

std::vector<double> positions(int64_t l) {
  std::vector<double> x;
  for (int64_t p = 1; p <= l; ++p) x.push_back(double(p));
  return x;
}

}  // namespace

Curve spc(const std::vector<RecallList>& lists) {
  return measure("spc", lists, positions(max_length(lists)), [](const RecallList& list, Counts& c) {
    std::vector<char> recalled(size_t(list.length()) + 1, 0);
    for (int64_t r : list.recalls) recalled[size_t(r)] = 1;
    for (int64_t p = 1; p <= list.length(); ++p) {
      c.possible[size_t(p - 1)] += 1;
      c.actual[size_t(p - 1)] += recalled[size_t(p)];
    }
  });
}

Curve pnr(const std::vector<RecallList>& lists, int64_t n) {
  ENGRAM_CHECK(n >= 1, "pnr: output position n must be >= 1 (n = 1 is the PFR), got {}", n);
  auto count = [n](const RecallList& list, Counts& c) {
    std::vector<char> in_pool(size_t(list.length()) + 1, 1);
    in_pool[0] = 0;
    int64_t op = 0;
    for (int64_t r : list.recalls) {
      if (!in_pool[size_t(r)]) continue;  // intrusion or repeat: no output position
      if (++op == n) {
        c.actual[size_t(r - 1)] += 1;
        for (int64_t q = 1; q <= list.length(); ++q)
          if (in_pool[size_t(q)]) c.possible[size_t(q - 1)] += 1;
        break;
      }
      in_pool[size_t(r)] = 0;
    }
  };
  return measure("pnr", lists, positions(max_length(lists)), count);
}

Curve lag_crp(const std::vector<RecallList>& lists, int64_t max_lag) {
  ENGRAM_CHECK(max_lag >= 1, "lag_crp: max_lag must be >= 1, got {}", max_lag);
  std::vector<double> x;
  for (int64_t lag = -max_lag; lag <= max_lag; ++lag) x.push_back(double(lag));
  auto index = [max_lag](int64_t lag) { return size_t(lag + max_lag); };
  Curve c = measure("lag_crp", lists, x, [&](const RecallList& list, Counts& counts) {
    for_each_transition(list, [&](int64_t prev, int64_t curr, const std::vector<char>& in_pool) {
      if (std::abs(curr - prev) <= max_lag) counts.actual[index(curr - prev)] += 1;
      for (int64_t q = 1; q <= list.length(); ++q)
        if (in_pool[size_t(q)] && std::abs(q - prev) <= max_lag)
          counts.possible[index(q - prev)] += 1;
    });
  });
  return c;  // lag 0 is never possible (prev has left the pool), so it is NaN everywhere
}

Curve category_crp(const std::vector<RecallList>& lists) {
  return measure("category_crp", lists, {0.0}, [](const RecallList& list, Counts& counts) {
    ENGRAM_CHECK(list.categories.size() == list.item_ids.size(),
                 "category_crp: subject {} list {} has {} category labels for {} items "
                 "(the data set needs categories)",
                 list.subject, list.list, list.categories.size(), list.item_ids.size());
    for_each_transition(list, [&](int64_t prev, int64_t curr, const std::vector<char>& in_pool) {
      const int64_t cat = list.categories[size_t(prev - 1)];
      counts.actual[0] += list.categories[size_t(curr - 1)] == cat;
      bool any = false;
      for (int64_t q = 1; q <= list.length() && !any; ++q)
        any = in_pool[size_t(q)] && list.categories[size_t(q - 1)] == cat;
      counts.possible[0] += any;
    });
  });
}

Curve semantic_crp(const std::vector<RecallList>& lists,
                   const std::vector<std::vector<double>>& similarity, int64_t bins, double lo,
                   double hi) {
  ENGRAM_CHECK(bins >= 1, "semantic_crp: bins must be >= 1, got {}", bins);
  ENGRAM_CHECK(hi > lo, "semantic_crp: the bin range [{}, {}] is empty", lo, hi);
  // Equal-width edges; bins are (e_k, e_k+1] with the first one closed, [lo, e_1], as pandas'
  // cut(..., include_lowest=True) makes them in psifr; similarities outside [lo, hi] are dropped.
  std::vector<double> edges(size_t(bins) + 1), x;
  for (int64_t k = 0; k <= bins; ++k) edges[size_t(k)] = lo + (hi - lo) * double(k) / double(bins);
  edges.back() = hi;
  for (int64_t k = 0; k < bins; ++k) x.push_back(0.5 * (edges[size_t(k)] + edges[size_t(k) + 1]));
  auto bin = [&](double s) -> int64_t {
    if (!(s >= lo && s <= hi)) return -1;
    const int64_t k = int64_t(std::lower_bound(edges.begin(), edges.end(), s) - edges.begin()) - 1;
    return std::max<int64_t>(k, 0);
  };
  const int64_t pool = int64_t(similarity.size());
  return measure("semantic_crp", lists, x, [&](const RecallList& list, Counts& counts) {
    for (int64_t id : list.item_ids)
      ENGRAM_CHECK(id >= 0 && id < pool && int64_t(similarity[size_t(id)].size()) == pool,
                   "semantic_crp: subject {} list {}: item id {} outside the {} x {} similarity "
                   "matrix (or a short row)",
                   list.subject, list.list, id, pool, pool);
    auto sim = [&](int64_t p, int64_t q) {
      return similarity[size_t(list.item_ids[size_t(p - 1)])][size_t(list.item_ids[size_t(q - 1)])];
    };
    for_each_transition(list, [&](int64_t prev, int64_t curr, const std::vector<char>& in_pool) {
      if (const int64_t k = bin(sim(prev, curr)); k >= 0) counts.actual[size_t(k)] += 1;
      for (int64_t q = 1; q <= list.length(); ++q)
        if (in_pool[size_t(q)])
          if (const int64_t k = bin(sim(prev, q)); k >= 0) counts.possible[size_t(k)] += 1;
    });
  });
}

}  // namespace engram::cmr
