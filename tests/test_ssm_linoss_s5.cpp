// tests/test_ssm_linoss_s5.cpp — the LinOSS and S5 mixers (nn/ssm/linoss.h, nn/ssm/s5.h):
//   - gradchecked in f64 against central differences w.r.t. the input and every parameter,
//     through two forward calls that carry the state (both discretisations of each);
//   - recurrent mode (T calls of step) equals the parallel mode, and a stream cut into two
//     forward calls equals the uncut one (outputs and final state, f64, 1e-10);
//   - LinOSS's matrices: IM is dissipative (|eig M| = 1/sqrt(1 + dt^2 A) <= 1), IMEX conserves
//     (|eig M| = 1 for 0 < dt^2 A < 4), measured on the layer's own M;
//   - S5's init is the block-diagonal HiPPO-N and its discretisations are the closed forms;
//   - bad input and state shapes are errors naming the layer and the shapes;
//   - PyTorch goldens (tests/golden/ssm_linoss_s5.json, tests/golden/make_ssm_linoss_s5_golden.py):
//     outputs, final state and the gradients of the input, the carried state and every parameter.
#include <doctest/doctest.h>

#include <complex>
#include <map>
#include <set>

#include "autograd/golden.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "nn/ssm/hippo.h"
#include "nn/ssm/linoss.h"
#include "nn/ssm/s5.h"
#include "tests/module_gradcheck.h"
#include "tests/test_util.h"

using namespace engram;
using namespace engram::nn::ssm;
using engram::testing::contains;
using engram::testing::error_of;
using engram::testing::max_abs_diff;
using json = nlohmann::json;

namespace {

using Disc = LinOSS::Discretization;

using engram::testing::module_gradcheck;  // tests/module_gradcheck.h

// y of two forward calls over x's first `cut` tokens and the rest, the state carried; the output
// also depends on the final state so its gradient path is checked too.
Tensor two_calls(SequenceMixer& m, const Tensor& x, int64_t cut) {
  State s = m.initial_state(x.size(0));
  Tensor a = m.forward(slice(x, 1, 0, cut), s), b = m.forward(slice(x, 1, cut, x.size(1)), s);
  return cat({flatten(cat({a, b}, 1)), flatten(state_get(s, "x", "test"))}, 0);
}

std::unique_ptr<SequenceMixer> make_linoss(Disc disc, int64_t H, int64_t P, uint64_t seed) {
  Generator g(seed);
  auto m = std::make_unique<LinOSS>(H, P, disc, &g);
  m->to(DType::f64);
  // keep A_diag away from relu's kink, where central differences are not the derivative
  raw::copy_(m->A_diag, add(m->A_diag, 0.1));
  return m;
}

std::unique_ptr<SequenceMixer> make_s5(bool bilinear, int64_t H, int64_t P, int64_t J, uint64_t seed) {
  Generator g(seed);
  auto m = std::make_unique<S5>(H, P, J, bilinear, &g);
  m->to(DType::f64);
  return m;
}

// Outputs of T calls of step and of one forward, and of a forward cut at `cut`, with their final
// states: all three must agree.
void check_modes_agree(SequenceMixer& m, int64_t B, int64_t T, int64_t cut, uint64_t seed) {
  NoGradGuard ng;
  Generator g(seed);
  Tensor x = randn({B, T, m.width()}, DType::f64, &g);
  State s_par = m.initial_state(B);
  // start from a nonzero carried state, as a later segment of a stream would
  Tensor x0 = randn(state_get(s_par, "x", "test").shape(), DType::f64, &g);
  state_set(s_par, "x", x0);
  State s_rec = s_par, s_cut = s_par;
  Tensor y_par = m.forward(x, s_par);
  std::vector<Tensor> ys;
  for (int64_t t = 0; t < T; ++t) ys.push_back(m.step(select(x, 1, t), s_rec));
  Tensor y_rec = stack(ys, 1);
  Tensor y_cut = cat({m.forward(slice(x, 1, 0, cut), s_cut), m.forward(slice(x, 1, cut, T), s_cut)}, 1);
  CHECK(max_abs_diff(y_rec, y_par) < 1e-10);
  CHECK(max_abs_diff(state_get(s_rec, "x", "test"), state_get(s_par, "x", "test")) < 1e-10);
  CHECK(max_abs_diff(y_cut, y_par) < 1e-10);
  CHECK(max_abs_diff(state_get(s_cut, "x", "test"), state_get(s_par, "x", "test")) < 1e-10);
  // the state is really carried: a fresh state gives other outputs
  State fresh = m.initial_state(B);
  CHECK(max_abs_diff(m.forward(x, fresh), y_par) > 1e-3);
}

// The two eigenvalues of a real 2x2 matrix [[a, b], [c, d]].
std::pair<std::complex<double>, std::complex<double>> eig2(double a, double b, double c, double d) {
  const std::complex<double> half_tr = (a + d) / 2, disc = std::sqrt(std::complex<double>(half_tr * half_tr - (a * d - b * c)));
  return {half_tr + disc, half_tr - disc};
}

}  // namespace

TEST_CASE("linoss: gradchecked in f64 over two calls carrying the state (IM and IMEX)") {
  for (Disc disc : {Disc::IM, Disc::IMEX}) {
    CAPTURE(disc == Disc::IM);
    auto m = make_linoss(disc, 3, 4, 21);
    Generator g(3);
    Tensor x = randn({2, 5, 3}, DType::f64, &g);
    GradcheckResult r = module_gradcheck(*m, [&](const Tensor& xi) { return two_calls(*m, xi, 2); }, x);
    CHECK_MESSAGE(r.ok, r.message);
    MESSAGE("linoss gradcheck max_abs_err=" << r.max_abs_err << " max_rel_err=" << r.max_rel_err);
  }
}

TEST_CASE("s5: gradchecked in f64 over two calls carrying the state (ZOH and bilinear)") {
  for (bool bilinear : {false, true}) {
    CAPTURE(bilinear);
    auto m = make_s5(bilinear, 3, 8, 2, 22);
    Generator g(4);
    Tensor x = randn({2, 5, 3}, DType::f64, &g);
    GradcheckResult r = module_gradcheck(*m, [&](const Tensor& xi) { return two_calls(*m, xi, 3); }, x);
    CHECK_MESSAGE(r.ok, r.message);
    MESSAGE("s5 gradcheck max_abs_err=" << r.max_abs_err << " max_rel_err=" << r.max_rel_err);
  }
}

TEST_CASE("linoss and s5: T steps equal the parallel forward, and a cut stream equals the uncut one") {
  for (Disc disc : {Disc::IM, Disc::IMEX}) {
    auto m = make_linoss(disc, 4, 6, 31);
    check_modes_agree(*m, 2, 9, 4, 5);
  }
  for (bool bilinear : {false, true}) {
    auto m = make_s5(bilinear, 4, 12, 3, 32);
    check_modes_agree(*m, 3, 8, 5, 6);
  }
}

TEST_CASE("linoss: IM is dissipative and IMEX conserves, on the layer's own matrices") {
  for (Disc disc : {Disc::IM, Disc::IMEX}) {
    CAPTURE(disc == Disc::IM);
    Generator g(7);
    LinOSS m(4, 16, disc, &g);
    m.to(DType::f64);
    // A from 0 to 4.5 and dt = sigmoid(2) ~ 0.88: dt^2 A spans (0, 3.5), inside IMEX's (0, 4)
    std::vector<double> a(16);
    for (int i = 0; i < 16; ++i) a[i] = 0.01 + 0.3 * i;
    raw::copy_(m.A_diag, from_vector(a, {16}, DType::f64));
    raw::copy_(m.steps, full({16}, 2.0, DType::f64));
    NoGradGuard ng;
    std::vector<double> M = m.discretise().M.to_vector<double>();
    const double dt = 1.0 / (1.0 + std::exp(-2.0));
    double worst = 0;
    for (int p = 0; p < 16; ++p) {
      auto [l1, l2] = eig2(M[p * 4], M[p * 4 + 1], M[p * 4 + 2], M[p * 4 + 3]);
      const double want = disc == Disc::IM ? 1.0 / std::sqrt(1.0 + dt * dt * a[p]) : 1.0;
      worst = std::max({worst, std::abs(std::abs(l1) - want), std::abs(std::abs(l2) - want)});
      CHECK(std::abs(l1) <= 1.0 + 1e-12);
      if (disc == Disc::IM) CHECK(std::abs(l1) < 1.0);  // strictly dissipative for A > 0
    }
    CHECK(worst < 1e-12);
  }
}

TEST_CASE("s5: the init is the block-diagonal HiPPO-N and the discretisations are closed forms") {
  Generator g(8);
  S5 m(3, 12, 3, false, &g);  // 3 blocks of 4: 2 kept modes per block, Ph = 6
  HippoDPLR h = make_dplr_hippo(4);
  std::vector<double> lre = m.Lambda_re.to_vector<double>(), lim = m.Lambda_im.to_vector<double>(),
                      ls = m.log_step.to_vector<double>();
  REQUIRE(lre.size() == 6);
  for (int p = 0; p < 6; ++p) {
    CHECK(lre[p] == doctest::Approx(-0.5));
    CHECK(lim[p] == doctest::Approx(h.Lambda[p % 2].imag()).epsilon(1e-6));
    CHECK(lim[p] < 0);  // one of each conjugate pair: the negative halves
    CHECK(ls[p] >= std::log(1e-3));
    CHECK(ls[p] < std::log(1e-1));
  }
  CHECK(m.B.shape() == Shape{6, 3, 2});
  CHECK(m.C.shape() == Shape{3, 6, 2});
  CHECK(m.out2->bias.to_vector<double>() == std::vector<double>(3, 0.0));
  for (bool bilinear : {false, true}) {
    S5 s(3, 12, 3, bilinear, &g);
    s.to(DType::f64);
    NoGradGuard ng;
    S5::Discrete d = s.discretise();
    std::vector<double> br = d.lambda_re.to_vector<double>(), bi = d.lambda_im.to_vector<double>(),
                        Bbr = d.B_re.to_vector<double>(), Bbi = d.B_im.to_vector<double>();
    std::vector<cdouble> Bt = complex_values(s.B);
    for (int p = 0; p < 6; ++p) {
      const cdouble L(s.Lambda_re.to_vector<double>()[p], s.Lambda_im.to_vector<double>()[p]);
      const double dt = std::exp(s.log_step.to_vector<double>()[p]);
      cdouble bar, coef;
      if (bilinear) {
        const cdouble BL = 1.0 / (1.0 - dt / 2.0 * L);
        bar = BL * (1.0 + dt / 2.0 * L), coef = BL * dt;
      } else {
        bar = std::exp(L * dt), coef = (bar - 1.0) / L;
      }
      CHECK(std::abs(cdouble(br[p], bi[p]) - bar) < 1e-14);
      CHECK(std::abs(bar) < 1.0);  // Re Lambda = -1/2: stable
      for (int hh = 0; hh < 3; ++hh)
        CHECK(std::abs(cdouble(Bbr[p * 3 + hh], Bbi[p * 3 + hh]) - coef * Bt[p * 3 + hh]) < 1e-14);
    }
  }
  CHECK(contains(error_of([&] { S5(3, 12, 4, false, &g); }), "S5: expected positive d_model"));
  CHECK(contains(error_of([&] { S5(3, 7, 1, false, &g); }), "state_size=7"));
}

TEST_CASE("linoss and s5: bad input and state shapes are errors naming the layer and the shapes") {
  Generator g(9);
  LinOSS lin(4, 6, Disc::IMEX, &g);
  S5 s5(4, 8, 2, false, &g);
  for (SequenceMixer* m : std::vector<SequenceMixer*>{&lin, &s5}) {
    const std::string name = m->type_name();
    CAPTURE(name);
    State s = m->initial_state(2);
    CHECK(contains(error_of([&] { m->forward(zeros({2, 3, 5}), s); }),
                   name + ": expected x [B, T >= 1, 4], got [2, 3, 5]"));
    CHECK(contains(error_of([&] { m->forward(zeros({2, 4}), s); }), name + ": expected x"));
    CHECK(contains(error_of([&] { m->step(zeros({2, 3, 4}), s); }),
                   name + ": expected x_t [B, 4], got [2, 3, 4]"));
    CHECK(contains(error_of([&] { m->forward(zeros({3, 2, 4}), s); }), name + ": state 'x' should be"));
    State empty_state;
    CHECK(contains(error_of([&] { m->step(zeros({2, 4}), empty_state); }), "has no tensor 'x'"));
  }
  CHECK(contains(error_of([&] { LinOSS(0, 4, Disc::IM, &g); }), "LinOSS: d_model and state_size"));
}

TEST_CASE("linoss and s5 match their PyTorch goldens (outputs, final state, every gradient)") {
  const json doc = golden::load_json("ssm_linoss_s5.json");
  const std::set<std::string> expected{"linoss_im", "linoss_imex", "s5_zoh", "s5_bilinear"};
  std::set<std::string> seen;
  for (auto& [case_name, c] : doc.at("cases").items()) {
    CAPTURE(case_name);
    seen.insert(case_name);
    const json& cfg = c.at("config");
    const int64_t H = cfg.at("d_model"), P = cfg.at("state_size");
    std::unique_ptr<SequenceMixer> m;
    if (cfg.at("kind") == "linoss")
      m = std::make_unique<LinOSS>(H, P, cfg.at("discretization") == "IM" ? Disc::IM : Disc::IMEX);
    else
      m = std::make_unique<S5>(H, P, cfg.at("blocks").get<int64_t>(), cfg.at("bilinear").get<bool>());
    m->to(DType::f64);
    // parameters by name: the same set on both sides, each copied in
    nn::NamedTensors params = m->named_parameters();
    std::set<std::string> ours, theirs;
    for (auto& [name, p] : params) {
      ours.insert(name);
      REQUIRE_MESSAGE(c.at("params").contains(name), "golden has no parameter " << name);
      Tensor t = golden::tensor_from_json(c.at("params").at(name));
      REQUIRE(t.shape() == p.shape());
      raw::copy_(p, t);
    }
    for (auto& [name, j] : c.at("params").items()) theirs.insert(name);
    CHECK(ours == theirs);
    Tensor u = golden::tensor_from_json(c.at("inputs").at("u"));
    Tensor x0 = golden::tensor_from_json(c.at("inputs").at("x0"));
    u.requires_grad_(true);
    x0.requires_grad_(true);
    State s{{"x", x0}};
    Tensor out = m->forward(u, s);
    Tensor x_last = state_get(s, "x", "test");
    auto want = [&](const char* group, const std::string& name) {
      return golden::tensor_from_json(c.at(group).at(name));
    };
    backward(add(sum(mul(out, want("upstream", "out"))), sum(mul(x_last, want("upstream", "x_last")))));
    auto close = [&](const std::string& what, const Tensor& got, const Tensor& ref) {
      REQUIRE_MESSAGE(got.defined(), what << " has no value");
      double err = engram::testing::max_rel_diff(got.to_vector<double>(), ref.to_vector<double>(), 1e-3);
      CHECK_MESSAGE(err < 1e-9, what << ": max relative error " << err);
      return err;
    };
    double worst = 0;
    worst = std::max(worst, close("out", out, want("outputs", "out")));
    worst = std::max(worst, close("x_last", x_last, want("outputs", "x_last")));
    worst = std::max(worst, close("grad u", u.grad(), want("grads", "u")));
    worst = std::max(worst, close("grad x0", x0.grad(), want("grads", "x0")));
    for (auto& [name, p] : params) worst = std::max(worst, close("grad " + name, p.grad(), want("grads", "params." + name)));
    MESSAGE(case_name << ": max relative error vs PyTorch (floor 1e-3) " << worst);
  }
  CHECK(seen == expected);
}
