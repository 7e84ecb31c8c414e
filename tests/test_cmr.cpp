// tests/test_cmr.cpp — the classic CMR model (memory/cmr/): context drift, the batched
// differentiable likelihood against the per-list reference, its gradcheck in f64 with respect to
// every parameter, normalisation of the softmax rule, parameter validation, and simulation.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "memory/cmr/analysis.h"
#include "memory/cmr/cmr.h"
#include "memory/cmr/context.h"
#include "test_util.h"

using namespace engram;
using namespace engram::cmr;
using engram::testing::contains;
using engram::testing::error_of;

namespace {

// A small data set: `n` lists of L items over a pool of P items with a random symmetric
// similarity, recalls drawn at random (with an intrusion and a repeat to be dropped).
struct Toy {
  FreeRecallData data;
  std::vector<std::vector<double>> sim;
};
Toy toy(int64_t n, int64_t L, uint64_t seed) {
  Generator g(seed);
  Toy t;
  const int64_t P = 3 * L;
  t.sim.assign(P, std::vector<double>(P, 0.0));
  for (int64_t a = 0; a < P; ++a)
    for (int64_t b = 0; b < a; ++b) t.sim[a][b] = t.sim[b][a] = g.uniform();
  t.data.list_length = L;
  for (int64_t l = 0; l < n; ++l) {
    RecallList rl;
    rl.subject = 1 + l % 2;
    rl.list = l;
    for (int64_t i = 0; i < L; ++i) rl.item_ids.push_back((l * L + i) % P);
    int64_t k = (int64_t)(g.uniform() * (L + 1));  // 0..L recalls
    std::vector<int64_t> order(L);
    for (int64_t i = 0; i < L; ++i) order[i] = i + 1;
    for (int64_t i = L - 1; i > 0; --i) std::swap(order[i], order[(int64_t)(g.uniform() * (i + 1))]);
    for (int64_t i = 0; i < k; ++i) rl.recalls.push_back(order[i]);
    if (l == 1) rl.recalls.insert(rl.recalls.begin(), 0);                  // an intrusion
    if (l == 2 && k > 0) rl.recalls.push_back(rl.recalls.front());        // a repeat
    t.data.lists.push_back(rl);
  }
  return t;
}

CMRParams some_params() {
  CMRParams p;
  p.B_enc = 0.62, p.B_start = 0.35, p.B_rec = 0.81, p.gamma_fc = 0.4, p.L_cf = 1.3;
  p.phi_s = 1.7, p.phi_d = 0.6, p.s = 0.8, p.T = 0.45, p.X1 = 0.05, p.X2 = 0.4;
  return p;
}

std::vector<std::vector<double>> list_sem(const Toy& t, const RecallList& rl) {
  int64_t L = rl.length();
  std::vector<std::vector<double>> sem(L, std::vector<double>(L, 0.0));
  for (int64_t i = 0; i < L; ++i)
    for (int64_t j = 0; j < L; ++j)
      if (i != j) sem[i][j] = t.sim[rl.item_ids[i]][rl.item_ids[j]];
  return sem;
}

}  // namespace

TEST_CASE("cmr: context drift keeps unit length and is the identity at beta 0") {
  Generator g(5);
  std::vector<double> c = {0.6, 0.8, 0, 0}, in = {0.0, 0.6, 0.0, 0.8};
  std::vector<double> c0 = c;
  drift(c, in, 0.0);
  CHECK_VEC(c, c0);
  for (double beta : {0.1, 0.5, 0.9, 1.0}) {
    std::vector<double> x = c0;
    drift(x, in, beta);
    double n2 = 0, dot_in = 0, dot0 = 0;
    for (size_t k = 0; k < x.size(); ++k) n2 += x[k] * x[k], dot_in += x[k] * in[k], dot0 += c0[k] * in[k];
    CAPTURE(beta);
    CHECK(n2 == doctest::Approx(1).epsilon(1e-14));
    CHECK(dot_in > dot0);  // context moved towards its input
  }
  // orthogonal input, beta 1: replaced by the input
  std::vector<double> y = {1, 0}, e = {0, 1};
  drift(y, e, 1.0);
  CHECK(y[0] == doctest::Approx(0).epsilon(1e-12));
  CHECK(y[1] == doctest::Approx(1));
  // the tensor version agrees and is gradchecked in every input
  Tensor ct = normalize(randn({3, 5}, DType::f64, &g), -1), it = normalize(randn({3, 5}, DType::f64, &g), -1);
  Tensor beta = full({3, 1}, 0.4, DType::f64);
  std::vector<double> cv = ct.to_vector<double>(), iv = it.to_vector<double>();
  std::vector<double> row(cv.begin(), cv.begin() + 5), row_in(iv.begin(), iv.begin() + 5);
  drift(row, row_in, 0.4);
  std::vector<double> got = drift(ct, it, beta).to_vector<double>();
  for (int k = 0; k < 5; ++k) CHECK(got[k] == doctest::Approx(row[k]).epsilon(1e-13));
  GradcheckOptions opt;
  opt.atol = 1e-8, opt.rtol = 1e-6;
  auto fn = [](const std::vector<Tensor>& in) { return drift(in[0], in[1], in[2]); };
  GradcheckResult r = gradcheck(fn, {ct, it, beta}, {true, true, true}, opt);
  CHECK_MESSAGE(r.ok, r.message);
}

TEST_CASE("cmr: the batched likelihood equals the per-list reference") {
  Toy t = toy(9, 5, 11);
  ListBatch batch = make_batch(t.data.lists, t.sim);
  CHECK(batch.sequences[1].size() + 0 == batch.n_recalls[1]);  // the intrusion is gone
  for (CMRParams p : {some_params(), polyn2009_full()}) {
    p.T = p.T > 0 ? p.T : 0.3;
    std::vector<double> ll = log_likelihood(CMRTensors::from(p), batch).to_vector<double>();
    REQUIRE(ll.size() == 9);
    for (size_t l = 0; l < ll.size(); ++l) {
      double ref = list_log_likelihood(p, list_sem(t, t.data.lists[l]), batch.sequences[l]);
      CAPTURE(l);
      CHECK(std::isfinite(ll[l]));
      CHECK(ll[l] == doctest::Approx(ref).epsilon(1e-12));
    }
  }
}

TEST_CASE("cmr: the softmax rule is a distribution over every recall sequence") {
  // Sum P(sequence) over all 1 + 3 + 6 + 6 = 16 sequences of a 3-item list: exactly 1.
  Toy t = toy(1, 3, 2);
  std::vector<std::vector<double>> sem = list_sem(t, t.data.lists[0]);
  CMRParams p = some_params();
  double total = 0;
  std::function<void(std::vector<int64_t>)> walk = [&](std::vector<int64_t> seq) {
    total += std::exp(list_log_likelihood(p, sem, seq));
    for (int64_t i = 0; i < 3; ++i)
      if (std::find(seq.begin(), seq.end(), i) == seq.end()) {
        std::vector<int64_t> next = seq;
        next.push_back(i);
        walk(next);
      }
  };
  walk({});
  CHECK(total == doctest::Approx(1).epsilon(1e-12));
}

TEST_CASE("cmr: the log-likelihood is gradchecked in f64 with respect to every parameter") {
  Toy t = toy(5, 4, 3);
  ListBatch batch = make_batch(t.data.lists, t.sim);
  CMRTensors base = CMRTensors::from(some_params());
  std::vector<Tensor> inputs = base.all();
  auto fn = [&](const std::vector<Tensor>& in) {
    CMRTensors p{in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], in[8], in[9], in[10]};
    return sum(log_likelihood(p, batch));
  };
  GradcheckOptions opt;
  opt.atol = 1e-7, opt.rtol = 1e-6;
  GradcheckResult r = gradcheck(fn, inputs, std::vector<bool>(inputs.size(), true), opt);
  CHECK_MESSAGE(r.ok, r.message);
  MESSAGE("CMR likelihood gradcheck: max_abs_err " << r.max_abs_err);
  // every parameter really moves the likelihood (a parameter the model ignored would pass the
  // gradcheck with a zero gradient)
  for (Tensor& x : inputs) x.requires_grad_(true);
  Tensor nll = neg(fn(inputs));
  backward(nll);
  for (size_t i = 0; i < inputs.size(); ++i) {
    CAPTURE(CMRTensors::names()[i]);
    CHECK(std::abs(inputs[i].grad().item()) > 1e-6);
  }
}

TEST_CASE("cmr: an invalid parameter is a one-line error naming it") {
  CMRParams p;
  p.B_enc = 1.2;
  CHECK(contains(error_of([&] { p.validate(); }), "B_enc = 1.2 is outside (0, 1]"));
  p = CMRParams{};
  p.L_cf = -0.5;
  CHECK(contains(error_of([&] { p.validate(); }), "L_cf (a learning rate) = -0.5"));
  p = CMRParams{};
  p.B_rec = 0;
  CHECK(contains(error_of([&] { p.validate(); }), "B_rec = 0 is outside (0, 1]"));
  p = CMRParams{};
  p.X1 = 1;
  CHECK(contains(error_of([&] { p.validate(); }), "X1 = 1"));
  CHECK(error_of([] { polyn2009_full().validate(); }) == "");
}

TEST_CASE("cmr: simulated recall shows the classic signatures of free recall") {
  // 400 lists of 16 items over 8 subjects, no semantic associations, the softmax rule.
  FreeRecallData like;
  like.list_length = 16;
  for (int64_t l = 0; l < 400; ++l) {
    RecallList rl;
    rl.subject = l % 8, rl.list = l;
    for (int64_t i = 0; i < 16; ++i) rl.item_ids.push_back(i);
    like.lists.push_back(rl);
  }
  CMRParams p;
  p.B_enc = 0.7, p.B_start = 0.3, p.B_rec = 0.8, p.gamma_fc = 0.4, p.phi_s = 2, p.phi_d = 1;
  p.T = 0.3, p.X1 = 0.02, p.X2 = 0.25;
  Generator g(21);
  FreeRecallData sim = simulate(p, like, {}, RecallRule::softmax, 1, g);
  REQUIRE(sim.lists.size() == 400);
  std::vector<double> s = spc(sim.lists).mean, f = pnr(sim.lists, 1).mean;
  std::vector<double> crp = lag_crp(sim.lists, 5).mean;  // index 5 is lag 0
  CAPTURE(engram::testing::show(s));
  CAPTURE(engram::testing::show(crp));
  const double dip = *std::min_element(s.begin() + 2, s.begin() + 9);
  CHECK(s[0] > dip + 0.03);    // primacy: the first item above the U's floor
  CHECK(s[15] > s[7] + 0.2);   // recency
  CHECK(std::max_element(f.begin(), f.end()) - f.begin() == 15);  // the last item is recalled first most often
  CHECK(f[0] > f[7]);          // and the first item next (start-of-list reinstatement)
  CHECK(crp[6] > crp[4]);      // lag +1 above -1 (forward asymmetry)
  for (int k = 1; k < 5; ++k) {
    CHECK(crp[5 + k] > crp[6 + k]);  // contiguity falls with |lag|, forwards ...
    CHECK(crp[5 - k] > crp[4 - k]);  // ... and backwards
  }
  // the leaky competing accumulator (Polyn 2009 CMR Full) recalls in the same sense
  FreeRecallData lca = simulate(polyn2009_full(), like, {}, RecallRule::lca, 1, g);
  std::vector<double> sl = spc(lca.lists).mean, cl = lag_crp(lca.lists, 5).mean;
  CHECK(sl[15] > sl[7]);
  CHECK(cl[6] > cl[4]);
  CHECK(cl[6] > cl[7]);
}
