// cuda/cuda_recurrent.cu — the LSTM cell's pointwise step on the GPU (mirrors
// core/cpu/cpu_recurrent.cpp; the formulas are core/recurrent_math.h's, shared with the CPU).
//
// gates [B, 4H] (i f g o blocks side by side), c_prev, c, tanh_c, h, dh, dc [B, H], all
// contiguous. One thread per (row, unit): it reads its four gate pre-activations, writes their
// activations back, and the state rows; the backward is the same walk from the activations.
// autograd/recurrent_ops.cpp runs the time loop and the h W_hh^T products (cuBLAS).
#include "core/flops.h"
#include "core/recurrent_math.h"
#include "cuda/common.cuh"

namespace engram::cuda {

struct DeviceSigmoid {
  __device__ float operator()(float x) const { return 1.0f / (1.0f + expf(-x)); }
  __device__ double operator()(double x) const { return 1.0 / (1.0 + exp(-x)); }
};
struct DeviceTanh {
  __device__ float operator()(float x) const { return tanhf(x); }
  __device__ double operator()(double x) const { return tanh(x); }
};

template <typename T>
__global__ void lstm_cell_kernel(T* gates, const T* c_prev, T* c, T* tc, T* h, int64_t B,
                                 int64_t H) {
  ENGRAM_GRID_STRIDE(n, B * H) {
    const int64_t b = n / H, j = n % H;
    T* g = gates + b * 4 * H + j;
    LstmActivations<T> a{g[0], g[H], g[2 * H], g[3 * H]};
    h[n] = lstm_cell_forward_at(a, c_prev[n], c[n], tc[n], DeviceSigmoid{}, DeviceTanh{});
    g[0] = a.i, g[H] = a.f, g[2 * H] = a.g, g[3 * H] = a.o;
  }
}

template <typename T>
__global__ void lstm_cell_backward_kernel(const T* gates, const T* c_prev, const T* tc,
                                          const T* dh, T* dc, T* dgates, int64_t B, int64_t H) {
  ENGRAM_GRID_STRIDE(n, B * H) {
    const int64_t b = n / H, j = n % H;
    const T* g = gates + b * 4 * H + j;
    T* dg = dgates + b * 4 * H + j;
    LstmActivations<T> a{g[0], g[H], g[2 * H], g[3 * H]}, d;
    dc[n] = lstm_cell_backward_at(a, c_prev[n], tc[n], dh[n], dc[n], d);
    dg[0] = d.i, dg[H] = d.f, dg[2 * H] = d.g, dg[3 * H] = d.o;
  }
}

static void check_cell(Tref gates, std::initializer_list<std::pair<const Tensor*, const char*>> rows,
                       const char* op) {
  require_contiguous(gates, op, "gates");
  ENGRAM_CHECK(gates.dim() == 2 && gates.shape()[1] % 4 == 0, "{}: expected gates [B, 4H], got {}",
               op, shape_str(gates.shape()));
  const Shape want{gates.shape()[0], gates.shape()[1] / 4};
  for (auto [t, what] : rows) {
    require_contiguous(*t, op, what);
    ENGRAM_CHECK(t->shape() == want && t->dtype() == gates.dtype(), "{}: {} should be {} {}, got {} {}",
                 op, what, dtype_name(gates.dtype()), shape_str(want), dtype_name(t->dtype()),
                 shape_str(t->shape()));
  }
}

template <typename T> static void lstm_cell_impl(Tref gates, Tref c_prev, Tref c, Tref tc, Tref h) {
  const int64_t B = gates.shape()[0], H = gates.shape()[1] / 4;
  flops::add(B * H * 12);  // as the CPU counts
  if (B * H == 0) return;
  lstm_cell_kernel<T><<<blocks_for(B * H), kThreads, 0, stream()>>>(
      gates.data<T>(), c_prev.data<T>(), c.data<T>(), tc.data<T>(), h.data<T>(), B, H);
  check_launch("lstm_cell");
}

static void lstm_cell(Tref gates, Tref c_prev, Tref c, Tref tanh_c, Tref h) {
  check_cell(gates, {{&c_prev, "c_prev"}, {&c, "c"}, {&tanh_c, "tanh_c"}, {&h, "h"}}, "lstm_cell");
  ENGRAM_DISPATCH_FLOAT(gates.dtype(), "lstm_cell",
                        [&] { lstm_cell_impl<scalar_t>(gates, c_prev, c, tanh_c, h); });
}

template <typename T>
static void lstm_cell_backward_impl(Tref gates, Tref c_prev, Tref tc, Tref dh, Tref dc,
                                    Tref dgates) {
  const int64_t B = gates.shape()[0], H = gates.shape()[1] / 4;
  flops::add(B * H * 20);
  if (B * H == 0) return;
  lstm_cell_backward_kernel<T><<<blocks_for(B * H), kThreads, 0, stream()>>>(
      gates.data<T>(), c_prev.data<T>(), tc.data<T>(), dh.data<T>(), dc.data<T>(),
      dgates.data<T>(), B, H);
  check_launch("lstm_cell_backward");
}

static void lstm_cell_backward(Tref gates, Tref c_prev, Tref tanh_c, Tref dh, Tref dc,
                               Tref dgates) {
  const char* op = "lstm_cell_backward";
  check_cell(gates, {{&c_prev, "c_prev"}, {&tanh_c, "tanh_c"}, {&dh, "dh"}, {&dc, "dc"}}, op);
  require_contiguous(dgates, op, "dgates");
  ENGRAM_CHECK(dgates.shape() == gates.shape() && dgates.dtype() == gates.dtype(),
               "{}: dgates should be {} like gates, got {}", op, shape_str(gates.shape()),
               shape_str(dgates.shape()));
  ENGRAM_DISPATCH_FLOAT(gates.dtype(), op, [&] {
    lstm_cell_backward_impl<scalar_t>(gates, c_prev, tanh_c, dh, dc, dgates);
  });
}

void register_recurrent(Backend& b) {
  b.lstm_cell = lstm_cell;
  b.lstm_cell_backward = lstm_cell_backward;
}

}  // namespace engram::cuda
