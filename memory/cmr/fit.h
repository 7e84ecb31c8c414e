// memory/cmr/fit.h — maximum-likelihood fits of CMR (memory/cmr/cmr.h) by gradient descent.
//
// The reference implementations fit CMR with derivative-free searches (cymr: differential
// evolution; cmr-matlab: fminsearch). engram differentiates the softmax-rule log-likelihood
// through the study and recall recurrences instead, and runs Adam on unconstrained parameters:
//   theta in (0, 1)    theta = sigmoid(u)        (B_enc, B_start, B_rec, gamma_fc, X1)
//   theta in [0, inf)  theta = softplus(u)       (phi_s, phi_d, s, T, X2)
// so every step stays in the valid range. L_cf is held at 1 (Polyn et al. 2009 fix it too: with
// T free, scaling L_cf, s and T together leaves the likelihood unchanged). s is held at 0 when
// there is no semantic matrix. Several restarts from random starting points; the best (lowest)
// pooled negative log-likelihood wins. In a distributed run (nn/distributed.h) each rank
// evaluates its share of the lists and the NLL's gradient is summed over the ranks, so N ranks
// take the steps of one process.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "memory/cmr/cmr.h"

namespace engram::cmr {

struct FitOptions {
  int64_t restarts = 4;
  int64_t steps = 250;       // Adam steps per restart
  double lr = 0.05;
  uint64_t seed = 1;
  bool semantic = true;      // fit s (false: s = 0)
  CMRParams base;            // held parameters (L_cf, LCA fields) come from here
  bool start_from_base = false;  // the first restart starts at `base` instead of at random
};

struct FitResult {
  CMRParams params;
  double nll = 0;                      // pooled over every list, -sum log P
  int64_t lists = 0, recalls = 0;
  std::vector<double> restart_nll;     // each restart's final value
  std::vector<CMRParams> restart_params;
  std::vector<double> best_trace;      // NLL per step of the winning restart
  double seconds = 0;
};

// `log` gets one line per restart (and may be empty).
FitResult fit(const ListBatch& batch, const FitOptions& opt,
              const std::function<void(const std::string&)>& log = {});

}  // namespace engram::cmr
