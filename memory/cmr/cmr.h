// memory/cmr/cmr.h — the classic CMR model of free recall (Polyn, Norman & Kahana 2009), with a
// differentiable likelihood (so it can be fitted by gradient descent) and two recall rules.
//
// A list of L items (localist features f_i = e_i) is studied, then recalled. Context has D = L+1
// units: unit 0 is the start-of-list unit, unit i+1 is item i's pre-experimental context.
//   study     c_0 = e_0; item i: c_IN = M^FC f_i = e_{i+1} (normalised), c_i = drift(c_{i-1}, c_IN,
//             B_enc) (memory/cmr/context.h); then
//               M^FC += L_FC c_i f_i^T                         (L_FC = gamma_fc)
//               M^CF += L_CF phi_i f_i c_i^T,  phi_i = phi_s exp(-phi_d (i-1)) + 1
//             with pre-experimental M^FC_pre = (1 - gamma_fc) I and M^CF_pre = s * SEM (diagonal
//             zeroed; SEM[i][j] the semantic similarity of items i and j, memory/cmr/semantic.h).
//   recall    start: c = drift(c_L, e_0, B_start) (cymr's start-of-list reinstatement; 0 = none,
//             as in Polyn 2009). Cue strengths a = M^CF c, i.e.
//               a_i = s sum_j SEM[i][j] c_{j+1} + L_CF phi_i (c_i . c)
//             After recalling item r: c = drift(c, normalise(M^FC f_r), B_rec) with
//             M^FC f_r = (1 - gamma_fc) e_{r+1} + gamma_fc c_r. Recalled items cannot be recalled
//             again.
//   choice    (a) softmax rule (cymr): with j items recalled so far,
//               P_stop(j) = clamp(X1 exp(X2 j), 1e-6, 1 - 1e-6), and 1 when nothing is left,
//               P(item i) = (1 - P_stop(j)) exp(2 a_i / T) / sum_{k unrecalled} exp(2 a_k / T),
//             which gives the probability of every observed recall sequence (the likelihood);
//             (b) the leaky competing accumulator of Polyn et al. 2009 (simulation only):
//               x <- max(0, x + (a - kappa x - lambda (sum(x) - x)) dt_tau + eta N(0, 1))
//             from x = 0 after each recall; the first unrecalled item to reach threshold 1 is
//             recalled; an already recalled item that reaches it is set back to 0.95; recall
//             ends when recall_steps steps have run (Polyn's 90 s in 100 ms steps: 900).
// The choices where the sources differ (multiplicative primacy on M^CF as Polyn 2009 and jaxcmr,
// not cymr's additive one; items bound to the post-update context; no M^FF) are those of
// ../shared/research/cmr-titans.md, "Where the sources disagree".
#pragma once
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "memory/cmr/recall_data.h"

namespace engram::cmr {

struct CMRParams {
  double B_enc = 0.7, B_start = 0.3, B_rec = 0.9;  // drift rates: enc, rec in (0, 1]; start in [0, 1]
  double gamma_fc = 0.15;                          // L_FC, and M^FC_pre = (1 - gamma_fc) I; [0, 1]
  double L_cf = 1.0;                               // >= 0
  double phi_s = 1.0, phi_d = 1.0;                 // primacy, >= 0
  double s = 0.0;                                  // semantic scale, >= 0
  // softmax rule
  double T = 0.1;                                  // > 0
  double X1 = 0.01, X2 = 0.3;                      // X1 in (0, 1), X2 >= 0
  // LCA rule (Polyn 2009 Table 1 values in the paper's units)
  double kappa = 0.111, lambda = 0.338, eta = 0.159, dt_tau = 0.174;
  int64_t recall_steps = 900;

  // Throws a one-line engram::Error naming the first parameter out of its range.
  void validate() const;
  std::string str() const;  // "B_enc=0.7 B_start=0.3 ..."
};

// "CMR Full" of Polyn, Norman & Kahana 2009, Table 1 (temporal context only: no source context or
// task shifts), with the LCA rule; cmr-matlab fr/TFR/param_cmr_full.m.
CMRParams polyn2009_full();

// The parameters as 0-d f64 tensors, so the likelihood is differentiable in each.
struct CMRTensors {
  Tensor B_enc, B_start, B_rec, gamma_fc, L_cf, phi_s, phi_d, s, T, X1, X2;
  static CMRTensors from(const CMRParams& p);            // constants (no grad)
  std::vector<Tensor> all() const;                       // in the order above
  static std::vector<std::string> names();
  CMRParams values(CMRParams base = {}) const;           // back to doubles (LCA fields from base)
};

// Lists prepared for the batched likelihood: every list has length L. Intrusions and repeats are
// dropped from the recall sequences (they have no probability under the model), as cymr does.
struct ListBatch {
  int64_t B = 0, L = 0;
  Tensor sem;                             // [B, L, L] f64: SEM of each list's items, diagonal 0
  Tensor recalls;                         // [B, L] i64: 0-based positions, padded with 0
  std::vector<int64_t> n_recalls;         // valid recalls per list
  std::vector<std::vector<int64_t>> sequences;  // the same, unpadded
};
// similarity[a][b] over pool indices (empty: no semantic associations, SEM = 0).
ListBatch make_batch(const std::vector<RecallList>& lists,
                     const std::vector<std::vector<double>>& similarity);

// log P(recall sequence of list b | parameters) for every list: [B] f64, differentiable in every
// tensor of p, computed batched over lists with engram ops through the study and recall
// recurrences.
Tensor log_likelihood(const CMRTensors& p, const ListBatch& batch);

// The same for one list with plain loops (the obvious reference the batched version is tested
// against). sem is [L][L].
double list_log_likelihood(const CMRParams& p, const std::vector<std::vector<double>>& sem,
                           const std::vector<int64_t>& sequence);

enum class RecallRule { softmax, lca };
// Simulates `replications` runs of every list of `lists` (the same items and semantics, new
// recalls) with the given rule, drawing from gen. Returns the simulated data set (subjects and
// list numbers kept; recalls are serial positions 1..L, never intrusions).
FreeRecallData simulate(const CMRParams& p, const FreeRecallData& like,
                        const std::vector<std::vector<double>>& similarity, RecallRule rule,
                        int64_t replications, Generator& gen);

}  // namespace engram::cmr
