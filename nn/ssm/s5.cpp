// nn/ssm/s5.cpp — S5 (equations, init and shapes in nn/ssm/s5.h).
#include "nn/ssm/s5.h"

#include <cmath>

#include "nn/init.h"
#include "nn/ssm/hippo.h"

namespace engram::nn::ssm {

// jax.nn.initializers.truncated_normal as lecun_normal uses it: a standard normal truncated to
// [-2, 2] (by rejection), scaled so that the result has standard deviation `std`.
static std::vector<double> truncated_normal(int64_t n, double std, Generator* gen) {
  Generator& g = gen ? *gen : default_generator();
  constexpr double kTruncatedStd = 0.87962566103423978;  // std of N(0, 1) truncated to [-2, 2]
  std::vector<double> v(n);
  for (double& x : v) {
    do x = g.normal();
    while (std::abs(x) > 2.0);
    x *= std / kTruncatedStd;
  }
  return v;
}

static void copy_into(Tensor& param, const std::vector<double>& values) {
  raw::copy_(param, from_vector(values, param.shape(), param.dtype()));
}

S5::S5(int64_t d_model_, int64_t state_size_, int64_t blocks_, bool bilinear_, Generator* gen)
    : d_model(d_model_),
      state_size(state_size_),
      modes(state_size_ / 2),
      blocks(blocks_),
      bilinear(bilinear_),
      Lambda_re(register_parameter("Lambda_re", empty({state_size_ / 2}))),
      Lambda_im(register_parameter("Lambda_im", empty({state_size_ / 2}))),
      B(register_parameter("B", empty({state_size_ / 2, d_model_, 2}))),
      C(register_parameter("C", empty({d_model_, state_size_ / 2, 2}))),
      D(register_parameter("D", empty({d_model_}))),
      log_step(register_parameter("log_step", empty({state_size_ / 2}))) {
  ENGRAM_CHECK(d_model > 0 && state_size > 0 && blocks > 0 && state_size % blocks == 0 &&
                   (state_size / blocks) % 2 == 0,
               "S5: expected positive d_model and state_size P divided into `blocks` blocks of an "
               "even size (conjugate pairs), got d_model={}, state_size={}, blocks={}",
               d_model, state_size, blocks);
  const int64_t P = state_size, H = d_model, block = P / blocks, kept = block / 2, Ph = modes;
  HippoDPLR hippo = make_dplr_hippo(block);
  // V_blk [P, Ph] = blockdiag(V[:, :kept]); V_inv [Ph, P] = its conjugate transpose
  auto V_blk = [&](int64_t row, int64_t col) -> cdouble {
    if (row / block != col / kept) return 0.0;
    return hippo.V[(row % block) * block + col % kept];
  };
  std::vector<double> lre(Ph), lim(Ph);
  for (int64_t p = 0; p < Ph; ++p) {
    lre[p] = hippo.Lambda[p % kept].real();
    lim[p] = hippo.Lambda[p % kept].imag();
  }
  copy_into(Lambda_re, lre);
  copy_into(Lambda_im, lim);
  // B~ = V_inv B0, B0 [P, H] lecun_normal (fan_in = P)
  std::vector<double> B0 = truncated_normal(P * H, 1.0 / std::sqrt(double(P)), gen);
  std::vector<double> Bt(Ph * H * 2);
  for (int64_t p = 0; p < Ph; ++p)
    for (int64_t h = 0; h < H; ++h) {
      cdouble acc = 0;
      for (int64_t r = 0; r < P; ++r) acc += std::conj(V_blk(r, p)) * B0[r * H + h];
      Bt[(p * H + h) * 2] = acc.real();
      Bt[(p * H + h) * 2 + 1] = acc.imag();
    }
  copy_into(B, Bt);
  // C~ = C0 V_blk, C0 [H, P] complex, each row lecun_normal of shape (1, P, 2) (fan_in = P)
  std::vector<double> C0 = truncated_normal(H * P * 2, 1.0 / std::sqrt(double(P)), gen);
  std::vector<double> Ct(H * Ph * 2);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t p = 0; p < Ph; ++p) {
      cdouble acc = 0;
      for (int64_t r = 0; r < P; ++r)
        acc += cdouble(C0[(h * P + r) * 2], C0[(h * P + r) * 2 + 1]) * V_blk(r, p);
      Ct[(h * Ph + p) * 2] = acc.real();
      Ct[(h * Ph + p) * 2 + 1] = acc.imag();
    }
  copy_into(C, Ct);
  init::normal_(D, 0.0, 1.0, gen);
  init::uniform_(log_step, std::log(1e-3), std::log(1e-1), gen);
  out2 = register_module("out2", std::make_shared<Linear>(H, H, true, gen));
  copy_into(out2->weight, truncated_normal(H * H, 1.0 / std::sqrt(double(H)), gen));
  init::constant_(out2->bias, 0.0);
}

std::string S5::extra_repr() const {
  return fmt::format("d_model={}, state_size={}, blocks={}, discretization={}", d_model,
                     state_size, blocks, bilinear ? "bilinear" : "zoh");
}

State S5::initial_state(int64_t batch) const {
  return {{"x", zeros({batch, modes, 2}, Lambda_re.dtype(), Lambda_re.device())}};
}

S5::Discrete S5::discretise() const {
  Tensor dt = exp(log_step);
  Tensor lre = Lambda_re, lim = Lambda_im;
  Tensor bar_re, bar_im, coef_re, coef_im;  // Lambda^ and the factor B^ = coef * B~
  if (!bilinear) {
    // Lambda^ = e^{dt re} (cos dt im, sin dt im);  coef = (Lambda^ - 1) / Lambda
    Tensor mag = exp(mul(dt, lre)), ang = mul(dt, lim);
    bar_re = mul(mag, cos(ang));
    bar_im = mul(mag, sin(ang));
    Tensor nre = bar_re - 1.0, n2 = mul(lre, lre) + mul(lim, lim);
    coef_re = (mul(nre, lre) + mul(bar_im, lim)) / n2;
    coef_im = (mul(bar_im, lre) - mul(nre, lim)) / n2;
  } else {
    // BL = 1 / (1 - dt/2 Lambda);  Lambda^ = BL (1 + dt/2 Lambda);  coef = BL dt
    Tensor hre = mul(mul(dt, lre), 0.5), him = mul(mul(dt, lim), 0.5);
    Tensor pre = 1.0 - hre, n2 = mul(pre, pre) + mul(him, him);
    Tensor bl_re = pre / n2, bl_im = him / n2;  // 1 / (pre - i him) = (pre + i him) / n2
    Tensor qre = 1.0 + hre;
    bar_re = mul(bl_re, qre) - mul(bl_im, him);
    bar_im = mul(bl_re, him) + mul(bl_im, qre);
    coef_re = mul(bl_re, dt);
    coef_im = mul(bl_im, dt);
  }
  Tensor bre = select(B, -1, 0), bim = select(B, -1, 1);  // [Ph, H]
  Tensor cre = unsqueeze(coef_re, -1), cim = unsqueeze(coef_im, -1);
  return Discrete{bar_re, bar_im, mul(cre, bre) - mul(cim, bim), mul(cre, bim) + mul(cim, bre)};
}

// The complex products are real ones on the interleaved (re, im) layout, so the scan's output
// and input are read and written in place: with x [.., 2Ph] = (re_0, im_0, re_1, ..),
//   2 Re(C x) = x W_out, W_out [2Ph, H] rows 2 C_re[:, p], -2 C_im[:, p]   (x2 is exact)
//   B^ u      = u W_in,  W_in [H, 2Ph] columns B^_re[p, :], B^_im[p, :]
// (one product each, instead of two on strided halves copied for BLAS, plus a stack).
Tensor S5::readout(const Tensor& x, const Tensor& u) {
  Shape flat = x.shape();
  flat.pop_back();
  flat.back() = 2 * modes;
  Tensor C2 = stack({mul(select(C, -1, 0), 2.0), mul(select(C, -1, 1), -2.0)}, -1);  // [H, Ph, 2]
  Tensor W_out = transpose(reshape(C2, {d_model, 2 * modes}), 0, 1);                  // [2Ph, H]
  Tensor y = matmul(reshape(x, flat), W_out) + mul(u, D);
  Tensor g = gelu(y, /*tanh_approximation=*/true);
  return mul(g, sigmoid(out2->forward(g)));  // half_glu1
}

Tensor S5::drive(const Discrete& d, const Tensor& u) {
  const int64_t Ph = d.B_re.size(0), H = d.B_re.size(1);
  Tensor W_in = transpose(reshape(stack({d.B_re, d.B_im}, 1), {2 * Ph, H}), 0, 1);  // [H, 2Ph]
  Shape pairs = u.shape();
  pairs.back() = Ph;
  pairs.push_back(2);
  return reshape(matmul(u, W_in), pairs);
}

const Tensor& S5::checked_state(const State& state, int64_t batch) const {
  const Tensor& x = state_get(state, "x", "S5");
  ENGRAM_CHECK(x.shape() == Shape({batch, modes, 2}),
               "S5: state 'x' should be [B, P/2, 2] = [{}, {}, 2], got {}", batch, modes,
               shape_str(x.shape()));
  return x;
}

Tensor S5::forward(const Tensor& x, State& state) {
  ENGRAM_CHECK(x.dim() == 3 && x.size(2) == d_model && x.size(1) >= 1,
               "S5: expected x [B, T >= 1, {}], got {}", d_model, shape_str(x.shape()));
  const int64_t T = x.size(1);
  const Tensor& x0 = checked_state(state, x.size(0));
  Discrete d = discretise();
  Tensor f = drive(d, x);  // B^ u_t for every step: [B, T, Ph, 2]
  Tensor M = stack({stack({d.lambda_re, neg(d.lambda_im)}, -1),
                    stack({d.lambda_im, d.lambda_re}, -1)}, -2);  // [Ph, 2, 2]
  Tensor h = linear_scan_2x2(M, f, x0);                          // [B, T, Ph, 2]
  Tensor y = readout(h, x);
  // a copy, so the state does not keep the whole [B, T, ..] scan output alive
  state_set(state, "x", contiguous(select(h, 1, T - 1)));
  return note_output(y);
}

Tensor S5::step(const Tensor& x_t, State& state) {
  ENGRAM_CHECK(x_t.dim() == 2 && x_t.size(1) == d_model, "S5: expected x_t [B, {}], got {}",
               d_model, shape_str(x_t.shape()));
  const Tensor& s = checked_state(state, x_t.size(0));
  Discrete d = discretise();
  Tensor xr = select(s, -1, 0), xi = select(s, -1, 1);  // [B, Ph]
  Tensor f = drive(d, x_t);  // [B, Ph, 2]
  // x_t = Lambda^ x_{t-1} + B^ u_t (complex)
  Tensor nr = mul(d.lambda_re, xr) - mul(d.lambda_im, xi) + select(f, -1, 0);
  Tensor ni = mul(d.lambda_im, xr) + mul(d.lambda_re, xi) + select(f, -1, 1);
  Tensor next = stack({nr, ni}, -1);
  state_set(state, "x", next);
  return readout(next, x_t);
}

}  // namespace engram::nn::ssm
