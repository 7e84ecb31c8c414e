// memory/cmr/fit.cpp — see fit.h.
#include "memory/cmr/fit.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <memory>

#include "autograd/ops.h"
#include "nn/distributed.h"
#include "nn/optim.h"

namespace engram::cmr {

namespace {

double logit(double p) { return std::log(p / (1 - p)); }
double softplus_inv(double y) { return y > 20 ? y : std::log(std::expm1(y)); }

// Unconstrained u -> the constrained parameter tensors.
struct Raw {
  Tensor B_enc, B_start, B_rec, gamma_fc, phi_s, phi_d, s, T, X1, X2;
  std::vector<Tensor> all() const { return {B_enc, B_start, B_rec, gamma_fc, phi_s, phi_d, s, T, X1, X2}; }
};

Raw raw_from(const CMRParams& p) {
  auto t = [](double v) { return full({}, v, DType::f64).requires_grad_(true); };
  return {t(logit(p.B_enc)),  t(logit(p.B_start)),      t(logit(p.B_rec)), t(logit(p.gamma_fc)),
          t(softplus_inv(p.phi_s)), t(softplus_inv(p.phi_d)), t(softplus_inv(std::max(p.s, 1e-6))),
          t(softplus_inv(p.T)), t(logit(p.X1)), t(softplus_inv(p.X2))};
}

CMRTensors constrained(const Raw& r, const FitOptions& opt) {
  CMRTensors p;
  p.B_enc = sigmoid(r.B_enc), p.B_start = sigmoid(r.B_start), p.B_rec = sigmoid(r.B_rec);
  p.gamma_fc = sigmoid(r.gamma_fc), p.X1 = sigmoid(r.X1);
  p.phi_s = softplus(r.phi_s), p.phi_d = softplus(r.phi_d), p.T = softplus(r.T), p.X2 = softplus(r.X2);
  p.s = opt.semantic ? softplus(r.s) : zeros({}, DType::f64);
  p.L_cf = full({}, opt.base.L_cf, DType::f64);
  return p;
}

// A random starting point inside the ranges fits usually land in (cmr-titans.md A2).
CMRParams random_start(Generator& g, const FitOptions& opt) {
  auto u = [&](double lo, double hi) { return lo + (hi - lo) * g.uniform(); };
  CMRParams p = opt.base;
  p.B_enc = u(0.3, 0.9), p.B_start = u(0.05, 0.6), p.B_rec = u(0.4, 0.95), p.gamma_fc = u(0.1, 0.7);
  p.phi_s = u(0.5, 5), p.phi_d = u(0.2, 2), p.s = opt.semantic ? u(0.05, 1) : 0.0;
  p.T = u(0.2, 1), p.X1 = u(0.01, 0.1), p.X2 = u(0.1, 0.5);
  return p;
}

// Lists [s.begin, s.begin + s.count) of a batch.
ListBatch list_rows(const ListBatch& b, nn::dist::Shard s) {
  ENGRAM_CHECK(s.count > 0, "cmr::fit: {} lists are too few for {} ranks", b.B, nn::dist::size());
  ListBatch r;
  r.B = s.count, r.L = b.L;
  if (b.sem.defined()) r.sem = contiguous(raw::narrow(b.sem, 0, s.begin, s.count));
  r.recalls = contiguous(raw::narrow(b.recalls, 0, s.begin, s.count));
  r.n_recalls.assign(b.n_recalls.begin() + s.begin, b.n_recalls.begin() + s.begin + s.count);
  r.sequences.assign(b.sequences.begin() + s.begin, b.sequences.begin() + s.begin + s.count);
  return r;
}

}  // namespace

FitResult fit(const ListBatch& batch, const FitOptions& opt,
              const std::function<void(const std::string&)>& log) {
  ENGRAM_CHECK(opt.restarts > 0 && opt.steps > 0 && opt.lr > 0,
               "cmr::fit: restarts, steps and lr must be positive (got {}, {}, {})", opt.restarts,
               opt.steps, opt.lr);
  auto t0 = std::chrono::steady_clock::now();
  FitResult res;
  res.lists = batch.B;
  for (int64_t n : batch.n_recalls) res.recalls += n;
  res.nll = std::numeric_limits<double>::infinity();
  Generator gen(opt.seed);
  // Data parallel (--distributed): each rank evaluates its share of the lists (all of them alone)
  const ListBatch mine = nn::dist::size() > 1 ? list_rows(batch, nn::dist::rows_of(batch.B)) : batch;
  for (int64_t r = 0; r < opt.restarts; ++r) {
    CMRParams start = random_start(gen, opt);  // drawn every restart, so seeds line up
    if (r == 0 && opt.start_from_base) start = opt.base;
    Raw raw = raw_from(start);
    nn::AdamOptions ao;
    ao.lr = opt.lr;
    nn::Adam adam(raw.all(), ao);
    std::unique_ptr<nn::dist::DataParallel> dp;
    if (nn::dist::size() > 1) dp = std::make_unique<nn::dist::DataParallel>(raw.all());
    std::vector<double> trace;
    double best = std::numeric_limits<double>::infinity();
    CMRParams best_params;
    for (int64_t step = 0; step <= opt.steps; ++step) {
      CMRTensors p = constrained(raw, opt);
      Tensor nll = neg(sum(log_likelihood(p, mine)));  // this rank's lists' part of the pooled NLL
      double v = dp ? nn::dist::allreduce_sum(nll.item(), "cmr::fit: nll") : nll.item();
      trace.push_back(v);
      if (v < best) best = v, best_params = p.values(opt.base);
      if (step == opt.steps) {
        tape().clear();
        break;
      }
      adam.zero_grad();
      if (dp) dp->backward(nll);  // the pooled NLL's gradient: summed over the ranks' lists
      else backward(nll);
      adam.step();
    }
    res.restart_nll.push_back(best);
    res.restart_params.push_back(best_params);
    if (log) log(fmt::format("restart {}/{}: nll {:.2f} ({:.4f} per recall event)  {}", r + 1,
                             opt.restarts, best, best / double(res.recalls + res.lists),
                             best_params.str()));
    if (best < res.nll) res.nll = best, res.params = best_params, res.best_trace = trace;
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace engram::cmr
