// tests/test_memnet.cpp — MemNet (memory/memnet/): the graph memory bank, the dreaming synthesizer
// and the whole model with its composite loss:
//   - gradchecks in f64 through several segments and across two calls (a segment straddling the
//     cut), with every mechanism on (top-k, uniform and random policies, spreading, STDP links,
//     dreaming, two write heads) and with the dot-product address;
//   - a stream cut anywhere gives the logits of the uncut stream (the carried state is complete);
//   - the invariants the header promises: read weights are distributions, links stay in [0, 1]
//     with a zero diagonal, the random policy is a reproducible distribution, usage in [0, 1];
//   - STDP links the slots of consecutive segments, and spreading moves read mass along them.
#include <doctest/doctest.h>

#include "apps/common/memnet_dynamics.h"
#include "apps/common/memnet_lm.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "autograd/tape.h"
#include "memory/memnet/memnet.h"
#include "tests/test_util.h"

using namespace engram;
using namespace engram::memnet;
using engram::testing::max_abs_diff;

namespace {

MemNetConfig tiny_memnet() {
  MemNetConfig c;
  c.vocab = 7, c.d_model = 8, c.layers = 1, c.heads = 2, c.window = 3, c.ff_mult = 2;
  c.segment = 2, c.dream_every = 2, c.dream_heads = 2, c.dream_gate = 0.3;
  c.bank.slots = 5, c.bank.width = 4, c.bank.read_heads = 2, c.bank.write_heads = 2;
  c.bank.top_k = 3, c.bank.bottleneck = 3, c.bank.spread_init = 0.3, c.bank.seed = 9;
  return c;
}

// logits of ids in calls of the given lengths, the state carried; the stats of every call.
Tensor run_calls(MemNet& m, const Tensor& ids, const std::vector<int64_t>& lengths,
                 std::vector<MemNetStats>* stats = nullptr) {
  MemNetState st;
  std::vector<Tensor> parts;
  int64_t t = 0;
  for (int64_t len : lengths) {
    MemNetStats s;
    parts.push_back(m.forward(slice(ids, 1, t, t + len), st, &s));
    if (stats) stats->push_back(s);
    t += len;
  }
  return cat(parts, 1);
}

void check_model_gradient(MemNet& m, const Tensor& ids, const std::vector<int64_t>& lengths) {
  std::vector<Tensor> inputs;
  for (auto& [name, p] : m.named_parameters()) inputs.push_back(p);
  Generator g(12);
  Tensor w;
  auto fn = [&](const std::vector<Tensor>&) {
    std::vector<MemNetStats> stats;
    Tensor y = run_calls(m, ids, lengths, &stats);
    if (!w.defined()) w = randn(y.shape(), DType::f64, &g);
    Tensor total = sum(mul(y, w));
    for (const MemNetStats& s : stats) {  // the composite loss's terms, each call's
      MemNetLosses l = memnet_losses(s, m.cfg.bank.slots);
      for (const Tensor& t : {l.hallucination, l.utilization, l.sparsity})
        if (t.defined()) total = add(total, t);
    }
    return total;
  };
  GradcheckOptions o;
  o.atol = 1e-7, o.rtol = 1e-6;
  GradcheckResult res = gradcheck(fn, inputs, std::vector<bool>(inputs.size(), true), o);
  CHECK_MESSAGE(res.ok, res.message);
}

}  // namespace

TEST_CASE("memnet: gradchecked in f64 over two calls, every mechanism on, cosine and dot address") {
  for (Address address : {Address::cosine, Address::dot}) {
    CAPTURE(int(address));
    Generator g(4);
    MemNetConfig c = tiny_memnet();
    c.bank.address = address;
    MemNet m(c, &g);
    m.to(DType::f64);
    Tensor ids = randint(0, 7, {2, 9}, &g);
    check_model_gradient(m, ids, {5, 4});  // 9 tokens, segments of 2: one straddles the cut
  }
}

TEST_CASE("memnet: gradchecked with one policy, no graph, no dreaming, segment 1") {
  Generator g(5);
  MemNetConfig c = tiny_memnet();
  c.segment = 1, c.dream_every = 0, c.bank.graph = false;
  c.bank.policy_uniform = c.bank.policy_random = false, c.bank.write_heads = 1;
  MemNet m(c, &g);
  m.to(DType::f64);
  check_model_gradient(m, randint(0, 7, {2, 6}, &g), {3, 3});
}

TEST_CASE("memnet: a stream cut into calls anywhere gives the logits of the uncut stream") {
  Generator g(6);
  MemNetConfig c = tiny_memnet();
  c.segment = 3;
  MemNet m(c, &g);
  m.to(DType::f64);
  NoGradGuard ng;
  Tensor ids = randint(0, 7, {2, 13}, &g);
  Tensor whole = run_calls(m, ids, {13});
  for (const std::vector<int64_t>& cut : {std::vector<int64_t>{1, 12}, {4, 4, 5}, {2, 1, 1, 9}}) {
    CAPTURE(cut.size());
    CHECK(max_abs_diff(run_calls(m, ids, cut), whole) < 1e-12);
  }
  // and the LM's named state (what a checkpoint holds) carries it all: pack / unpack between calls
  MemNetState st;
  Tensor a = m.forward(slice(ids, 1, 0, 5), st);
  apps::LMState named = apps::pack_memnet_state(st);
  MemNetState back = apps::unpack_memnet_state(named, m);
  Tensor b = m.forward(slice(ids, 1, 5, 13), back);
  CHECK(max_abs_diff(cat({a, b}, 1), whole) < 1e-12);
}

TEST_CASE("memnet: read weights are distributions; links in [0, 1] with zero diagonal; usage in [0, 1]") {
  Generator g(7);
  MemNetConfig c = tiny_memnet();
  c.bank.slots = 6;
  MemNet m(c, &g);
  m.to(DType::f64);
  NoGradGuard ng;
  MemNetState st;
  MemNetStats s;
  for (int call = 0; call < 6; ++call) m.forward(randint(0, 7, {3, 10}, &g), st, &s);
  std::vector<double> w = sum(s.read_weights, {-1}).to_vector<double>();
  for (double v : w) CHECK(v == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(min(s.read_weights).item() >= 0.0);
  std::vector<double> links = st.bank.links.to_vector<double>();
  const int64_t N = 6;
  double total = 0;
  for (size_t i = 0; i < links.size(); ++i) {
    CHECK(links[i] >= 0.0);
    CHECK(links[i] <= 1.0);
    if ((i % (N * N)) / N == (i % (N * N)) % N) CHECK(links[i] == 0.0);
    total += links[i];
  }
  CHECK(total > 0.1);  // 30 segments of activity left links
  CHECK(min(st.bank.usage).item() >= 0.0);
  CHECK(max(st.bank.usage).item() <= 1.0);
  CHECK(s.policy.shape() == Shape{3, 10, 2, 3});
  CHECK(st.position == 60);
  CHECK(s.dreams == 3);  // the last call closes segments 26..30 of the stream: dreams at 26, 28, 30
  CHECK(s.dream_change > 0.0);
}

TEST_CASE("memnet: the random policy is a reproducible Dirichlet draw per stream position") {
  Tensor a = random_read_distributions(3, 2, 4, 2, 5, 100, DType::f64);
  Tensor b = random_read_distributions(3, 2, 4, 2, 5, 100, DType::f64);
  Tensor shifted = random_read_distributions(3, 2, 3, 2, 5, 101, DType::f64);  // positions 101..
  CHECK(a.shape() == Shape{2, 8, 5});
  CHECK(max_abs_diff(a, b) == 0.0);
  // the draw belongs to the position: tokens 1..3 of a are tokens 0..2 of `shifted`
  CHECK(max_abs_diff(slice(a, 1, 2, 8), shifted) == 0.0);
  for (double v : sum(a, {-1}).to_vector<double>()) CHECK(v == doctest::Approx(1.0).epsilon(1e-12));
  Tensor other_seed = random_read_distributions(4, 2, 4, 2, 5, 100, DType::f64);
  CHECK(max_abs_diff(a, other_seed) > 0.01);
}

TEST_CASE("memnet: STDP links the slots of consecutive segments; spreading follows the links") {
  MemoryBankConfig c;
  c.d_model = 4, c.slots = 4, c.width = 2, c.stdp_rate = 1.0, c.link_decay = 1.0, c.spread_init = 0.5;
  Generator g(8);
  MultiHeadMemoryBank bank(c, &g);
  bank.to(DType::f64);
  NoGradGuard ng;
  MemoryBankState st = initial_bank_state(c, 1, DType::f64);
  auto onehot = [](int i) {
    std::vector<double> v(4, 0.0);
    v[size_t(i)] = 1.0;
    return from_vector(v, {1, 4}, DType::f64);
  };
  Tensor none = zeros({1, 4}, DType::f64);
  bank.link(st, onehot(1), none);  // segment 1 active on slot 1 (no previous: no link)
  CHECK(sum(st.links).item() == 0.0);
  bank.link(st, onehot(2), none);  // then slot 2: the link 1 -> 2
  CHECK(st.links.to_vector<double>()[1 * 4 + 2] == doctest::Approx(1.0));
  CHECK(sum(st.links).item() == doctest::Approx(1.0));
  // spreading: W = (1 - a) W_base + a W_base A^. A^'s row 1 is [0 0 1 0]; rows that link nowhere
  // keep their own weight. So slot 1 gives a of its weight to slot 2, and the rest is unchanged.
  raw::copy_(st.slots, randn({1, 4, 2}, DType::f64, &g));
  Tensor h = randn({1, 3, 4}, DType::f64, &g);
  MemoryBankState unlinked = st;
  unlinked.links = zeros({1, 4, 4}, DType::f64);
  std::vector<double> base = bank.read(h, unlinked, 0).weights.to_vector<double>();
  std::vector<double> spread = bank.read(h, st, 0).weights.to_vector<double>();
  const double a = bank.spread();
  CHECK(a == doctest::Approx(0.5));
  for (size_t row = 0; row < base.size() / 4; ++row) {
    const double* w = base.data() + row * 4;
    const double* s2 = spread.data() + row * 4;
    CHECK(s2[0] == doctest::Approx(w[0]).epsilon(1e-12));
    CHECK(s2[1] == doctest::Approx((1 - a) * w[1]).epsilon(1e-12));
    CHECK(s2[2] == doctest::Approx(w[2] + a * w[1]).epsilon(1e-12));
    CHECK(s2[3] == doctest::Approx(w[3]).epsilon(1e-12));
  }
  CHECK(base[1] > 0.01);  // the test moves real mass
}

TEST_CASE("memnet: without memory it is the windowed controller alone; bad configs are one line") {
  Generator g(9);
  MemNetConfig c = tiny_memnet();
  c.memory = false;
  MemNet m(c, &g);
  CHECK(!m.bank);
  MemNetState st;
  Tensor y = m.forward(randint(0, 7, {2, 5}, &g), st);
  CHECK(y.shape() == Shape{2, 5, 7});
  MemNetConfig bad = tiny_memnet();
  bad.bank.top_k = 0;
  CHECK(testing::error_of([&] { MemNet(bad, &g); }) == "memnet: top_k must be >= 1, got 0");
  bad = tiny_memnet();
  bad.segment = 0;
  CHECK(testing::error_of([&] { MemNet(bad, &g); }) ==
        "memnet: model.memnet_segment must be >= 1, got 0");
}

TEST_CASE("memnet dynamics: lifetimes from a hand-made trace, Kaplan-Meier survival with censoring") {
  MemNetTrace tr;
  tr.writes = {{1, 0, 0}, {0, 1, 0}, {0.6f, 0, 0}, {0, 0, 1}};
  tr.write_positions = {4, 8, 12, 16};
  const std::string text = "K=3xaaaabbbbcccc";  // segment 0 holds the bound value '3'
  std::vector<apps::WriteLifetime> life = apps::write_lifetimes(tr, text, 4);
  REQUIRE(life.size() == 4);
  // segment 0 (slot 0) keeps 1 - 0.6 = 0.4 < 1/2 after segment 2: dead at age 12 - 4 = 8
  CHECK(life[0].slot == 0);
  CHECK(life[0].died);
  CHECK(life[0].lifetime == 8);
  CHECK(life[0].binding);
  CHECK(!life[1].binding);
  // the others are censored at the end of the trace (position 16)
  CHECK((!life[1].died && life[1].lifetime == 8));
  CHECK((!life[2].died && life[2].lifetime == 4));
  CHECK((!life[3].died && life[3].lifetime == 0));
  // at age 8 two contents are at risk (lifetimes >= 8) and one dies: S = 1/2
  std::vector<double> s = apps::kaplan_meier(life, {0, 4, 7.9, 8, 100});
  CHECK(s == std::vector<double>{1, 1, 1, 0.5, 0.5});
  CHECK(apps::median_lifetime(life) == 8);
  CHECK(apps::kaplan_meier(life, {8}, apps::WriteKind::binding)[0] == 0.0);  // its one write died
  CHECK(apps::kaplan_meier(life, {8}, apps::WriteKind::filler)[0] == 1.0);
  CHECK(std::isnan(apps::median_lifetime(life, apps::WriteKind::filler)));
}
