// memory/cmr/cmr.cpp — see cmr.h for the equations.
//
// Two implementations of the same model: the batched, differentiable log_likelihood (engram ops
// over [B, L, D] tensors, what the fit differentiates) and the plain per-list loops below it (the
// reference the tests hold it equal to, and the simulator).
#include "memory/cmr/cmr.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "autograd/ops.h"
#include "memory/cmr/context.h"

namespace engram::cmr {

void CMRParams::validate() const {
  auto in = [](double v, double lo, double hi, bool lo_open, const char* name, const char* range) {
    bool ok = std::isfinite(v) && (lo_open ? v > lo : v >= lo) && v <= hi;
    ENGRAM_CHECK(ok, "CMR parameter {} = {} is outside {}", name, v, range);
  };
  const double inf = std::numeric_limits<double>::infinity();
  in(B_enc, 0, 1, true, "B_enc", "(0, 1]");
  in(B_start, 0, 1, false, "B_start", "[0, 1]");
  in(B_rec, 0, 1, true, "B_rec", "(0, 1]");
  in(gamma_fc, 0, 1, false, "gamma_fc", "[0, 1]");
  in(L_cf, 0, inf, false, "L_cf (a learning rate)", "[0, inf)");
  in(phi_s, 0, inf, false, "phi_s", "[0, inf)");
  in(phi_d, 0, inf, false, "phi_d", "[0, inf)");
  in(s, 0, inf, false, "s (semantic scale)", "[0, inf)");
  in(T, 0, inf, true, "T (softmax temperature)", "(0, inf)");
  ENGRAM_CHECK(std::isfinite(X1) && X1 > 0 && X1 < 1, "CMR parameter X1 = {} is outside (0, 1)", X1);
  in(X2, 0, inf, false, "X2", "[0, inf)");
  in(kappa, 0, inf, false, "kappa (LCA decay)", "[0, inf)");
  in(lambda, 0, inf, false, "lambda (LCA inhibition)", "[0, inf)");
  in(eta, 0, inf, false, "eta (LCA noise)", "[0, inf)");
  in(dt_tau, 0, 1, true, "dt_tau (LCA step)", "(0, 1]");
  ENGRAM_CHECK(recall_steps > 0, "CMR parameter recall_steps = {} must be positive", recall_steps);
}

std::string CMRParams::str() const {
  return fmt::format("B_enc={:.4g} B_start={:.4g} B_rec={:.4g} gamma_fc={:.4g} L_cf={:.4g} "
                     "phi_s={:.4g} phi_d={:.4g} s={:.4g} T={:.4g} X1={:.4g} X2={:.4g}",
                     B_enc, B_start, B_rec, gamma_fc, L_cf, phi_s, phi_d, s, T, X1, X2);
}

CMRParams polyn2009_full() {
  CMRParams p;
  p.B_enc = 0.77, p.B_rec = 0.51, p.B_start = 0;  // temporal context; Polyn 2009 has no B_start
  p.gamma_fc = 0.898, p.L_cf = 1.0;               // L^CF_tw = 1 (fixed in the paper)
  p.phi_s = 1.07, p.phi_d = 0.98, p.s = 2.78;
  p.kappa = 0.111, p.lambda = 0.338, p.eta = 0.159, p.dt_tau = 0.174, p.recall_steps = 900;
  return p;
}

// ------------------------------------------------------------------------------ tensors

CMRTensors CMRTensors::from(const CMRParams& p) {
  auto t = [](double v) { return full({}, v, DType::f64); };
  return {t(p.B_enc), t(p.B_start), t(p.B_rec), t(p.gamma_fc), t(p.L_cf), t(p.phi_s),
          t(p.phi_d), t(p.s),       t(p.T),       t(p.X1),     t(p.X2)};
}
std::vector<Tensor> CMRTensors::all() const {
  return {B_enc, B_start, B_rec, gamma_fc, L_cf, phi_s, phi_d, s, T, X1, X2};
}
std::vector<std::string> CMRTensors::names() {
  return {"B_enc", "B_start", "B_rec", "gamma_fc", "L_cf", "phi_s", "phi_d", "s", "T", "X1", "X2"};
}
CMRParams CMRTensors::values(CMRParams p) const {
  p.B_enc = B_enc.item(), p.B_start = B_start.item(), p.B_rec = B_rec.item();
  p.gamma_fc = gamma_fc.item(), p.L_cf = L_cf.item(), p.phi_s = phi_s.item();
  p.phi_d = phi_d.item(), p.s = s.item(), p.T = T.item(), p.X1 = X1.item(), p.X2 = X2.item();
  return p;
}

ListBatch make_batch(const std::vector<RecallList>& lists,
                     const std::vector<std::vector<double>>& similarity) {
  ENGRAM_CHECK(!lists.empty(), "cmr::make_batch: no lists");
  ListBatch b;
  b.B = (int64_t)lists.size();
  b.L = lists[0].length();
  const int64_t B = b.B, L = b.L;
  std::vector<double> sem(B * L * L, 0.0);
  std::vector<int64_t> rec(B * L, 0);
  for (int64_t l = 0; l < B; ++l) {
    const RecallList& rl = lists[l];
    ENGRAM_CHECK(rl.length() == L, "cmr::make_batch: list {} of subject {} has {} items, the first "
                 "list {}", rl.list, rl.subject, rl.length(), L);
    if (!similarity.empty())
      for (int64_t i = 0; i < L; ++i)
        for (int64_t j = 0; j < L; ++j) {
          int64_t a = rl.item_ids[i], c = rl.item_ids[j];
          ENGRAM_CHECK(a >= 0 && a < (int64_t)similarity.size() && c >= 0 &&
                           c < (int64_t)similarity.size(),
                       "cmr::make_batch: item id outside the similarity matrix ({} items)",
                       similarity.size());
          sem[(l * L + i) * L + j] = i == j ? 0.0 : similarity[a][c];
        }
    // valid recalls: in-list, first time
    std::vector<bool> seen(L, false);
    std::vector<int64_t> seq;
    for (int64_t r : rl.recalls) {
      if (r < 1 || r > L || seen[r - 1]) continue;
      seen[r - 1] = true;
      seq.push_back(r - 1);
    }
    for (size_t k = 0; k < seq.size(); ++k) rec[l * L + k] = seq[k];
    b.n_recalls.push_back((int64_t)seq.size());
    b.sequences.push_back(seq);
  }
  b.sem = from_vector(sem, {B, L, L}, DType::f64);
  b.recalls = from_vector(rec, {B, L});
  return b;
}

Tensor log_likelihood(const CMRTensors& p, const ListBatch& batch) {
  const int64_t B = batch.B, L = batch.L, D = L + 1;
  const DType f64 = DType::f64;
  // Constants built on the host go to the batch's device (a no-op on the CPU).
  const Device dev = batch.sem.device();
  auto on_dev = [&](const Tensor& t) { return raw::to_device(t, dev); };
  // unit[k] is the one-hot context vector e_k, [D]
  auto unit = [&](int64_t k) {
    std::vector<double> e(D, 0.0);
    e[k] = 1;
    return expand(on_dev(from_vector(e, {1, D}, f64)), {B, D});
  };
  // ---- study: c_i = drift(c_{i-1}, e_{i+1}, B_enc); the contexts C [B, L, D]
  Tensor c = unit(0);
  std::vector<Tensor> ctx;
  for (int64_t i = 0; i < L; ++i) {
    c = drift(c, unit(i + 1), p.B_enc);
    ctx.push_back(c);
  }
  Tensor C = stack(ctx, 1);
  // M^CF's experimental part: weight L_cf phi_i on item i's context, phi_i = phi_s e^{-phi_d i} + 1
  Tensor positions = on_dev(arange(0, (double)L, 1, f64));
  Tensor w = mul(p.L_cf, add(mul(p.phi_s, exp(mul(neg(p.phi_d), positions))), 1.0));  // [L]
  // normalised M^FC f_r for every item: (1 - gamma) e_{r+1} + gamma c_r
  std::vector<double> eye(L * D, 0.0);
  for (int64_t i = 0; i < L; ++i) eye[i * D + i + 1] = 1;
  Tensor unit_items = on_dev(from_vector(eye, {1, L, D}, f64));
  Tensor item_input = normalize(add(mul(1.0 - p.gamma_fc, unit_items), mul(p.gamma_fc, C)), -1);
  // a = s SEM c_items + w * (C c): the cue strength of every item, [B, L]. Computed directly
  // once, at the start of recall; after that it follows the context's own recurrence. Drift is
  // linear in c: c' = rho c + beta x_r (x_r = normalised M^FC f_r), so
  //     C c'         = rho (C c)         + beta (C x_r)          = rho E + beta Q[:, :, r]
  //     SEM c'_items = rho (SEM c_items) + beta (SEM x_r,items)  = rho S + beta P[:, :, r]
  // with Q = C X^T and P = SEM X_items^T, [B, L, L], made once. Each recall step then costs
  // O(B L) instead of O(B L D) (the fit runs thousands of them).
  Tensor X_items = slice(item_input, 2, 1, D);                          // [B, L, L]
  Tensor Q = matmul(C, transpose(item_input, 1, 2));                     // [B, L(i), L(r)]
  Tensor P = matmul(batch.sem, transpose(X_items, 1, 2));                // [B, L(i), L(r)]

  // ---- recall
  c = drift(c, unit(0), p.B_start);
  Tensor E = sum(mul(C, unsqueeze(c, 1)), {-1});                         // C c, [B, L]
  Tensor S = sum(mul(batch.sem, unsqueeze(slice(c, 1, 1, D), 1)), {-1}); // SEM c_items, [B, L]
  Tensor ll = zeros({B}, f64, dev);
  int64_t max_n = *std::max_element(batch.n_recalls.begin(), batch.n_recalls.end());
  // The recall sequences are data, so the columns every step needs are gathered in one op each
  // and split with unbind (one tape node): a gather per step would scatter a [B, L, L] zero
  // gradient per step in the backward.
  const Tensor seq = batch.recalls;                                               // [B, L] i64
  std::vector<Tensor> xs = unbind(gather(item_input, 1, expand(unsqueeze(seq, -1), {B, L, D})), 1);
  std::vector<Tensor> qs = unbind(gather(Q, 2, expand(unsqueeze(seq, 1), {B, L, L})), 2);
  std::vector<Tensor> ps = unbind(gather(P, 2, expand(unsqueeze(seq, 1), {B, L, L})), 2);
  std::vector<double> recalled(B * L, 0.0);  // items recalled before step j
  const double neg_inf = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j <= std::min(max_n, L - 1); ++j) {
    Tensor p_stop = clamp(mul(p.X1, exp(mul(p.X2, (double)j))), 1e-6, 1 - 1e-6);
    std::vector<double> active(B), stopping(B);
    std::vector<int64_t> next(B, 0);
    for (int64_t b = 0; b < B; ++b) {
      active[b] = j < batch.n_recalls[b];
      stopping[b] = j == batch.n_recalls[b];
      if (active[b]) next[b] = batch.sequences[b][j];
    }
    Tensor act = on_dev(from_vector(active, {B}, f64)), stop = on_dev(from_vector(stopping, {B}, f64));
    ll = add(ll, mul(stop, log(p_stop)));
    if (j == max_n) break;  // every list has stopped
    ll = add(ll, mul(act, log(1.0 - p_stop)));
    Tensor cue = add(mul(p.s, S), mul(w, E));
    Tensor logits = div(mul(cue, 2.0), p.T);
    Tensor masked = where(on_dev(from_vector(recalled, {B, L}, f64)), full({}, neg_inf, f64, dev), logits);
    Tensor idx = on_dev(from_vector(next, {B, 1}));
    Tensor chosen = squeeze(gather(log_softmax(masked, -1), 1, idx), 1);  // [B]
    ll = add(ll, where(act, chosen, zeros({}, f64, dev)));
    // reinstate the recalled item's context in the lists that recalled one (drift, written out
    // so that rho also advances E and S)
    const Tensor &x = xs[j], &q = qs[j], &pr = ps[j];  // [B, D], [B, L], [B, L]
    Tensor dot = sum(mul(c, x), {-1}, true);                                    // [B, 1]
    Tensor beta = p.B_rec;
    Tensor rho = sub(sqrt(add(mul(mul(beta, beta), mul(dot, dot) - 1.0), 1.0)), mul(beta, dot));
    Tensor on = unsqueeze(act, -1);
    c = where(on, add(mul(rho, c), mul(beta, x)), c);
    E = where(on, add(mul(rho, E), mul(beta, q)), E);
    S = where(on, add(mul(rho, S), mul(beta, pr)), S);
    for (int64_t b = 0; b < B; ++b)
      if (active[b]) recalled[b * L + next[b]] = 1;
  }
  return ll;
}

// ------------------------------------------------------------------------------ plain loops

namespace {

// A studied list on plain vectors: the contexts, the M^CF weights and where recall starts.
struct StudiedList {
  int64_t L, D;
  std::vector<std::vector<double>> ctx;         // c_i per item, [L][D]
  std::vector<std::vector<double>> item_input;  // normalised M^FC f_i, [L][D]
  std::vector<double> w;                        // L_cf phi_i
  std::vector<double> start;                    // context at the start of recall
};

StudiedList study(const CMRParams& p, int64_t L) {
  StudiedList st{L, L + 1, {}, {}, {}, {}};
  std::vector<double> c(st.D, 0.0);
  c[0] = 1;
  for (int64_t i = 0; i < L; ++i) {
    std::vector<double> e(st.D, 0.0);
    e[i + 1] = 1;
    drift(c, e, p.B_enc);
    st.ctx.push_back(c);
    st.w.push_back(p.L_cf * (p.phi_s * std::exp(-p.phi_d * double(i)) + 1));
    std::vector<double> in(st.D);
    double n2 = 0;
    for (int64_t k = 0; k < st.D; ++k) {
      in[k] = p.gamma_fc * c[k] + (k == i + 1 ? 1 - p.gamma_fc : 0.0);
      n2 += in[k] * in[k];
    }
    for (double& v : in) v /= std::max(std::sqrt(n2), 1e-12);
    st.item_input.push_back(in);
  }
  std::vector<double> e0(st.D, 0.0);
  e0[0] = 1;
  drift(c, e0, p.B_start);
  st.start = c;
  return st;
}

std::vector<double> cue(const CMRParams& p, const StudiedList& st,
                        const std::vector<std::vector<double>>& sem, const std::vector<double>& c) {
  std::vector<double> a(st.L, 0.0);
  for (int64_t i = 0; i < st.L; ++i) {
    double semantic = 0, episodic = 0;
    if (!sem.empty())
      for (int64_t j = 0; j < st.L; ++j) semantic += sem[i][j] * c[j + 1];
    for (int64_t k = 0; k < st.D; ++k) episodic += st.ctx[i][k] * c[k];
    a[i] = p.s * semantic + st.w[i] * episodic;
  }
  return a;
}

double stop_probability(const CMRParams& p, int64_t j, int64_t L) {
  if (j >= L) return 1;
  return std::clamp(p.X1 * std::exp(p.X2 * double(j)), 1e-6, 1 - 1e-6);
}

// log of exp(2 a_i / T) / sum over unrecalled k, for every unrecalled i
std::vector<double> log_choice(const CMRParams& p, const std::vector<double>& a,
                               const std::vector<bool>& recalled) {
  double m = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < a.size(); ++i)
    if (!recalled[i]) m = std::max(m, 2 * a[i] / p.T);
  double z = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (!recalled[i]) z += std::exp(2 * a[i] / p.T - m);
  std::vector<double> out(a.size(), -std::numeric_limits<double>::infinity());
  for (size_t i = 0; i < a.size(); ++i)
    if (!recalled[i]) out[i] = 2 * a[i] / p.T - m - std::log(z);
  return out;
}

}  // namespace

double list_log_likelihood(const CMRParams& p, const std::vector<std::vector<double>>& sem,
                           const std::vector<int64_t>& sequence) {
  const int64_t L = sem.empty() ? 0 : (int64_t)sem.size();
  ENGRAM_CHECK(L > 0, "cmr::list_log_likelihood: empty semantic matrix (pass [L][L] zeros)");
  StudiedList st = study(p, L);
  std::vector<double> c = st.start;
  std::vector<bool> recalled(L, false);
  double ll = 0;
  for (size_t j = 0;; ++j) {
    const double ps = stop_probability(p, (int64_t)j, L);
    if (j == sequence.size()) return ll + std::log(ps);
    const int64_t r = sequence[j];
    ENGRAM_CHECK(r >= 0 && r < L && !recalled[r], "cmr::list_log_likelihood: recall {} is {}, "
                 "not an unrecalled position in [0, {})", j, r, L);
    ll += std::log(1 - ps) + log_choice(p, cue(p, st, sem, c), recalled)[r];
    recalled[r] = true;
    drift(c, st.item_input[r], p.B_rec);
  }
}

namespace {

// One recall period with the softmax rule: 0-based positions in output order.
std::vector<int64_t> recall_softmax(const CMRParams& p, const StudiedList& st,
                                    const std::vector<std::vector<double>>& sem, Generator& gen) {
  std::vector<double> c = st.start;
  std::vector<bool> recalled(st.L, false);
  std::vector<int64_t> out;
  for (int64_t j = 0; j < st.L; ++j) {
    if (gen.uniform() < stop_probability(p, j, st.L)) break;
    std::vector<double> lp = log_choice(p, cue(p, st, sem, c), recalled);
    double u = gen.uniform(), acc = 0;
    int64_t pick = -1;
    for (int64_t i = 0; i < st.L; ++i) {
      if (recalled[i]) continue;
      pick = i;  // the last unrecalled item takes any rounding remainder
      acc += std::exp(lp[i]);
      if (u < acc) break;
    }
    out.push_back(pick);
    recalled[pick] = true;
    drift(c, st.item_input[pick], p.B_rec);
  }
  return out;
}

// One recall period with Polyn 2009's leaky competing accumulator.
std::vector<int64_t> recall_lca(const CMRParams& p, const StudiedList& st,
                                const std::vector<std::vector<double>>& sem, Generator& gen) {
  std::vector<double> c = st.start;
  std::vector<bool> recalled(st.L, false);
  std::vector<int64_t> out;
  int64_t t = 0;
  while (t < p.recall_steps && (int64_t)out.size() < st.L) {
    std::vector<double> a = cue(p, st, sem, c);
    for (double& v : a) v = std::max(v, 0.0);  // negative inputs do not compete (recall_item.m)
    std::vector<double> x(st.L, 0.0), nx(st.L);
    int64_t winner = -1;
    for (; t < p.recall_steps && winner < 0; ++t) {
      double total = 0;
      for (double v : x) total += v;
      for (int64_t i = 0; i < st.L; ++i)
        nx[i] = std::max(0.0, x[i] + (a[i] - p.kappa * x[i] - p.lambda * (total - x[i])) * p.dt_tau +
                                  p.eta * gen.normal());
      double best = 1.0;  // threshold
      for (int64_t i = 0; i < st.L; ++i) {
        if (nx[i] < 1.0) continue;
        if (recalled[i]) {
          nx[i] = 0.95;  // a recalled item that reaches threshold is set back below it
        } else if (nx[i] >= best) {
          best = nx[i];
          winner = i;
        }
      }
      x.swap(nx);
    }
    if (winner < 0) break;  // time ran out
    out.push_back(winner);
    recalled[winner] = true;
    drift(c, st.item_input[winner], p.B_rec);
  }
  return out;
}

}  // namespace

FreeRecallData simulate(const CMRParams& p, const FreeRecallData& like,
                        const std::vector<std::vector<double>>& similarity, RecallRule rule,
                        int64_t replications, Generator& gen) {
  p.validate();
  ENGRAM_CHECK(replications > 0, "cmr::simulate: replications must be positive, got {}", replications);
  FreeRecallData sim;
  sim.source = fmt::format("simulated CMR ({}, {} replications of {})",
                           rule == RecallRule::softmax ? "softmax rule" : "LCA", replications,
                           like.source);
  sim.pool = like.pool;
  sim.pool_categories = like.pool_categories;
  sim.category_names = like.category_names;
  sim.list_length = like.list_length;
  for (int64_t rep = 0; rep < replications; ++rep)
    for (const RecallList& rl : like.lists) {
      const int64_t L = rl.length();
      std::vector<std::vector<double>> sem(L, std::vector<double>(L, 0.0));
      if (!similarity.empty())
        for (int64_t i = 0; i < L; ++i)
          for (int64_t j = 0; j < L; ++j)
            if (i != j) sem[i][j] = similarity[rl.item_ids[i]][rl.item_ids[j]];
      StudiedList st = study(p, L);
      std::vector<int64_t> seq = rule == RecallRule::softmax ? recall_softmax(p, st, sem, gen)
                                                             : recall_lca(p, st, sem, gen);
      RecallList out = rl;
      out.list = rl.list + rep * 100000;  // replications stay distinct lists of the same subject
      out.recalls.clear();
      for (int64_t r : seq) out.recalls.push_back(r + 1);
      sim.lists.push_back(std::move(out));
    }
  return sim;
}

}  // namespace engram::cmr
