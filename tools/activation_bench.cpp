// tools/activation_bench.cpp — the f32 activations on the CPU, forward alone and forward +
// backward, at the bench transformer's MLP size ([2048, 512] = 16 x 128 tokens x 512 units).
//
// In float, tanh, sigmoid, silu and GELU run on core/cpu/vmath.h's polynomials in loops built
// for SSE2 and AVX2 (core/cpu/cpu_elementwise.cpp); exp stays libm's (its edge cases matter to
// callers). For comparison, "libm loop" is the forward as the kernels computed it before: a plain
// loop of std::erf / std::tanh / std::exp per element into a preallocated buffer. Best of 30
// runs of each, one process. docs/benchmarks.md has the figures, this tool linked against the
// earlier (libm) kernels, and PyTorch's from a script there, all on one machine:
//   ENGRAM_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 build/tools/activation_bench
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "autograd/ops.h"
#include "autograd/tape.h"
using namespace engram;

int main() {
  Generator g(1);
  Tensor x = randn({2048, 512}, DType::f32, &g), w = randn({2048, 512}, DType::f32, &g);
  x.requires_grad_(true);
  const char* names[] = {"gelu", "tanh", "sigmoid", "silu", "exp"};
  auto apply = [&](int op) {
    switch (op) {
      case 0: return gelu(x);
      case 1: return tanh(x);
      case 2: return sigmoid(x);
      case 3: return silu(x);
      default: return exp(x);
    }
  };
  const float* xs = x.data<float>();
  const int64_t n = x.numel();
  std::vector<float> out(n);
  auto libm = [&](int op) {
    for (int64_t i = 0; i < n; ++i) {
      const float v = xs[i];
      out[i] = op == 0   ? 0.5f * v * (1.0f + std::erf(v * 0.70710678f))
               : op == 1 ? std::tanh(v)
               : op == 2 ? 1.0f / (1.0f + std::exp(-v))
               : op == 3 ? v / (1.0f + std::exp(-v))
                         : std::exp(v);
    }
  };
  for (int op = 0; op < 5; ++op) {
    double fwd = 1e9, both = 1e9, base = 1e9;
    for (int r = 0; r < 30; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      {
        NoGradGuard ng;
        Tensor y = apply(op);
      }
      auto t1 = std::chrono::steady_clock::now();
      backward(sum(mul(apply(op), w)));
      auto t2 = std::chrono::steady_clock::now();
      libm(op);
      auto t3 = std::chrono::steady_clock::now();
      fwd = std::min(fwd, std::chrono::duration<double, std::milli>(t1 - t0).count());
      both = std::min(both, std::chrono::duration<double, std::milli>(t2 - t1).count());
      base = std::min(base, std::chrono::duration<double, std::milli>(t3 - t2).count());
    }
    std::printf("%-8s forward %.3f ms (libm loop %.3f ms), forward + backward of sum(y * w) %.3f ms\n",
                names[op], fwd, base, both);
  }
}
