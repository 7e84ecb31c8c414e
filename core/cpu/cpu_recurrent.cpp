// core/cpu/cpu_recurrent.cpp — the LSTM cell's pointwise step on the CPU (formulas in
// core/recurrent_math.h; the time loop and its matrix products are autograd/recurrent_ops.cpp's).
//
// gates [B, 4H] holds row b's four gate blocks side by side (i f g o, each H wide), so unit j's
// four pre-activations are gates[b, j], gates[b, H + j], gates[b, 2H + j], gates[b, 3H + j]:
// four unit-stride streams, which the loop over j reads as vectors. The nonlinearities are
// core/cpu/vmath.h's polynomials so that the loop vectorises (libm's expf/tanhf would run one
// element at a time and cost more than the step's matrix product at the bench's sizes).
#include <cmath>

#include "core/backend.h"
#include "core/cpu/kernel_checks.h"
#include "core/cpu/vmath.h"
#include "core/flops.h"
#include "core/recurrent_math.h"

namespace engram::cpu {

namespace {

constexpr int64_t kParallelRows = 1 << 14;  // elements below which one thread runs

template <typename T>
ENGRAM_SIMD_CLONES void cell_forward_row(T* gates, const T* c_prev, T* c, T* tc, T* h, int64_t H) {
  auto sigmoid = [](T x) { return vsigmoid(x); };
  auto tanh_fn = [](T x) { return vtanh(x); };
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    LstmActivations<T> a{gates[j], gates[H + j], gates[2 * H + j], gates[3 * H + j]};
    h[j] = lstm_cell_forward_at(a, c_prev[j], c[j], tc[j], sigmoid, tanh_fn);
    gates[j] = a.i, gates[H + j] = a.f, gates[2 * H + j] = a.g, gates[3 * H + j] = a.o;
  }
}

template <typename T>
ENGRAM_SIMD_CLONES void cell_backward_row(const T* gates, const T* c_prev, const T* tc, const T* dh,
                                          T* dc, T* dgates, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    LstmActivations<T> a{gates[j], gates[H + j], gates[2 * H + j], gates[3 * H + j]}, d;
    dc[j] = lstm_cell_backward_at(a, c_prev[j], tc[j], dh[j], dc[j], d);
    dgates[j] = d.i, dgates[H + j] = d.f, dgates[2 * H + j] = d.g, dgates[3 * H + j] = d.o;
  }
}

template <typename T> void cell_forward_rows(Tref gates, Tref c_prev, Tref c, Tref tanh_c, Tref h) {
  const int64_t B = gates.shape()[0], H = gates.shape()[1] / 4;
  T *g = gates.data<T>(), *cn = c.data<T>(), *tc = tanh_c.data<T>(), *hn = h.data<T>();
  const T* cp = c_prev.data<T>();
#pragma omp parallel for schedule(static) if (B * H > kParallelRows)
  for (int64_t b = 0; b < B; ++b)
    cell_forward_row<T>(g + b * 4 * H, cp + b * H, cn + b * H, tc + b * H, hn + b * H, H);
}

template <typename T>
void cell_backward_rows(Tref gates, Tref c_prev, Tref tanh_c, Tref dh, Tref dc, Tref dgates) {
  const int64_t B = gates.shape()[0], H = gates.shape()[1] / 4;
  const T *g = gates.data<T>(), *cp = c_prev.data<T>(), *tc = tanh_c.data<T>(), *d = dh.data<T>();
  T *dcn = dc.data<T>(), *dg = dgates.data<T>();
#pragma omp parallel for schedule(static) if (B * H > kParallelRows)
  for (int64_t b = 0; b < B; ++b)
    cell_backward_row<T>(g + b * 4 * H, cp + b * H, tc + b * H, d + b * H, dcn + b * H,
                         dg + b * 4 * H, H);
}

void check_cell(Tref gates, std::initializer_list<const Tensor*> rows, const char* op) {
  ENGRAM_CHECK(gates.dim() == 2 && gates.shape()[1] % 4 == 0,
               "{}: expected gates [B, 4H], got {}", op, shape_str(gates.shape()));
  const Shape want{gates.shape()[0], gates.shape()[1] / 4};
  for (const Tensor* t : rows)
    ENGRAM_CHECK(t->shape() == want && t->dtype() == gates.dtype(),
                 "{}: expected {} {} state rows, got {} {}", op, dtype_name(gates.dtype()),
                 shape_str(want), dtype_name(t->dtype()), shape_str(t->shape()));
}

void lstm_cell(Tref gates, Tref c_prev, Tref c, Tref tanh_c, Tref h) {
  check_contiguous({&gates, &c_prev, &c, &tanh_c, &h}, "lstm_cell");
  check_cell(gates, {&c_prev, &c, &tanh_c, &h}, "lstm_cell");
  const int64_t B = gates.shape()[0], H = gates.shape()[1] / 4;
  flops::add(B * H * 12);  // per unit: 4 activations, the update, tanh(c), the product (core/flops.h)
  ENGRAM_DISPATCH_FLOAT(gates.dtype(), "lstm_cell",
                        [&] { cell_forward_rows<scalar_t>(gates, c_prev, c, tanh_c, h); });
}

void lstm_cell_backward(Tref gates, Tref c_prev, Tref tanh_c, Tref dh, Tref dc, Tref dgates) {
  check_contiguous({&gates, &c_prev, &tanh_c, &dh, &dc, &dgates}, "lstm_cell_backward");
  check_cell(gates, {&c_prev, &tanh_c, &dh, &dc}, "lstm_cell_backward");
  ENGRAM_CHECK(dgates.shape() == gates.shape() && dgates.dtype() == gates.dtype(),
               "lstm_cell_backward: dgates must be {} like gates, got {}", shape_str(gates.shape()),
               shape_str(dgates.shape()));
  const int64_t B = gates.shape()[0], H = gates.shape()[1] / 4;
  flops::add(B * H * 20);
  ENGRAM_DISPATCH_FLOAT(gates.dtype(), "lstm_cell_backward", [&] {
    cell_backward_rows<scalar_t>(gates, c_prev, tanh_c, dh, dc, dgates);
  });
}

}  // namespace

void register_recurrent(Backend& b) {
  b.lstm_cell = lstm_cell;
  b.lstm_cell_backward = lstm_cell_backward;
}

}  // namespace engram::cpu
