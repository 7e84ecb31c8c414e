// memory/cmr/analysis.h — the standard free-recall measures, with psifr's definitions
// (Morton's psifr: fr.py spc / pnr / lag_crp / category_crp, stats.py, maskers.py).
//
// Every measure is computed per subject (counts pooled over that subject's lists, then
// actual / possible), then averaged over subjects; a subject with no possible event at some x
// contributes nothing there (the mean is over the subjects that have one). Scoring rules:
//   spc(p)        fraction of lists whose item at serial position p was recalled at least once
//                 (repeats and intrusions do not count).
//   pnr(n, p)     probability that the n-th recall (n = 1 is the PFR) is the item from position
//                 p. Intrusions and repeats are skipped and do not advance the output position;
//                 each valid recall counts actual[n][p] += 1 and possible[n][q] += 1 for every q
//                 still unrecalled before it (itself included). So the denominator of PFR is the
//                 number of lists with at least one valid recall.
//   lag_crp(lag)  for consecutive recalls (r_n, r_{n+1}): skip when r_n is an intrusion or a
//                 repeat; otherwise remove it from the pool; skip when r_{n+1} is an intrusion or
//                 a repeat (not in the pool); else actual[pos(n+1) - pos(n)] += 1 and
//                 possible[q - pos(n)] += 1 for every q still in the pool. A transition out of an
//                 intrusion is dropped; the next item-to-item transition is kept.
//   category_crp  same transitions: actual += 1 when the two items share a category, possible
//                 += 1 when an item of the first one's category is still in the pool.
//   semantic_crp  same transitions, binned by the similarity of the two items (bin edges over
//                 the similarity range): actual[bin(sim(prev, next))] += 1 and possible[bin(sim(
//                 prev, q))] += 1 for every q in the pool.
#pragma once
#include <vector>

#include "memory/cmr/recall_data.h"

namespace engram::cmr {

// A measure over x: the mean over subjects, its standard error, and each subject's curve (NaN
// where that subject had nothing possible).
struct Curve {
  std::vector<double> x;
  std::vector<double> mean, sem;
  std::vector<std::vector<double>> per_subject;
  std::vector<int64_t> subjects;  // subject id of each per_subject row
};

Curve spc(const std::vector<RecallList>& lists);                       // x = 1..L
Curve pnr(const std::vector<RecallList>& lists, int64_t n);            // x = 1..L; pnr(.., 1) = PFR
Curve lag_crp(const std::vector<RecallList>& lists, int64_t max_lag);  // x = -max_lag..max_lag (0 is NaN)
// x = {0}: the probability that a transition stays within the category. Needs categories.
Curve category_crp(const std::vector<RecallList>& lists);
// x = bin centres. similarity[a][b] for pool indices a, b; bins equal-width over [lo, hi].
Curve semantic_crp(const std::vector<RecallList>& lists,
                   const std::vector<std::vector<double>>& similarity, int64_t bins, double lo,
                   double hi);

}  // namespace engram::cmr
