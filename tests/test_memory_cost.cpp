// tests/test_memory_cost.cpp — the FLOP counter of core/flops.h and the cost formulas of
// apps/memory_cost:
//   (1) a matmul adds exactly 2 M N K per product (batched, transposed operand, its backward);
//   (2) the fused memory kernels add their closed-form counts, per batch row and token
//         titans_linear_memory  dv (9 dk + 3) + 1     cmr_drift_scan  5 D + 8,
//       and those equal the operations of a replica of each forward written with a counting
//       number type (adds, multiplies, subtracts and sqrt each count one), whose values also
//       equal the kernel's, so the replica really is the kernel's computation;
//   (3) one small forward of MultiHeadAttention (causal), NeuralMemory and EpisodicCMR counts
//       exactly (tolerance 0: every counted operation is a matmul or a memory kernel, whose
//       counts are integers) what the formulas predict:
//         attention  8 L d^2 + 4 L^2 d
//         neural     2 L d 3d + 2 L d 3H + 2 L d^2 + L H (9 dh^2 + 3 dh + 1)
//         episodic   8 L d^2 + L H (5 dh + 8) + 4 L d (M + L / S)
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/ops.h"
#include "autograd/tape.h"
#include "core/flops.h"
#include "memory/cmr/episodic_cmr.h"
#include "memory/titans/neural_memory.h"
#include "nn/attention.h"
#include "tests/test_util.h"

using namespace engram;

namespace {

// A double that counts every arithmetic operation done on it.
struct Counted {
  double v = 0;
  static inline int64_t ops = 0;
  Counted(double x = 0) : v(x) {}
  friend Counted operator+(Counted a, Counted b) { ++ops; return {a.v + b.v}; }
  friend Counted operator-(Counted a, Counted b) { ++ops; return {a.v - b.v}; }
  friend Counted operator*(Counted a, Counted b) { ++ops; return {a.v * b.v}; }
  friend Counted sqrt(Counted a) { ++ops; return {std::sqrt(a.v)}; }
};

std::vector<double> values(const Tensor& t) { return raw::contiguous(t).to_vector<double>(); }

}  // namespace

TEST_CASE("memory_cost: the FLOP counter counts matrix products exactly, 2 M N K each") {
  Generator g(1);
  Tensor a = randn({5, 7}, DType::f64, &g), b = randn({7, 3}, DType::f64, &g);
  flops::Scope s;
  matmul(a, b);
  CHECK(s.elapsed() == 2 * 5 * 3 * 7);

  s.restart();  // batched, with a transposed (strided) operand
  Tensor ab = randn({4, 6, 2}, DType::f32, &g), bb = randn({4, 9, 2}, DType::f32, &g);
  matmul(ab, transpose(bb, 1, 2));
  CHECK(s.elapsed() == 4 * 2 * 6 * 9 * 2);

  s.restart();  // forward + backward: dA = dY B^T and dB = A^T dY, each 2 M N K again
  Tensor x = detach(a), w = detach(b);
  x.requires_grad_(true), w.requires_grad_(true);
  backward(sum(matmul(x, w)));
  CHECK(s.elapsed() == 3 * 2 * 5 * 3 * 7);

  const int64_t before = flops::count();
  flops::add(11);
  CHECK(flops::count() - before == 11);
}

TEST_CASE("memory_cost: the titans and cmr kernels count their closed-form per-token operations") {
  NoGradGuard no_grad;
  Generator g(2);
  const int64_t B = 2, T = 5, dk = 3, dv = 4, chunk = 2;
  Tensor q = randn({B, T, dk}, DType::f64, &g), k = randn({B, T, dk}, DType::f64, &g);
  Tensor v = randn({B, T, dv}, DType::f64, &g);
  Tensor theta = mul(sigmoid(randn({B, T}, DType::f64, &g)), 0.3);
  Tensor eta = sigmoid(randn({B, T}, DType::f64, &g));
  Tensor alpha = mul(sigmoid(randn({B, T}, DType::f64, &g)), 0.2);
  Tensor m0 = randn({B, dv, dk}, DType::f64, &g);
  flops::Scope s;
  TitansMemoryScan scan = titans_linear_memory(q, k, v, theta, eta, alpha, m0, Tensor(), chunk);
  const int64_t counted = s.elapsed();
  CHECK(counted == B * T * (dv * (9 * dk + 3) + 1));

  // The replica: per row, y_t = M q_t, e_t = 2 (M0_c k_t - v_t), S = eta S - theta e k^T,
  // M = (1 - alpha) M + S, every operation on Counted.
  auto Q = values(q), K = values(k), V = values(v), TH = values(theta), ET = values(eta),
       AL = values(alpha), M0 = values(m0), Y = values(scan.retrieved);
  Counted::ops = 0;
  double worst = 0;
  for (int64_t b = 0; b < B; ++b) {
    std::vector<Counted> M(M0.begin() + b * dv * dk, M0.begin() + (b + 1) * dv * dk), S(dv * dk),
        Mc;
    for (int64_t t = 0; t < T; ++t) {
      if (t % chunk == 0) Mc = M;
      const int64_t bt = b * T + t;
      const Counted keep = Counted(1) - Counted(AL[bt]);
      for (int64_t i = 0; i < dv; ++i) {
        Counted y = 0, pred = 0;
        for (int64_t j = 0; j < dk; ++j) {
          y = y + M[i * dk + j] * Counted(Q[bt * dk + j]);
          pred = pred + Mc[i * dk + j] * Counted(K[bt * dk + j]);
        }
        worst = std::max(worst, std::abs(y.v - Y[bt * dv + i]));
        const Counted gi = Counted(TH[bt]) * (Counted(2) * (pred - Counted(V[bt * dv + i])));
        for (int64_t j = 0; j < dk; ++j) {
          S[i * dk + j] = Counted(ET[bt]) * S[i * dk + j] - gi * Counted(K[bt * dk + j]);
          M[i * dk + j] = keep * M[i * dk + j] + S[i * dk + j];
        }
      }
    }
  }
  CHECK(worst < 1e-12);
  CHECK(Counted::ops == counted);

  // cmr_drift_scan: d = c . cin, rho = sqrt(1 + beta^2 (d^2 - 1)) - beta d, c = rho c + beta cin
  const int64_t R = 3, D = 5;
  Tensor cin = normalize(randn({R, T, D}, DType::f64, &g));
  Tensor beta = mul(sigmoid(randn({R, T}, DType::f64, &g)), 0.9);
  Tensor c0 = normalize(randn({R, D}, DType::f64, &g));
  s.restart();
  Tensor c = cmr_drift_scan(cin, beta, c0);
  const int64_t counted_drift = s.elapsed();
  CHECK(counted_drift == R * T * (5 * D + 8));
  auto CIN = values(cin), BE = values(beta), C0 = values(c0), CV = values(c);
  Counted::ops = 0;
  worst = 0;
  for (int64_t r = 0; r < R; ++r) {
    std::vector<Counted> prev(C0.begin() + r * D, C0.begin() + (r + 1) * D), next(D);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t rt = r * T + t;
      const Counted be = BE[rt];
      Counted d = 0;
      for (int64_t i = 0; i < D; ++i) d = d + prev[i] * Counted(CIN[rt * D + i]);
      const Counted rho = sqrt(Counted(1) + be * be * (d * d - Counted(1))) - be * d;
      for (int64_t i = 0; i < D; ++i) {
        next[i] = rho * prev[i] + be * Counted(CIN[rt * D + i]);
        worst = std::max(worst, std::abs(next[i].v - CV[rt * D + i]));
      }
      prev = next;
    }
  }
  CHECK(worst < 1e-12);
  CHECK(Counted::ops == counted_drift);
}

TEST_CASE("memory_cost: one small forward of each module counts exactly what the formula says") {
  NoGradGuard no_grad;
  Generator g(3);
  const int64_t d = 16, H = 2, dh = d / H, L = 12, M = 4, S = 1;
  Tensor x = randn({1, L, d}, DType::f32, &g);
  flops::Scope s;

  nn::MultiHeadAttention mha(d, H, true, 0.0, &g);
  nn::AttentionOptions opt;
  opt.causal = true;
  s.restart();
  mha.forward(x, x, x, opt);
  CHECK(s.elapsed() == 8 * L * d * d + 4 * L * L * d);

  titans::NeuralMemoryConfig nc;
  nc.d_model = d, nc.heads = H, nc.head_dim = dh, nc.chunk = 4, nc.max_lr = 0.25;
  titans::NeuralMemory nm(nc, &g);
  titans::NeuralMemoryState nst;
  s.restart();
  nm.forward(x, nst);
  CHECK(s.elapsed() == 2 * L * d * 3 * d + 2 * L * d * 3 * H + 2 * L * d * d +
                           L * H * (9 * dh * dh + 3 * dh + 1));
  // state: memory and momentum, 2 H dh^2 values of 4 bytes
  CHECK(nst.memory.numel() + nst.momentum.numel() == 2 * H * dh * dh);

  cmr::EpisodicCMRConfig ec;
  ec.d_model = d, ec.heads = H, ec.head_dim = dh, ec.slots = M, ec.segment = S;
  cmr::EpisodicCMR em(ec, &g);
  cmr::CMRBankState est = cmr::initial_bank_state(ec, 1, DType::f32);
  s.restart();
  em.forward(x, x, est);
  CHECK(s.elapsed() == 8 * L * d * d + L * H * (5 * dh + 8) + 4 * L * d * (M + L / S));
  CHECK(est.keys.numel() + est.values.numel() == 2 * M * d);
}
