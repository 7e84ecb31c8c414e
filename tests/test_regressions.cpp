// tests/test_regressions.cpp — one test per bug an audit found by planting faults (issue 8).
//
// Each case reproduces the bug as it was reported and failed before its fix:
//   hebbian_scan backward threw for gamma/eta of shape [1]; unbroadcast reinterpreted a gradient
//   of the wrong shape with the right element count; maximum/minimum and full max()/min() gave a
//   tie's gradient to one side (PyTorch splits it); duplicate reduction dims were accepted;
//   EpisodicBuffer's masked softmax shifted by a max over disallowed slots, so at a small
//   temperature the recall underflowed to 0; topk's comparator was no strict weak order with
//   NaN; the anomaly flag was one global written by every thread; an in-place write between
//   forward and backward silently corrupted gradients.
// (CRSDCell also created its zero states and recalls on the CPU whatever the input's device; the
// fix passes the device through, and it can only be exercised once a second device exists.)
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <thread>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "memory/crsd/episodic.h"
#include "test_util.h"

using namespace engram;
using engram::testing::contains;
using engram::testing::error_of;

TEST_CASE("hebbian_scan: gamma and eta of shape [1] get gradients of shape [1]") {
  Generator g(3);
  Tensor q = randn({2, 4, 3}, DType::f64, &g), k = randn({2, 4, 3}, DType::f64, &g);
  Tensor v = randn({2, 4, 2}, DType::f64, &g);
  Tensor gamma = full({1}, 0.9, DType::f64), eta = full({1}, 0.3, DType::f64);
  gamma.requires_grad_(true);
  eta.requires_grad_(true);
  HebbianScan out = hebbian_scan(q, k, v, gamma, eta);
  CHECK(error_of([&] { backward(sum(out.recall)); }) == "");
  REQUIRE(gamma.grad().defined());
  CHECK(gamma.grad().shape() == Shape{1});
  CHECK(eta.grad().shape() == Shape{1});
  // and the values are right: the same as with 0-d gamma/eta
  Tensor g0 = full({}, 0.9, DType::f64), e0 = full({}, 0.3, DType::f64);
  g0.requires_grad_(true);
  e0.requires_grad_(true);
  backward(sum(hebbian_scan(q, k, v, g0, e0).recall));
  CHECK(gamma.grad().item() == doctest::Approx(g0.grad().item()).epsilon(1e-12));
  CHECK(eta.grad().item() == doctest::Approx(e0.grad().item()).epsilon(1e-12));
}

TEST_CASE("unbroadcast rejects a gradient whose dims do not broadcast to the input") {
  Tensor g = ones({4, 3}, DType::f64);
  std::string err = error_of([&] { unbroadcast(g, {3, 4}); });
  CHECK(contains(err, "does not broadcast to input shape [3, 4]"));
  // real broadcasting still sums: [4, 3] onto [1, 3] and onto [3]
  CHECK_VEC(unbroadcast(g, {1, 3}).to_vector<double>(), {4, 4, 4});
  CHECK_VEC(unbroadcast(g, {3}).to_vector<double>(), {4, 4, 4});
  CHECK(error_of([&] { unbroadcast(g, {2, 3}); }) != "");
}

TEST_CASE("ties split the gradient evenly, as in PyTorch") {
  SUBCASE("maximum / minimum") {
    Tensor a = from_vector(std::vector<double>{1, 2, 3}, {3}, DType::f64);
    Tensor b = from_vector(std::vector<double>{1, 5, 0}, {3}, DType::f64);
    for (bool is_max : {true, false}) {
      a.requires_grad_(true);
      b.requires_grad_(true);
      backward(sum(is_max ? maximum(a, b) : minimum(a, b)));
      CAPTURE(is_max);
      CHECK_VEC(a.grad().to_vector<double>(), (is_max ? std::vector<double>{0.5, 0, 1}
                                                      : std::vector<double>{0.5, 1, 0}));
      CHECK_VEC(b.grad().to_vector<double>(), (is_max ? std::vector<double>{0.5, 1, 0}
                                                      : std::vector<double>{0.5, 0, 1}));
      zero_grad({a, b});
    }
  }
  SUBCASE("full max() and min() over three tied elements") {
    Tensor x = from_vector(std::vector<double>{3, -1, 3, 0, 3, -1}, {2, 3}, DType::f64);
    x.requires_grad_(true);
    backward(max(x));
    CHECK_VEC(x.grad().to_vector<double>(), {1.0 / 3, 0, 1.0 / 3, 0, 1.0 / 3, 0});
    zero_grad({x});
    backward(min(x));
    CHECK_VEC(x.grad().to_vector<double>(), {0, 0.5, 0, 0, 0, 0.5});
  }
}

TEST_CASE("a reduction dim named twice is an error, as in PyTorch") {
  Tensor x = ones({2, 3, 4});
  CHECK(contains(error_of([&] { sum(x, {1, 1}); }), "dim 1 appears more than once"));
  CHECK(contains(error_of([&] { mean(x, {2, -1}); }), "dim 2 appears more than once"));
  CHECK(error_of([&] { sum(x, {0, 2}); }) == "");
}

TEST_CASE("EpisodicBuffer recalls the allowed slot at a tiny temperature") {
  // Two filled slots; slot 0 matches the query best but is outside the recency window. With the
  // softmax shifted by the max over all slots, exp((0.6 - 1) / 1e-4) underflowed to 0 and the
  // recall was 0 instead of slot 1's value.
  memory::EpisodicOptions opt;
  opt.slots = 2;
  opt.temperature = 1e-4;
  opt.recency_window = 3;
  memory::EpisodicBuffer buf(2, 2, opt);
  memory::EpisodicState st = buf.initial_state(1, DType::f64);
  st.keys = from_vector(std::vector<double>{1, 0, 0.6, 0.8}, {1, 2, 2}, DType::f64);
  st.values = from_vector(std::vector<double>{10, 20, 3, 4}, {1, 2, 2}, DType::f64);
  st.filled = ones({1, 2}, DType::f64);
  st.age = from_vector(std::vector<double>{5, 0}, {1, 2}, DType::f64);
  Tensor q = from_vector(std::vector<double>{1, 0}, {1, 2}, DType::f64);
  Tensor recall = buf.step(q, q, q, st);
  std::vector<double> r = recall.to_vector<double>();
  CHECK(r[0] == doctest::Approx(3).epsilon(1e-12));
  CHECK(r[1] == doctest::Approx(4).epsilon(1e-12));
}

TEST_CASE("topk orders NaN above every number, as PyTorch does") {
  double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor x = from_vector(std::vector<double>{1, nan, 3, 2, nan}, {5}, DType::f64);
  TopK big = topk(x, 3, 0, true);
  std::vector<double> v = big.values.to_vector<double>();
  CHECK(std::isnan(v[0]));
  CHECK(std::isnan(v[1]));
  CHECK(v[2] == 3);
  CHECK_VEC(big.indices.to_vector<int64_t>(), {1, 4, 2});
  TopK small = topk(x, 3, 0, false);
  CHECK_VEC(small.values.to_vector<double>(), {1, 2, 3});
  CHECK_VEC(small.indices.to_vector<int64_t>(), {0, 3, 2});
  // many NaNs in a long line: a valid order (no crash, NaNs first, the rest descending)
  std::vector<double> long_line(257);
  for (size_t i = 0; i < long_line.size(); ++i) long_line[i] = i % 3 == 0 ? nan : double(i % 17);
  std::vector<double> top = topk(from_vector(long_line, {257}, DType::f64), 120, 0).values.to_vector<double>();
  int n_nan = 0;
  for (size_t i = 0; i < top.size(); ++i) {
    if (std::isnan(top[i])) {
      CHECK(i == (size_t)n_nan++);  // every NaN precedes every number
    } else if (i > 0 && !std::isnan(top[i - 1])) {
      CHECK(top[i - 1] >= top[i]);
    }
  }
  CHECK(n_nan == 86);
}

TEST_CASE("anomaly mode is per thread") {
  AnomalyGuard on;
  REQUIRE(anomaly_mode());
  bool seen_in_other_thread = true;
  std::thread t([&] { seen_in_other_thread = anomaly_mode(); });
  t.join();
  CHECK_FALSE(seen_in_other_thread);
  CHECK(anomaly_mode());
}

TEST_CASE("an in-place write between forward and backward is an error, not a wrong gradient") {
  Tensor x = from_vector(std::vector<double>{0.5, -1.0}, {2}, DType::f64);
  x.requires_grad_(true);
  Tensor y = tanh(x);  // the backward reads y: 1 - y^2
  Tensor loss = sum(y);
  raw::copy_(y, zeros({2}, DType::f64));
  // the first node to meet the changed tensor is sum's (its input); tanh's output is the same one
  std::string err = error_of([&] { backward(loss); });
  CHECK(contains(err, "input 0 (shape [2]) of op 'sum' was modified in place after the op ran (version 0 -> 1)"));
  tape().clear();
  y = tanh(x);
  raw::copy_(y, zeros({2}, DType::f64));
  CHECK(contains(error_of([&] { backward(y, ones({2}, DType::f64)); }),
                 "output 0 (shape [2]) of op 'tanh' was modified in place"));
  // an optimizer-style write to a leaf the graph saved is caught the same way
  Tensor w = ones({2}, DType::f64);
  w.requires_grad_(true);
  Tensor l2 = sum(mul(w, x));
  raw::copy_(w, full({2}, 2.0, DType::f64));
  CHECK(contains(error_of([&] { backward(l2); }), "input 0 (shape [2]) of op 'mul'"));
  tape().clear();
  // writes before the op is recorded are fine
  Tensor z = zeros({2}, DType::f64);
  raw::copy_(z, x);
  z.requires_grad_(true);
  backward(sum(tanh(z)));
  CHECK(z.grad().defined());
}
