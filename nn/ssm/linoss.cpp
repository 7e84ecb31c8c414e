// nn/ssm/linoss.cpp — LinOSS (equations, init and shapes in nn/ssm/linoss.h).
#include "nn/ssm/linoss.h"

#include <cmath>

#include "nn/init.h"

namespace engram::nn::ssm {

LinOSSGLU::LinOSSGLU(int64_t d_model, Generator* gen) {
  w1 = register_module("w1", std::make_shared<Linear>(d_model, d_model, true, gen));
  w2 = register_module("w2", std::make_shared<Linear>(d_model, d_model, true, gen));
}

Tensor LinOSSGLU::forward(const Tensor& x) {
  return note_output(mul(w1->forward(x), sigmoid(w2->forward(x))));
}

LinOSS::LinOSS(int64_t d_model_, int64_t state_size_, Discretization disc_, Generator* gen)
    : d_model(d_model_),
      state_size(state_size_),
      disc(disc_),
      A_diag(register_parameter("A_diag", empty({state_size_}))),
      B(register_parameter("B", empty({state_size_, d_model_, 2}))),
      C(register_parameter("C", empty({d_model_, state_size_, 2}))),
      D(register_parameter("D", empty({d_model_}))),
      steps(register_parameter("steps", empty({state_size_}))) {
  ENGRAM_CHECK(d_model > 0 && state_size > 0,
               "LinOSS: d_model and state_size must be positive, got {} and {}", d_model,
               state_size);
  // LinOSSLayer's init (the draws in the order of its keys: B, C, D, A, steps)
  const double b_bound = 1.0 / std::sqrt(double(d_model)), c_bound = 1.0 / std::sqrt(double(state_size));
  init::uniform_(B, -b_bound, b_bound, gen);
  init::uniform_(C, -c_bound, c_bound, gen);
  init::normal_(D, 0.0, 1.0, gen);
  init::uniform_(A_diag, 0.0, 1.0, gen);
  init::uniform_(steps, 0.0, 1.0, gen);
  glu = register_module("glu", std::make_shared<LinOSSGLU>(d_model, gen));
}

std::string LinOSS::extra_repr() const {
  return fmt::format("d_model={}, state_size={}, discretization={}", d_model, state_size,
                     disc == Discretization::IM ? "IM" : "IMEX");
}

State LinOSS::initial_state(int64_t batch) const {
  return {{"x", zeros({batch, 2, state_size, 2}, A_diag.dtype(), A_diag.device())}};
}

LinOSS::Discrete LinOSS::discretise() const {
  Tensor A = relu(A_diag), dt = sigmoid(steps);
  Tensor dt2A = mul(mul(dt, dt), A);
  Tensor m11, m12, m21, m22;
  Discrete d;
  if (disc == Discretization::IM) {
    // implicit Euler solved in closed form: S = 1 / (1 + dt^2 A) (a Schur complement)
    Tensor S = reciprocal(add(dt2A, 1.0));
    m11 = 1.0 - mul(dt2A, S);
    m12 = neg(mul(mul(dt, A), S));
    m21 = mul(dt, S);
    m22 = S;
    d.f_z = mul(m11, dt);
    d.f_y = mul(m21, dt);
  } else {
    // symplectic Euler: z_t = z + dt (-A y + Bu_t), y_t = y + dt z_t
    m11 = ones_like(dt);
    m12 = neg(mul(dt, A));
    m21 = dt;
    m22 = 1.0 - dt2A;
    d.f_z = dt;
    d.f_y = mul(dt, dt);
  }
  d.M = stack({stack({m11, m12}, -1), stack({m21, m22}, -1)}, -2);  // [P, 2, 2]
  return d;
}

// Re and Im of B u for u [.., H]: [.., 2, P].
Tensor LinOSS::input_drive(const Tensor& u) const {
  Tensor re = matmul(u, transpose(select(B, -1, 0), 0, 1));
  Tensor im = matmul(u, transpose(select(B, -1, 1), 0, 1));
  return stack({re, im}, -2);
}

// Re(C y) + D u, then GELU -> GLU. y [.., 2, P] (re, im), u [.., H].
Tensor LinOSS::readout(const Tensor& y, const Tensor& u) {
  Tensor Cre = transpose(select(C, -1, 0), 0, 1), Cim = transpose(select(C, -1, 1), 0, 1);  // [P, H]
  Tensor o = matmul(select(y, -2, 0), Cre) - matmul(select(y, -2, 1), Cim) + mul(u, D);
  return glu->forward(gelu(o, /*tanh_approximation=*/true));
}

const Tensor& LinOSS::checked_state(const State& state, int64_t batch) const {
  const Tensor& x = state_get(state, "x", "LinOSS");
  ENGRAM_CHECK(x.shape() == Shape({batch, 2, state_size, 2}),
               "LinOSS: state 'x' should be [B, 2, P, 2] = [{}, 2, {}, 2], got {}", batch,
               state_size, shape_str(x.shape()));
  return x;
}

Tensor LinOSS::forward(const Tensor& x, State& state) {
  ENGRAM_CHECK(x.dim() == 3 && x.size(2) == d_model && x.size(1) >= 1,
               "LinOSS: expected x [B, T >= 1, {}], got {}", d_model, shape_str(x.shape()));
  const int64_t T = x.size(1);
  const Tensor& x0 = checked_state(state, x.size(0));
  Discrete d = discretise();
  Tensor Bu = input_drive(x);                                    // [B, T, 2, P]
  Tensor f = stack({mul(Bu, d.f_z), mul(Bu, d.f_y)}, -1);        // [B, T, 2, P, 2]
  Tensor h = linear_scan_2x2(d.M, f, x0);                        // [B, T, 2, P, 2] = (z, y)
  Tensor y = readout(select(h, -1, 1), x);
  // a copy, so the state does not keep the whole [B, T, ..] scan output alive
  state_set(state, "x", contiguous(select(h, 1, T - 1)));
  return note_output(y);
}

Tensor LinOSS::step(const Tensor& x_t, State& state) {
  ENGRAM_CHECK(x_t.dim() == 2 && x_t.size(1) == d_model, "LinOSS: expected x_t [B, {}], got {}",
               d_model, shape_str(x_t.shape()));
  const Tensor& s = checked_state(state, x_t.size(0));
  Discrete d = discretise();
  auto m = [&](int64_t i, int64_t j) { return select(select(d.M, -2, i), -1, j); };  // [P]
  Tensor z = select(s, -1, 0), y = select(s, -1, 1);  // [B, 2, P]
  Tensor Bu = input_drive(x_t);                        // [B, 2, P]
  Tensor z_new = mul(m(0, 0), z) + mul(m(0, 1), y) + mul(d.f_z, Bu);
  Tensor y_new = mul(m(1, 0), z) + mul(m(1, 1), y) + mul(d.f_y, Bu);
  state_set(state, "x", stack({z_new, y_new}, -1));
  return readout(y_new, x_t);
}

}  // namespace engram::nn::ssm
