// tests/test_tape.cpp — the tape (autograd/tape.h): backward against hand-derived gradients,
// accumulation, grad mode, detach, broadcasting, non-leaf grads, anomaly mode, the error paths,
// and a deep chain. Every test starts from an empty tape so a failure cannot leak into the next.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <type_traits>
#include <thread>
#include <vector>

#include "autograd/ops.h"
#include "tests/test_util.h"
#include "autograd/tape.h"
#include "core/backend.h"

using namespace engram;
using namespace engram::testing;

namespace {

Tensor leaf(const std::vector<double>& v, const Shape& shape, DType dt = DType::f64) {
  Tensor t = from_vector(v, shape, dt);
  t.requires_grad_();
  return t;
}
std::vector<double> grad_of(const Tensor& t) {
  REQUIRE(t.grad().defined());
  return t.grad().to_vector<double>();
}

// Clears the thread's tape before and after each test case that uses it.
struct FreshTape {
  FreshTape() { tape().clear(); }
  ~FreshTape() { tape().clear(); }
};

}  // namespace

TEST_CASE("tape: backward of a composite expression matches hand-derived gradients") {
  FreshTape ft;
  SUBCASE("scalar: f = (a*b + c)^2") {
    Tensor a = leaf({2}, {}), b = leaf({3}, {}), c = leaf({1}, {});
    Tensor f = square(a * b + c);
    CHECK(f.item() == 49);
    CHECK(f.requires_grad());
    CHECK_FALSE(f.is_leaf());
    backward(f);
    // df/da = 2(ab+c) b = 42, df/db = 2(ab+c) a = 28, df/dc = 2(ab+c) = 14
    CHECK(a.grad().item() == 42);
    CHECK(b.grad().item() == 28);
    CHECK(c.grad().item() == 14);
    CHECK(a.grad().shape().empty());
  }
  SUBCASE("vector: L = sum(tanh(x*w) + exp(x)/w)") {
    std::vector<double> xv{0.3, -1.2, 2.0}, wv{0.5, -1.0, 1.5};
    Tensor x = leaf(xv, {3}), w = leaf(wv, {3});
    Tensor L = sum(tanh(x * w) + exp(x) / w);
    double expect_L = 0;
    for (int i = 0; i < 3; ++i) expect_L += std::tanh(xv[i] * wv[i]) + std::exp(xv[i]) / wv[i];
    CHECK(L.item() == doctest::Approx(expect_L).epsilon(1e-14));
    backward(L);
    std::vector<double> gx = grad_of(x), gw = grad_of(w);
    for (int i = 0; i < 3; ++i) {
      double t = std::tanh(xv[i] * wv[i]), s = 1 - t * t;
      // dL/dx = w (1 - tanh^2) + exp(x)/w,  dL/dw = x (1 - tanh^2) - exp(x)/w^2
      CHECK(gx[i] == doctest::Approx(wv[i] * s + std::exp(xv[i]) / wv[i]).epsilon(1e-13));
      CHECK(gw[i] == doctest::Approx(xv[i] * s - std::exp(xv[i]) / (wv[i] * wv[i])).epsilon(1e-13));
    }
  }
  SUBCASE("matrix: L = sum((A @ B) * C) gives dA = C B^T, dB = A^T C") {
    Tensor A = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
    Tensor B = leaf({1, 0, -1, 2, 0.5, 1}, {3, 2});
    Tensor C = from_vector(std::vector<double>{1, 2, 3, 4}, {2, 2}, DType::f64);
    backward(sum(matmul(A, B) * C));
    // dA[i,k] = sum_j C[i,j] B[k,j]
    CHECK_VEC(grad_of(A), {1, 3, 2.5, 3, 5, 5.5});
    // dB[k,j] = sum_i A[i,k] C[i,j]
    CHECK_VEC(grad_of(B), {13, 18, 17, 24, 21, 30});
    CHECK_FALSE(C.grad().defined());  // C never required grad
  }
  SUBCASE("f32 leaves get f32 grads") {
    Tensor x = leaf({1, 2, 3}, {3}, DType::f32);
    backward(mean(x * x));
    CHECK(x.grad().dtype() == DType::f32);
    std::vector<float> g = x.grad().to_vector<float>();
    CHECK(g[0] == doctest::Approx(2.0 / 3));
    CHECK(g[1] == doctest::Approx(4.0 / 3));
    CHECK(g[2] == doctest::Approx(2.0));
  }
}

TEST_CASE("tape: gradients accumulate across backward calls and zero_grad clears them") {
  FreshTape ft;
  Tensor x = leaf({1, 2}, {2});
  backward(sum(x * 3));
  CHECK_VEC(grad_of(x), {3, 3});
  backward(sum(x * x));  // a second, separate forward: grad += 2x
  CHECK_VEC(grad_of(x), {5, 7});
  // The grad buffer is owned: accumulating again does not disturb earlier results we copied.
  Tensor g_before = x.grad();
  backward(sum(x));
  CHECK_VEC(grad_of(x), {6, 8});
  CHECK_VEC(g_before.to_vector<double>(), {6, 8});  // same buffer, += in place

  Tensor w = leaf({5}, {1});
  zero_grad({x, w});  // w has no grad yet: fine
  CHECK_FALSE(x.grad().defined());
  CHECK_FALSE(w.grad().defined());
  backward(sum(x * w));
  CHECK_VEC(grad_of(x), {5, 5});
  CHECK_VEC(grad_of(w), {3});
}

TEST_CASE("tape: backward twice on the same loss without a new forward throws") {
  FreshTape ft;
  Tensor x = leaf({1, 2, 3}, {3});
  Tensor loss = sum(x * x);
  backward(loss);
  CHECK_VEC(grad_of(x), {2, 4, 6});
  std::string msg = error_of([&] { backward(loss); });
  CHECK(contains(msg, "backward"));
  CHECK(contains(msg, "already freed"));
  CHECK_VEC(grad_of(x), {2, 4, 6});  // unchanged by the failed call

  // A stale tensor stays stale even after new nodes were recorded since.
  Tensor y = sum(x * 2);
  Tensor z = sum(x * 5);
  backward(z);
  CHECK(contains(error_of([&] { backward(y); }), "backward"));
  Tensor y2 = sum(x * 7);  // a fresh forward is fine
  backward(y2);
  CHECK_VEC(grad_of(x), {2 + 5 + 7, 4 + 5 + 7, 6 + 5 + 7});
}

// The tape names a non-leaf input by the node that produced it, not by holding it: an
// intermediate that no backward reads (here x + x, read only by sum, whose backward needs its
// shape) is freed when the forward drops it, and its gradient still flows through to the leaf.
TEST_CASE("tape: an intermediate no backward needs is freed during the forward") {
  FreshTape ft;
  Tensor x = leaf({1, 2, 3}, {3});
  std::weak_ptr<Storage> doubled, exp_out;
  Tensor loss;
  {
    Tensor t = x + x;  // add's backward reads neither input nor output
    doubled = t.storage();
    Tensor e = exp(x);  // exp's backward reads e: its closure holds it
    exp_out = e.storage();
    loss = sum(t) + sum(e);
  }
  CHECK(doubled.expired());
  CHECK_FALSE(exp_out.expired());
  backward(loss);
  CHECK_VEC(grad_of(x), {2 + std::exp(1.0), 2 + std::exp(2.0), 2 + std::exp(3.0)});
  CHECK(exp_out.expired());  // freed with the tape
}

// A unary op keeps only what its derivative reads: relu its output (T(y > 0) = T(x > 0)), a
// scalar multiply nothing. So relu's input, here x * 2, is freed once the forward drops it.
TEST_CASE("tape: relu keeps its output only, a scalar multiply nothing") {
  FreshTape ft;
  Tensor x = leaf({-1, 2, 3}, {3});
  std::weak_ptr<Storage> scaled;
  Tensor loss;
  {
    Tensor t = mul(x, 2.0);
    scaled = t.storage();
    loss = sum(relu(t));
  }
  CHECK(scaled.expired());
  backward(loss);
  CHECK_VEC(grad_of(x), {0, 2, 2});
}

TEST_CASE("tape: retain_graph keeps the tape for a second backward") {
  FreshTape ft;
  Tensor x = leaf({1, 2}, {2});
  Tensor loss = sum(x * x);
  size_t n = tape().nodes.size();
  CHECK(n == 2);  // mul, sum
  backward(loss, Tensor(), true);
  CHECK(tape().nodes.size() == n);
  CHECK_VEC(grad_of(x), {2, 4});
  backward(loss);
  CHECK_VEC(grad_of(x), {4, 8});
  CHECK(tape().nodes.empty());
}

TEST_CASE("tape: a retained non-leaf grad is not re-propagated by a later backward") {
  // PyTorch semantics: y.retain_grad() only *reports* y's gradient; each backward propagates its
  // own seed. Here the second backward should add 3 to x.grad (total 6) and make y.grad 2.
  FreshTape ft;
  Tensor x = leaf({1}, {1});
  Tensor y = x * 3;
  y.retain_grad();
  backward(y, Tensor(), true);
  CHECK_VEC(grad_of(y), {1});
  CHECK_VEC(grad_of(x), {3});
  backward(y, Tensor(), true);
  CHECK_VEC(grad_of(y), {2});
  CHECK_VEC(grad_of(x), {6});

  // The same with an unrelated earlier node whose output kept its grad.
  tape().clear();
  Tensor p = leaf({1}, {1});
  Tensor a = p * 2;  // node 0
  a.retain_grad();
  Tensor b = sum(a * 3);
  backward(b, Tensor(), true);
  CHECK_VEC(grad_of(p), {6});
  Tensor c = sum(p * 5);  // does not depend on a
  backward(c);
  CHECK_VEC(grad_of(p), {11});
}

TEST_CASE("tape: a non-leaf from an already-freed graph fails loudly, not silently cut off") {
  // h's node was dropped by the first backward. Reusing h in a new graph must not silently treat
  // h as a detached constant (x would get no gradient): it fails naming backward and the op.
  FreshTape ft;
  Tensor x = leaf({1, 2}, {2});
  Tensor h = x * 2.0;
  backward(sum(h));
  CHECK_VEC(grad_of(x), {2, 2});
  Tensor l2 = sum(h * 3.0);
  std::string msg = error_of([&] { backward(l2); });
  CHECK(contains(msg, "backward"));
  CHECK(contains(msg, "freed"));
  CHECK(contains(msg, "mul_scalar"));
  CHECK_VEC(grad_of(x), {2, 2});
  tape().clear();

  // The remedies it suggests work: detach() makes h a constant on purpose...
  Tensor hd = detach(h);
  backward(sum(hd * x));
  CHECK_VEC(grad_of(x), {2 + 2, 2 + 4});
  // ...and retain_graph=true keeps h's node alive for a second graph.
  zero_grad({x});
  Tensor h2 = x * 2.0;
  backward(sum(h2), Tensor(), true);
  backward(sum(h2 * 3.0));
  CHECK_VEC(grad_of(x), {2 + 6, 2 + 6});
}

TEST_CASE("tape: NoGradGuard prevents recording and restores on scope exit") {
  FreshTape ft;
  Tensor x = leaf({1, 2}, {2});
  CHECK(grad_enabled());
  size_t before = tape().nodes.size();
  {
    NoGradGuard ng;
    CHECK_FALSE(grad_enabled());
    Tensor y = x * 2;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.is_leaf());
    CHECK_VEC(y.to_vector<double>(), {2, 4});
    CHECK(tape().nodes.size() == before);
    {
      NoGradGuard inner;
      CHECK_FALSE(grad_enabled());
    }
    CHECK_FALSE(grad_enabled());  // the inner guard restores "off", not "on"
    CHECK_FALSE(needs_record({x}));
    CHECK(contains(error_of([&] { backward(sum(y)); }), "does not require grad"));
  }
  CHECK(grad_enabled());
  Tensor z = x * 2;
  CHECK(z.requires_grad());
  CHECK(tape().nodes.size() == before + 1);

  // Restored on exceptional exit too.
  try {
    NoGradGuard ng;
    throw std::runtime_error("boom");
  } catch (const std::runtime_error&) {
  }
  CHECK(grad_enabled());

  // Grad mode is per thread: another thread still records while this one is guarded.
  NoGradGuard ng;
  bool other_enabled = false;
  size_t other_nodes = 99;
  std::thread th([&] {
    other_enabled = grad_enabled();
    Tensor t = leaf({1}, {1});
    Tensor u = t * 2;
    other_nodes = tape().nodes.size();
  });
  th.join();
  CHECK(other_enabled);
  CHECK(other_nodes == 1);
  CHECK(tape().nodes.size() == before + 1);  // this thread's tape did not see it
}

TEST_CASE("tape: ops on inputs that do not require grad record nothing") {
  FreshTape ft;
  Tensor a = from_vector(std::vector<double>{1, 2}, {2}, DType::f64);
  Tensor y = exp(a * a + 1.0);
  CHECK_FALSE(y.requires_grad());
  CHECK(y.is_leaf());
  CHECK(tape().nodes.empty());
  CHECK(contains(error_of([&] { backward(sum(y)); }), "does not require grad"));
}

TEST_CASE("tape: detach shares storage and stops gradients") {
  FreshTape ft;
  Tensor x = leaf({1, 2, 3}, {3});
  Tensor h = x * 2;
  Tensor d = detach(h);
  CHECK(d.storage() == h.storage());
  CHECK(d.offset() == h.offset());
  CHECK(d.shape() == h.shape());
  CHECK_FALSE(d.requires_grad());
  CHECK(d.is_leaf());
  CHECK_FALSE(d.same(h));
  CHECK(h.requires_grad());  // the original keeps its history

  // L = sum(detach(2x) * x): dL/dx = 2x (treated as a constant), not 4x.
  backward(sum(d * x));
  CHECK_VEC(grad_of(x), {2, 4, 6});

  // Writes through the detached tensor are visible in the original (shared storage).
  Tensor dx = detach(x);
  backend(Device::cpu).fill(dx, 9);
  CHECK_VEC(x.to_vector<double>(), {9, 9, 9});
  CHECK(x.requires_grad());

  // detach of a strided view keeps the view.
  Tensor t = transpose(from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3}, DType::f64), 0, 1);
  Tensor td = detach(t);
  CHECK(td.strides() == t.strides());
  CHECK_VEC(td.to_vector<double>(), t.to_vector<double>());
}

TEST_CASE("tape: a tensor used twice gets the sum of both paths") {
  FreshTape ft;
  Tensor x = leaf({-1.5, 0, 2, 3}, {4});
  backward(sum(x * x));
  CHECK_VEC(grad_of(x), {-3, 0, 4, 6});

  zero_grad({x});
  // x feeds three paths: x*x + 3x + x  => d/dx = 2x + 4
  backward(sum(x * x + x * 3 + x));
  CHECK_VEC(grad_of(x), {1, 4, 8, 10});

  zero_grad({x});
  // diamond through a shared intermediate: h = exp(x); L = sum(h * h) => dL/dx = 2 exp(2x)
  Tensor h = exp(x);
  backward(sum(h * h));
  std::vector<double> g = grad_of(x), xv{-1.5, 0, 2, 3};
  for (int i = 0; i < 4; ++i) CHECK(g[i] == doctest::Approx(2 * std::exp(2 * xv[i])).epsilon(1e-13));
}

TEST_CASE("tape: broadcasting add of [3,1] and [4] sums the grads back") {
  FreshTape ft;
  Tensor a = leaf({1, 2, 3}, {3, 1});
  Tensor b = leaf({10, 20, 30, 40}, {4});
  Tensor y = a + b;
  CHECK(y.shape() == Shape{3, 4});
  // weights make each output element distinct: w[i, j] = i * 4 + j
  Tensor w = raw::view(arange(0, 12, 1, DType::f64), {3, 4});
  backward(sum(y * w));
  CHECK(a.grad().shape() == Shape{3, 1});
  CHECK(b.grad().shape() == Shape{4});
  CHECK_VEC(grad_of(a), {0 + 1 + 2 + 3, 4 + 5 + 6 + 7, 8 + 9 + 10 + 11});
  CHECK_VEC(grad_of(b), {0 + 4 + 8, 1 + 5 + 9, 2 + 6 + 10, 3 + 7 + 11});

  // Scalar-shaped [] broadcast against a matrix, and mul with broadcasting.
  Tensor s = leaf({2}, {});
  Tensor m = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
  backward(sum(m * s));
  CHECK(s.grad().shape().empty());
  CHECK(s.grad().item() == 21);
  CHECK_VEC(grad_of(m), std::vector<double>(6, 2));

  // unbroadcast directly: [2, 3, 4] -> [3, 1]
  Tensor g = raw::view(arange(0, 24, 1, DType::f64), {2, 3, 4});
  Tensor u = unbroadcast(g, {3, 1});
  CHECK(u.shape() == Shape{3, 1});
  // row r sums g[b, r, :] over b: (4r*4 + 6) + (4(3+r)*4 + 6) ... computed explicitly
  std::vector<double> expect(3, 0);
  for (int bb = 0; bb < 2; ++bb)
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 4; ++c) expect[r] += bb * 12 + r * 4 + c;
  CHECK_VEC(u.to_vector<double>(), expect);
  CHECK(unbroadcast(g, {2, 3, 4}).same(g));
  CHECK(unbroadcast(g, {}).item() == 276);
  CHECK(contains(error_of([&] { unbroadcast(zeros({3}), {2, 3}); }), "unbroadcast"));
}

TEST_CASE("tape: non-leaf grads are freed after backward unless retain_grad()") {
  FreshTape ft;
  Tensor x = leaf({1, 2}, {2});
  Tensor h = x * 2;
  Tensor y = sum(h * h);
  backward(y);
  CHECK_FALSE(h.grad().defined());
  CHECK_FALSE(y.grad().defined());
  CHECK_VEC(grad_of(x), {8, 16});  // d/dx 4x^2 = 8x

  Tensor h2 = x * 2;
  h2.retain_grad();
  Tensor y2 = sum(h2 * h2);
  y2.retain_grad();
  backward(y2);
  CHECK_VEC(grad_of(h2), {4, 8});  // 2 h2
  CHECK_VEC(grad_of(y2), {1});
  CHECK(h2.grad().shape() == Shape{2});
  CHECK_VEC(grad_of(x), {16, 32});
}

TEST_CASE("tape: anomaly mode names the op that produced NaN/Inf") {
  FreshTape ft;
  CHECK_FALSE(anomaly_mode());
  SUBCASE("forward: log of a negative") {
    {
      AnomalyGuard ag;
      CHECK(anomaly_mode());
      Tensor x = leaf({-1, 2}, {2});
      Tensor ok = log(x * -1.0 + 3.0);  // log([4, 1]) is finite: no error
      CHECK(ok.to_vector<double>()[1] == 0);
      std::string msg = error_of([&] { log(x); });
      CHECK(contains(msg, "anomaly"));
      CHECK(contains(msg, "'log'"));
      CHECK(contains(msg, "[2]"));
      // Also when nothing requires grad.
      Tensor c = from_vector(std::vector<double>{0}, {1}, DType::f64);
      CHECK(contains(error_of([&] { reciprocal(c); }), "reciprocal"));
    }
    CHECK_FALSE(anomaly_mode());
    // Outside anomaly mode the NaN passes silently.
    Tensor y = log(from_vector(std::vector<double>{-1}, {1}, DType::f64));
    CHECK(std::isnan(y.item()));
  }
  SUBCASE("backward: sqrt at 0 is finite forward, infinite gradient") {
    Tensor x = leaf({0, 4}, {2});
    AnomalyGuard ag;
    Tensor y = sum(sqrt(x));
    CHECK(y.item() == 2);
    std::string msg = error_of([&] { backward(y); });
    CHECK(contains(msg, "anomaly"));
    CHECK(contains(msg, "backward"));
    CHECK(contains(msg, "'sqrt'"));
  }
  SUBCASE("without anomaly mode the same backward gives inf") {
    Tensor x = leaf({0, 4}, {2});
    backward(sum(sqrt(x)));
    std::vector<double> g = grad_of(x);
    CHECK(std::isinf(g[0]));
    CHECK(g[1] == 0.25);
  }
  SUBCASE("nested guards restore the previous mode") {
    set_anomaly_mode(true);
    {
      AnomalyGuard ag;
      CHECK(anomaly_mode());
    }
    CHECK(anomaly_mode());
    set_anomaly_mode(false);
  }
  CHECK_FALSE(anomaly_mode());
}

TEST_CASE("tape: error paths of backward and requires_grad_") {
  FreshTape ft;
  Tensor x = leaf({1, 2, 3}, {3});

  SUBCASE("non-scalar root without a grad") {
    Tensor y = x * 2;
    std::string msg = error_of([&] { backward(y); });
    CHECK(contains(msg, "backward"));
    CHECK(contains(msg, "[3]"));
    CHECK_FALSE(x.grad().defined());
  }
  SUBCASE("explicit grad of the wrong shape") {
    Tensor y = x * 2;
    std::string msg = error_of([&] { backward(y, ones({4}, DType::f64)); });
    CHECK(contains(msg, "backward"));
    CHECK(contains(msg, "[4]"));
    CHECK(contains(msg, "[3]"));
    CHECK_FALSE(x.grad().defined());
  }
  SUBCASE("explicit grad of the right shape seeds the backward") {
    Tensor y = x * 2;
    backward(y, from_vector(std::vector<double>{1, 10, 100}, {3}, DType::f64));
    CHECK_VEC(grad_of(x), {2, 20, 200});
  }
  SUBCASE("backward on a leaf accumulates the seed into it") {
    backward(x, from_vector(std::vector<double>{1, 2, 3}, {3}, DType::f64));
    CHECK_VEC(grad_of(x), {1, 2, 3});
  }
  SUBCASE("requires_grad_ on an i64 tensor or a non-leaf throws") {
    Tensor i = from_vector<int64_t>({1, 2}, {2});
    std::string msg = error_of([&] { i.requires_grad_(); });
    CHECK(contains(msg, "requires_grad"));
    CHECK(contains(msg, "i64"));
    CHECK_FALSE(i.requires_grad());
    i.requires_grad_(false);  // turning it off is always fine
    Tensor y = x * 2;
    CHECK(contains(error_of([&] { y.requires_grad_(false); }), "leaf"));
    x.requires_grad_(false);
    CHECK_FALSE(x.requires_grad());
  }
  SUBCASE("a node returning the wrong number of grads is reported by name") {
    Tensor y = x * 1.0;
    record1("bad_op", {x}, y, [](const Tensor& dy) { return std::vector<Tensor>{dy, dy}; });
    std::string msg = error_of([&] { backward(sum(y)); });
    CHECK(contains(msg, "bad_op"));
    CHECK(contains(msg, "2 grads for 1 inputs"));
  }
}

TEST_CASE("tape: custom multi-output nodes get zeros for unused outputs") {
  FreshTape ft;
  Tensor x = leaf({1, 2}, {2});
  Tensor y1 = raw::clone(x), y2 = raw::clone(x);  // raw copies, wired up by hand below
  std::vector<Tensor> seen;
  record("two_out", {x}, {y1, y2}, [&seen](const std::vector<Tensor>& g) {
    seen = g;
    return std::vector<Tensor>{raw::clone(g[0])};  // dx = dy1 (ignores dy2)
  });
  CHECK(y1.requires_grad());
  CHECK(y2.requires_grad());
  CHECK_FALSE(y1.is_leaf());
  CHECK(tape().nodes.size() == 1);
  CHECK(tape().nodes[0].name == "two_out");
  backward(sum(y1 * 3.0));
  REQUIRE(seen.size() == 2);
  CHECK_VEC(seen[0].to_vector<double>(), {3, 3});
  REQUIRE(seen[1].defined());
  CHECK(seen[1].shape() == Shape{2});
  CHECK_VEC(seen[1].to_vector<double>(), {0, 0});
  CHECK_VEC(grad_of(x), {3, 3});
}

TEST_CASE("tape: the tape is cleared after backward") {
  FreshTape ft;
  Tensor x = leaf({1, 2}, {2});
  uint64_t epoch = tape().epoch;
  Tensor y = sum(exp(x) * x);
  CHECK(tape().nodes.size() == 3);  // exp, mul, sum
  CHECK(tape().nodes[0].name == "exp");
  CHECK(tape().nodes[1].name == "mul");
  CHECK(tape().nodes[2].name == "sum");
  CHECK(tape().nodes[1].inputs.size() == 2);
  backward(y);
  CHECK(tape().nodes.empty());
  CHECK(tape().epoch == epoch + 1);
  // Backward from an intermediate root skips (and then drops) the nodes after it.
  Tensor h = x * 2;
  Tensor unused = sum(h);
  CHECK(tape().nodes.size() == 2);
  backward(h, ones({2}, DType::f64));
  CHECK(tape().nodes.empty());
}

TEST_CASE("tape: a deep chain backpropagates without stack overflow") {
  FreshTape ft;
  const int depth = 10000;
  Tensor x = leaf({0.5, -1}, {2});
  Tensor y = x;
  for (int i = 0; i < depth; ++i) y = y + x;
  CHECK(tape().nodes.size() == (size_t)depth);
  backward(sum(y));
  CHECK_VEC(grad_of(x), {depth + 1.0, depth + 1.0});
  CHECK(tape().nodes.empty());

  // A long multiplicative chain: y = x * c^n  => dy/dx = c^n (checks values flow through all nodes)
  Tensor z = leaf({1}, {1});
  Tensor w = z;
  for (int i = 0; i < depth; ++i) w = w * 1.0001;
  backward(sum(w));
  CHECK(grad_of(z)[0] == doctest::Approx(std::pow(1.0001, depth)).epsilon(1e-9));
  // Dropping the last handle to a long chain must not recurse either.
  {
    Tensor q = leaf({1}, {1});
    Tensor r = q;
    for (int i = 0; i < depth; ++i) r = exp(r * 0.0);
  }
  tape().clear();
  CHECK(tape().nodes.empty());
}
