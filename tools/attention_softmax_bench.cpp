// tools/attention_softmax_bench.cpp — attention's fused masked softmax against the unfused path
// it replaced in MultiHeadAttention, at the bench transformer's score shape.
//
//   unfused: softmax(masked_fill(x * scale, causal_mask, -inf), -1)   (3 ops, a [T, T] mask)
//   fused:   masked_softmax(x, scale, causal)                          (1 op, no mask tensor)
// x [B=16, h=4, T=128, T] f32; forward and backward (of sum(y * w)); best of 30 runs each, one
// process, so both variants see the same machine state. Run with one thread for the figures in
// docs/benchmarks.md:  ENGRAM_NUM_THREADS=1 build/tools/attention_softmax_bench
#include <chrono>
#include <cmath>
#include <cstdio>
#include "autograd/ops.h"
#include "autograd/tape.h"
using namespace engram;
int main() {
  Generator g(1);
  const int64_t T = 128;
  Tensor x = randn({16, 4, T, T}, DType::f32, &g), w = randn({16, 4, T, T}, DType::f32, &g);
  std::vector<double> m(T * T);
  for (int64_t i = 0; i < T; ++i) for (int64_t j = 0; j < T; ++j) m[i * T + j] = j > i;
  Tensor mask = from_vector(m, {T, T}, DType::f32);
  x.requires_grad_(true);
  for (int variant = 0; variant < 2; ++variant) {
    double best = 1e9;
    for (int r = 0; r < 30; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      Tensor y = variant == 0 ? softmax(masked_fill(mul(x, 0.25), mask, -INFINITY), -1)
                              : masked_softmax(x, 0.25, true);
      backward(sum(mul(y, w)));
      auto t1 = std::chrono::steady_clock::now();
      best = std::min(best, std::chrono::duration<double, std::milli>(t1 - t0).count());
      x.set_grad(Tensor());
    }
    std::printf("%s: %.2f ms (fwd+bwd, [16,4,128,128] f32, best of 30)\n",
                variant == 0 ? "mul + masked_fill + softmax" : "masked_softmax", best);
  }
}
