// tests/test_ssm_mamba.cpp — Mamba's fused ops (autograd/ssm_mamba_ops.cpp) and layer
// (nn/ssm/mamba.h):
//   - selective_scan equals selective_scan_ref, a per-step loop of plain ops written here, in
//     outputs, final state and every gradient, for chunks of 1, 3, 4 and 64 and every optional
//     input on or off (f64, ~1e-15), on the threaded path too, and in f32 against the f64 loop;
//   - causal_conv1d equals a direct loop over the definition (values) and a sum of shifted slices
//     (gradients), with and without a carried state;
//   - a stream cut inside a chunk equals the uncut stream, for the ops and the layer;
//   - the layer gradchecked in f64 (input and every parameter) through two calls carrying state;
//   - forward == T calls of step (plain ops, no fused scan), from a carried state;
//   - mamba_simple's init and parameter count; bad shapes give errors naming the op or layer;
//   - the PyTorch golden (tests/golden/ssm_mamba.json, torch_ssm_mamba.py written from
//     mamba_simple.py + selective_scan_ref), outputs, states and all gradients in f64.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <utility>

#include "autograd/golden.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "autograd/tape.h"
#include "nn/ssm/mamba.h"
#include "tests/test_util.h"

using namespace engram;
using engram::nn::ssm::Mamba;
using engram::nn::ssm::State;
using engram::testing::contains;
using engram::testing::error_of;
using engram::testing::max_abs_diff;

namespace {

// Mamba's selective_scan_ref, one step at a time with plain ops:
//   h = exp(dt A) h + dt B u ;  y = C . h (+ D u) ;  y *= silu(z)
SelectiveScan selective_scan_ref(const Tensor& u, const Tensor& delta, const Tensor& A,
                                 const Tensor& Bm, const Tensor& Cm, const Tensor& D,
                                 const Tensor& z, const Tensor& delta_bias, const Tensor& h0,
                                 bool delta_softplus) {
  Tensor dt = delta_bias.defined() ? add(delta, delta_bias) : delta;
  if (delta_softplus) dt = softplus(dt);
  const int64_t B = u.size(0), T = u.size(1), Dn = u.size(2), N = A.size(1);
  Tensor h = h0.defined() ? h0 : zeros({B, Dn, N}, u.dtype());
  std::vector<Tensor> us = unbind(u, 1), dts = unbind(dt, 1), Bs = unbind(Bm, 1),
                      Cs = unbind(Cm, 1), ys;
  for (int64_t t = 0; t < T; ++t) {
    Tensor dt3 = unsqueeze(dts[t], 2);  // [B, D, 1]
    h = add(mul(exp(mul(dt3, A)), h), mul(mul(dt3, unsqueeze(Bs[t], 1)), unsqueeze(us[t], 2)));
    ys.push_back(sum(mul(h, unsqueeze(Cs[t], 1)), {2}));
  }
  Tensor y = stack(ys, 1);
  if (D.defined()) y = add(y, mul(u, D));
  if (z.defined()) y = mul(y, silu(z));
  return {y, h};
}

// Outputs of fn and the gradients of its inputs for loss = sum_i <out_i, w_i>, w_i ~ N(0, 1)
// from a fixed seed (so two functions with outputs of the same shapes see the same w).
struct Run {
  std::vector<Tensor> outputs, grads;
};
using MultiFn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;
Run run_with_grads(const MultiFn& fn, const std::vector<Tensor>& inputs) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) {
    Tensor c;
    if (t.defined()) (c = raw::clone(t)).requires_grad_(true);
    leaves.push_back(c);
  }
  Run r;
  r.outputs = fn(leaves);
  Generator g(99);
  Tensor loss;
  for (const Tensor& o : r.outputs) {
    Tensor term = sum(mul(o, randn(o.shape(), o.dtype(), &g)));
    loss = loss.defined() ? add(loss, term) : term;
  }
  backward(loss);
  for (const Tensor& l : leaves) r.grads.push_back(l.defined() ? l.grad() : Tensor());
  return r;
}

// The largest difference over outputs and defined gradients of two runs.
double max_run_diff(const Run& a, const Run& b) {
  double m = 0;
  REQUIRE(a.outputs.size() == b.outputs.size());
  for (size_t i = 0; i < a.outputs.size(); ++i) m = std::max(m, max_abs_diff(a.outputs[i], b.outputs[i]));
  REQUIRE(a.grads.size() == b.grads.size());
  for (size_t i = 0; i < a.grads.size(); ++i) {
    REQUIRE(a.grads[i].defined() == b.grads[i].defined());
    if (a.grads[i].defined()) m = std::max(m, max_abs_diff(a.grads[i], b.grads[i]));
  }
  return m;
}

struct ScanCase {
  bool D = true, z = true, delta_bias = true, h0 = true, softplus = true;
};

// u, delta, A, B, C, D, z, delta_bias, h0 (undefined where the case leaves them out)
std::vector<Tensor> scan_inputs(Generator& g, int64_t B, int64_t T, int64_t D, int64_t N,
                                const ScanCase& c, DType dt = DType::f64) {
  auto rn = [&](const Shape& s, double scale = 1.0) { return mul(randn(s, dt, &g), scale); };
  Tensor delta = c.softplus ? rn({B, T, D}, 0.5) : add(mul(rand({B, T, D}, dt, &g), 0.8), 0.1);
  Tensor A = neg(add(rand({D, N}, dt, &g), 0.3));
  return {rn({B, T, D}), delta, A, rn({B, T, N}), rn({B, T, N}),
          c.D ? rn({D}) : Tensor(), c.z ? rn({B, T, D}) : Tensor(),
          c.delta_bias ? rn({D}, 0.3) : Tensor(), c.h0 ? rn({B, D, N}) : Tensor()};
}

MultiFn fused_scan(bool softplus, int64_t chunk) {
  return [softplus, chunk](const std::vector<Tensor>& in) {
    SelectiveScan s = selective_scan(in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7],
                                     in[8], softplus, chunk);
    return std::vector<Tensor>{s.y, s.state};
  };
}

MultiFn ref_scan(bool softplus) {
  return [softplus](const std::vector<Tensor>& in) {
    SelectiveScan s = selective_scan_ref(in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7],
                                         in[8], softplus);
    return std::vector<Tensor>{s.y, s.state};
  };
}

// The definition, element by element: y[b, t, d] = bias[d] + sum_k w[d, k] xp[b, t + k, d].
Tensor conv_direct(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& x0) {
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2), K = w.size(1);
  std::vector<double> xv = x.to_vector<double>(), wv = w.to_vector<double>(), y(B * T * D);
  std::vector<double> x0v = x0.defined() ? x0.to_vector<double>() : std::vector<double>(B * (K - 1) * D, 0.0);
  std::vector<double> bv = bias.defined() ? bias.to_vector<double>() : std::vector<double>(D, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t d = 0; d < D; ++d) {
        double acc = bv[d];
        for (int64_t k = 0; k < K; ++k) {
          const int64_t s = t + k - (K - 1);  // time of xp[t + k] relative to x
          acc += wv[d * K + k] * (s >= 0 ? xv[(b * T + s) * D + d]
                                         : x0v[(b * (K - 1) + (K - 1) + s) * D + d]);
        }
        y[(b * T + t) * D + d] = acc;
      }
  return from_vector(y, {B, T, D}, DType::f64);
}

// The same conv as plain ops: the sum over k of w[:, k] * xp[:, k : k + T].
Tensor conv_plain(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& x0) {
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2), K = w.size(1);
  Tensor head = x0.defined() ? x0 : zeros({B, K - 1, D}, x.dtype());
  Tensor xp = K > 1 ? cat({head, x}, 1) : x;
  Tensor y;
  for (int64_t k = 0; k < K; ++k) {
    Tensor term = mul(slice(xp, 1, k, k + T), select(w, 1, k));
    y = y.defined() ? add(y, term) : term;
  }
  return bias.defined() ? add(y, bias) : y;
}

std::unique_ptr<Mamba> small_mamba(uint64_t seed, int64_t chunk) {
  Generator g(seed);
  auto m = std::make_unique<Mamba>(4, 3, 3, 2, 2, &g);
  m->to(DType::f64);
  m->chunk = chunk;
  NoGradGuard ng;  // D = 1 for every channel would hide a mix-up of channels: perturb it
  raw::copy_(m->D, add(m->D, mul(randn(m->D.shape(), DType::f64, &g), 0.3)));
  return m;
}

}  // namespace

TEST_CASE("selective_scan equals selective_scan_ref (plain ops), outputs, state and every gradient") {
  ScanCase all, none, dz, no_softplus;
  none.D = none.z = none.delta_bias = none.h0 = false;
  dz.delta_bias = dz.h0 = false;
  no_softplus.softplus = false, no_softplus.z = false;
  int k = 0;
  for (const ScanCase& c : {all, none, dz, no_softplus}) {
    for (int64_t chunk : {1, 3, 4, 64}) {
      CAPTURE(k);
      CAPTURE(chunk);
      Generator g(10 + k);
      std::vector<Tensor> in = scan_inputs(g, 2, 10, 5, 3, c);
      Run fused = run_with_grads(fused_scan(c.softplus, chunk), in);
      Run ref = run_with_grads(ref_scan(c.softplus), in);
      CHECK(max_run_diff(fused, ref) < 1e-13);
      // every defined input got a gradient
      for (size_t i = 0; i < in.size(); ++i) CHECK(fused.grads[i].defined() == in[i].defined());
    }
    ++k;
  }
}

TEST_CASE("selective_scan: the threaded path (channel groups, batch partials) equals the reference") {
  const int saved = num_threads();
  for (int threads : {1, 4}) {
    CAPTURE(threads);
    set_num_threads(threads);
    // B * T * D * N above the kernel's parallel grain; D = 40 is three channel blocks, so with
    // 4 threads and B = 1 the backward sums dB and dC over separate channel groups
    for (int64_t B : {1, 3}) {
      CAPTURE(B);
      Generator g(20 + B);
      std::vector<Tensor> in = scan_inputs(g, B, 70, 40, 8, ScanCase{});
      Run fused = run_with_grads(fused_scan(true, 16), in);
      Run ref = run_with_grads(ref_scan(true), in);
      CHECK(max_run_diff(fused, ref) < 1e-12);
    }
  }
  set_num_threads(saved);
}

TEST_CASE("selective_scan in f32 matches the f64 reference to f32 rounding") {
  Generator g(30);
  std::vector<Tensor> in64 = scan_inputs(g, 2, 40, 20, 16, ScanCase{});
  std::vector<Tensor> in32;
  for (const Tensor& t : in64) in32.push_back(t.defined() ? raw::to_dtype(t, DType::f32) : Tensor());
  Run fused = run_with_grads(fused_scan(true, 8), in32);
  // the f64 reference from the same f32-rounded values
  std::vector<Tensor> back;
  for (const Tensor& t : in32) back.push_back(t.defined() ? raw::to_dtype(t, DType::f64) : Tensor());
  Run ref = run_with_grads(ref_scan(true), back);
  for (size_t i = 0; i < fused.outputs.size(); ++i) {
    CAPTURE(i);
    CHECK(max_abs_diff(fused.outputs[i], ref.outputs[i]) < 2e-5);
  }
  for (size_t i = 0; i < fused.grads.size(); ++i) {
    CAPTURE(i);
    // dA and ddelta_bias sum B*T terms: compare relative to the gradient's size
    double scale = 1.0;
    for (double v : ref.grads[i].to_vector<double>()) scale = std::max(scale, std::abs(v));
    CHECK(max_abs_diff(fused.grads[i], ref.grads[i]) / scale < 2e-5);
  }
}

TEST_CASE("selective_scan: exp(dt A) stays accurate where dt A is large and negative") {
  // dt A from ~0 down to -800: the polynomial exp's range reduction and its clamp below -708
  // (f64) / -87 (f32) must still give a decay in [0, 1] and the reference's outputs
  for (DType dt : {DType::f64, DType::f32}) {
    const int64_t T = 6, D = 3, N = 4;
    std::vector<double> a(D * N);
    for (int64_t i = 0; i < D * N; ++i) a[i] = -std::pow(10.0, -2.0 + 4.0 * i / (D * N - 1)) * 0.08;
    Tensor A = from_vector(a, {D, N}, dt);                     // down to -800 (dt = 1)
    Generator g(31);
    Tensor u = randn({1, T, D}, dt, &g), delta = full({1, T, D}, 1.0, dt);
    Tensor Bm = randn({1, T, N}, dt, &g), Cm = randn({1, T, N}, dt, &g);
    NoGradGuard ng;
    SelectiveScan f = selective_scan(u, delta, A, Bm, Cm, Tensor(), Tensor(), Tensor(), Tensor(),
                                     false, 4);
    SelectiveScan r = selective_scan_ref(u, delta, A, Bm, Cm, Tensor(), Tensor(), Tensor(),
                                         Tensor(), false);
    CHECK(max_abs_diff(f.y, r.y) < (dt == DType::f64 ? 1e-14 : 1e-5));
    CHECK(max_abs_diff(f.state, r.state) < (dt == DType::f64 ? 1e-14 : 1e-5));
  }
}

TEST_CASE("causal_conv1d equals the direct loop (values) and shifted slices (gradients)") {
  struct Case {
    int64_t B, T, D, K;
    bool bias, x0;
  };
  for (Case c : {Case{2, 6, 3, 4, true, true}, Case{2, 6, 3, 4, false, false},
                 Case{1, 2, 5, 4, true, true}, Case{3, 5, 2, 1, true, false},
                 Case{2, 9, 70, 3, true, true}}) {
    CAPTURE(c.T);
    CAPTURE(c.K);
    Generator g(40 + c.T + c.K);
    std::vector<Tensor> in{randn({c.B, c.T, c.D}, DType::f64, &g),
                           randn({c.D, c.K}, DType::f64, &g),
                           c.bias ? randn({c.D}, DType::f64, &g) : Tensor(),
                           c.x0 ? randn({c.B, c.K - 1, c.D}, DType::f64, &g) : Tensor()};
    {
      NoGradGuard ng;
      CHECK(max_abs_diff(causal_conv1d(in[0], in[1], in[2], in[3]),
                         conv_direct(in[0], in[1], in[2], in[3])) < 1e-14);
    }
    Run fused = run_with_grads([](const std::vector<Tensor>& v) {
      return std::vector<Tensor>{causal_conv1d(v[0], v[1], v[2], v[3])};
    }, in);
    Run plain = run_with_grads([](const std::vector<Tensor>& v) {
      return std::vector<Tensor>{conv_plain(v[0], v[1], v[2], v[3])};
    }, in);
    CHECK(max_run_diff(fused, plain) < 1e-13);
  }
}

TEST_CASE("selective_scan and causal_conv1d: a stream cut inside a chunk equals the uncut one") {
  Generator g(50);
  const int64_t T = 11, cut = 6;  // chunks of 4: the cut falls inside the second chunk
  std::vector<Tensor> in = scan_inputs(g, 2, T, 3, 2, ScanCase{});
  Tensor w = randn({3, 4}, DType::f64, &g), bias = randn({3}, DType::f64, &g);
  auto part = [&](const Tensor& t, int64_t a, int64_t b) { return slice(t, 1, a, b); };
  auto whole = [&](const std::vector<Tensor>& v) {
    SelectiveScan s = selective_scan(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], true, 4);
    return std::vector<Tensor>{s.y, s.state, causal_conv1d(v[0], w, bias)};
  };
  auto two_calls = [&](const std::vector<Tensor>& v) {
    std::vector<Tensor> y, c;
    Tensor h = v[8], x0 = zeros({2, 3, 3}, DType::f64);
    for (auto [a, b] : std::vector<std::pair<int64_t, int64_t>>{{0, cut}, {cut, T}}) {
      SelectiveScan s = selective_scan(part(v[0], a, b), part(v[1], a, b), v[2], part(v[3], a, b),
                                       part(v[4], a, b), v[5], part(v[6], a, b), v[7], h, true, 4);
      y.push_back(s.y), h = s.state;
      c.push_back(causal_conv1d(part(v[0], a, b), w, bias, x0));
      x0 = slice(cat({x0, part(v[0], a, b)}, 1), 1, b - a, b - a + 3);  // the last K-1 inputs
    }
    return std::vector<Tensor>{cat(y, 1), h, cat(c, 1)};
  };
  CHECK(max_run_diff(run_with_grads(whole, in), run_with_grads(two_calls, in)) < 1e-13);
}

TEST_CASE("mamba: a stream cut into calls equals the uncut stream (chunk 4, cuts inside chunks)") {
  auto m = small_mamba(60, 4);
  Generator g(61);
  Tensor x = randn({2, 13, 4}, DType::f64, &g);
  NoGradGuard ng;
  State whole_state = m->initial_state(2), cut_state = m->initial_state(2);
  Tensor whole = m->forward(x, whole_state);
  std::vector<Tensor> parts;
  for (auto [a, b] : std::vector<std::pair<int64_t, int64_t>>{{0, 1}, {1, 6}, {6, 13}})  // T = 1 < K - 1 too
    parts.push_back(m->forward(slice(x, 1, a, b), cut_state));
  CHECK(max_abs_diff(whole, cat(parts, 1)) < 1e-13);
  for (const char* name : {"conv", "h"})
    CHECK(max_abs_diff(nn::ssm::state_get(whole_state, name, "test"),
                       nn::ssm::state_get(cut_state, name, "test")) < 1e-13);
}

TEST_CASE("mamba: gradchecked in f64 (input and every parameter) through two calls carrying state") {
  for (int64_t chunk : {2, 64}) {
    CAPTURE(chunk);
    auto m = small_mamba(70, chunk);
    Generator g(71);
    Tensor x = randn({2, 5, 4}, DType::f64, &g);
    std::vector<Tensor> inputs{x};
    for (auto& [name, p] : m->named_parameters()) inputs.push_back(p);
    CHECK(inputs.size() == 10);  // x + 9 parameters
    Tensor w;
    auto fn = [&](const std::vector<Tensor>& in) {
      State s = m->initial_state(2);
      Tensor y = cat({m->forward(slice(in[0], 1, 0, 3), s), m->forward(slice(in[0], 1, 3, 5), s)}, 1);
      // the final state enters the loss too, so its gradient paths are checked
      Tensor h = nn::ssm::state_get(s, "h", "test"), c = nn::ssm::state_get(s, "conv", "test");
      if (!w.defined()) w = randn(y.shape(), DType::f64, &g);
      return add(add(sum(mul(y, w)), sum(mul(h, h))), sum(mul(c, c)));
    };
    GradcheckOptions o;
    o.atol = 1e-7, o.rtol = 1e-6;
    GradcheckResult r = gradcheck(fn, inputs, std::vector<bool>(inputs.size(), true), o);
    CHECK_MESSAGE(r.ok, r.message);
    MESSAGE("mamba gradcheck chunk " << chunk << ": max_abs_err " << r.max_abs_err
                                     << " max_rel_err " << r.max_rel_err);
  }
}

TEST_CASE("mamba: forward equals T calls of step (plain ops, no fused scan), from a carried state") {
  auto m = small_mamba(80, 3);
  Generator g(81);
  Tensor x0 = randn({2, 4, 4}, DType::f64, &g), x = randn({2, 7, 4}, DType::f64, &g);
  NoGradGuard ng;
  State warm = m->initial_state(2);
  m->forward(x0, warm);  // a nonzero conv and h state to start from
  State par = warm, rec = warm;
  Tensor y = m->forward(x, par);
  std::vector<Tensor> ys;
  for (const Tensor& x_t : unbind(x, 1)) ys.push_back(m->step(x_t, rec));
  CHECK(max_abs_diff(y, stack(ys, 1)) < 1e-13);
  for (const char* name : {"conv", "h"})
    CHECK(max_abs_diff(nn::ssm::state_get(par, name, "test"),
                       nn::ssm::state_get(rec, name, "test")) < 1e-13);
  CHECK(max_abs_diff(nn::ssm::state_get(warm, "h", "test"),
                     zeros({2, 8, 3}, DType::f64)) > 0.01);  // the start state is not trivial
}

TEST_CASE("mamba: mamba_simple's init, parameter names and count") {
  Generator g(90);
  Mamba m(256, 16, 4, 2, 0, &g);  // dt_rank auto = ceil(256 / 16) = 16
  CHECK(m.dt_rank == 16);
  CHECK(m.d_inner == 512);
  CHECK(m.num_parameters() == 437760);  // ../shared/research/ssm-cuda.md's count for d_model 256
  std::set<std::string> names;
  for (auto& [n, p] : m.named_parameters()) names.insert(n);
  CHECK(names == std::set<std::string>{"A_log", "D", "in_proj.weight", "conv1d.weight",
                                       "conv1d.bias", "x_proj.weight", "dt_proj.weight",
                                       "dt_proj.bias", "out_proj.weight"});
  CHECK(m.conv1d->weight.shape() == Shape{512, 1, 4});
  std::vector<double> a = m.A_log.to_vector<double>();
  for (int64_t e = 0; e < 512; e += 97)
    for (int64_t n = 0; n < 16; ++n) CHECK(a[e * 16 + n] == doctest::Approx(std::log(n + 1.0)));
  for (double d : m.D.to_vector<double>()) CHECK(d == 1.0);
  double lo = 1e9, hi = 0;
  for (double b : m.dt_proj->bias.to_vector<double>()) {
    const double dt = std::log1p(std::exp(b));  // softplus(bias) = the initial step
    lo = std::min(lo, dt), hi = std::max(hi, dt);
  }
  CHECK(lo >= 0.001 * 0.999);
  CHECK(hi <= 0.1 * 1.001);
  CHECK(hi / lo > 20);  // log-uniform over the whole range, not a constant
  for (double w : m.dt_proj->weight.to_vector<double>()) CHECK(std::abs(w) <= 0.25 + 1e-7);
}

TEST_CASE("mamba, selective_scan, causal_conv1d: bad shapes give errors naming the op and shapes") {
  Tensor u = zeros({2, 5, 3}), A = full({3, 4}, -1.0), Bm = zeros({2, 5, 4});
  CHECK(contains(error_of([&] { selective_scan(u, u, full({2, 4}, -1.0), Bm, Bm, {}, {}, {}, {}); }),
                 "selective_scan: A must be [D, N] with D = 3 (u [2, 5, 3]), got [2, 4]"));
  CHECK(contains(error_of([&] { selective_scan(u, u, A, zeros({2, 5, 3}), Bm, {}, {}, {}, {}); }),
                 "selective_scan: B and C must be [B, T, N] = [2, 5, 4]"));
  CHECK(contains(error_of([&] { selective_scan(u, zeros({2, 4, 3}), A, Bm, Bm, {}, {}, {}, {}); }),
                 "selective_scan: expected u and delta [B, T, D]"));
  CHECK(contains(error_of([&] { selective_scan(u, u, A, Bm, Bm, {}, {}, {}, zeros({2, 4, 3})); }),
                 "selective_scan: h0 must be [B, D, N] = [2, 3, 4], got [2, 4, 3]"));
  CHECK(contains(error_of([&] { selective_scan(u, u, A, Bm, Bm, zeros({4}), {}, {}, {}); }),
                 "selective_scan: D must be [3], got [4]"));
  CHECK(contains(error_of([&] { selective_scan(u, u, A, Bm, Bm, {}, {}, {}, {}, true, 0); }),
                 "selective_scan: chunk must be positive"));
  CHECK(contains(error_of([&] { causal_conv1d(u, zeros({4, 3})); }),
                 "causal_conv1d: expected x [B, T, D] (T > 0) and weight [D, K], got x [2, 5, 3] "
                 "weight [4, 3]"));
  CHECK(contains(error_of([&] { causal_conv1d(u, zeros({3, 4}), {}, zeros({2, 4, 3})); }),
                 "causal_conv1d: x0 (the conv state) must be [B, K-1, D] = [2, 3, 3]"));
  Generator g(1);
  Mamba m(4, 3, 3, 2, 0, &g);
  State s = m.initial_state(2);
  CHECK(contains(error_of([&] { m.forward(zeros({2, 5, 5}), s); }),
                 "Mamba: expected x [B, T, 4] with T > 0, got [2, 5, 5]"));
  CHECK(contains(error_of([&] { m.forward(zeros({3, 5, 4}), s); }),
                 "Mamba: for batch 3 the state must be conv [B, d_conv-1, d_inner] = [3, 2, 8]"));
  CHECK(contains(error_of([&] { m.step(zeros({2, 5}), s); }),
                 "Mamba: step expects x_t [B, 4], got [2, 5]"));
  CHECK(contains(error_of([&] { Mamba bad(4, 3, 1); }), "Mamba: d_conv must be at least 2"));
  State empty_state;
  CHECK(contains(error_of([&] { m.forward(zeros({2, 5, 4}), empty_state); }),
                 "Mamba: the state has no tensor 'conv'"));
}

TEST_CASE("mamba: matches the PyTorch golden (mamba_simple.py + selective_scan_ref), f64") {
  const nlohmann::json doc = golden::load_json("ssm_mamba.json");
  const nlohmann::json& cfg = doc.at("config");
  Mamba m(cfg.at("d_model").get<int64_t>(), cfg.at("d_state").get<int64_t>(),
          cfg.at("d_conv").get<int64_t>(), cfg.at("expand").get<int64_t>(),
          cfg.at("dt_rank").get<int64_t>());
  m.to(DType::f64);
  m.chunk = 3;  // T = 7: chunks of 3, 3, 1
  std::set<std::string> golden_names;
  for (auto& [name, v] : doc.at("params").items()) golden_names.insert(name);
  REQUIRE(m.named_parameters().size() == golden_names.size());
  {
    NoGradGuard ng;
    for (auto& [name, p] : m.named_parameters()) {
      REQUIRE_MESSAGE(golden_names.count(name), "golden has no parameter " << name);
      Tensor value = golden::tensor_from_json(doc.at("params").at(name));
      REQUIRE(value.shape() == p.shape());
      raw::copy_(p, value);
    }
  }
  auto input = [&](const char* k) {
    Tensor t = golden::tensor_from_json(doc.at("inputs").at(k));
    t.requires_grad_(true);
    return t;
  };
  Tensor x = input("x"), conv = input("conv"), h = input("h");
  State s{{"conv", conv}, {"h", h}};
  std::map<std::string, Tensor> out{{"y", m.forward(x, s)},
                                    {"conv", nn::ssm::state_get(s, "conv", "test")},
                                    {"h", nn::ssm::state_get(s, "h", "test")}};
  Tensor loss;
  double worst_out = 0;
  for (auto& [k, y] : out) {
    worst_out = std::max(worst_out, max_abs_diff(y, golden::tensor_from_json(doc.at("outputs").at(k))));
    Tensor term = sum(mul(y, golden::tensor_from_json(doc.at("grad_outputs").at(k))));
    loss = loss.defined() ? add(loss, term) : term;
  }
  backward(loss);
  CHECK(worst_out < 1e-12);
  double worst_grad = 0;
  for (auto& [k, t] : std::map<std::string, Tensor>{{"x", x}, {"conv", conv}, {"h", h}}) {
    CAPTURE(k);
    double d = max_abs_diff(t.grad(), golden::tensor_from_json(doc.at("input_grads").at(k)));
    CHECK(d < 1e-11);
    worst_grad = std::max(worst_grad, d);
  }
  for (auto& [name, p] : m.named_parameters()) {
    CAPTURE(name);
    double d = max_abs_diff(p.grad(), golden::tensor_from_json(doc.at("param_grads").at(name)));
    CHECK(d < 1e-11);
    worst_grad = std::max(worst_grad, d);
  }
  MESSAGE("mamba vs PyTorch golden: outputs " << worst_out << ", gradients " << worst_grad);
}
