// core/recurrent_math.h — the LSTM cell's pointwise step, forward and backward, written once for
// the CPU (core/cpu/cpu_recurrent.cpp) and the CUDA backend (cuda/cuda_recurrent.cu).
//
// One hidden unit j of one row, gates in PyTorch's order (nn/recurrent.h):
//   i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_g), o = sigmoid(a_o)
//   c = f c_prev + i g,   h = o tanh(c)
// Backward, with tc = tanh(c), dh reaching h and dc_next the gradient reaching c from step t+1:
//   dc      = dc_next + dh o (1 - tc^2)
//   da_i    = dc g i (1 - i)          da_f = dc c_prev f (1 - f)
//   da_g    = dc i (1 - g^2)          da_o = dh tc o (1 - o)
//   dc_prev = dc f
// The forward's nonlinearities are passed in (Act: sigmoid(x) and tanh(x)) because the two
// backends evaluate them differently: the CPU with vectorisable polynomials (core/cpu/vmath.h),
// CUDA with its own expf/tanhf.
#pragma once
#include "core/host_device.h"

namespace engram {

template <typename T> struct LstmActivations {
  T i, f, g, o;
};

// Pre-activations a_* -> activations; writes c and tanh(c), returns h.
template <typename T, typename Sigmoid, typename Tanh>
ENGRAM_HOST_DEVICE inline T lstm_cell_forward_at(LstmActivations<T>& gate, T c_prev, T& c, T& tc,
                                                 Sigmoid sigmoid, Tanh tanh_fn) {
  gate.i = sigmoid(gate.i);
  gate.f = sigmoid(gate.f);
  gate.g = tanh_fn(gate.g);
  gate.o = sigmoid(gate.o);
  c = gate.f * c_prev + gate.i * gate.g;
  tc = tanh_fn(c);
  return gate.o * tc;
}

// Activations, c_prev, tanh(c), dh and the incoming dc -> pre-activation gradients; returns
// dc_prev.
template <typename T>
ENGRAM_HOST_DEVICE inline T lstm_cell_backward_at(const LstmActivations<T>& gate, T c_prev, T tc,
                                                  T dh, T dc_next, LstmActivations<T>& dgate) {
  const T dc = dc_next + dh * gate.o * (T(1) - tc * tc);
  dgate.i = dc * gate.g * gate.i * (T(1) - gate.i);
  dgate.f = dc * c_prev * gate.f * (T(1) - gate.f);
  dgate.g = dc * gate.i * (T(1) - gate.g * gate.g);
  dgate.o = dh * tc * gate.o * (T(1) - gate.o);
  return dc * gate.f;
}

}  // namespace engram
