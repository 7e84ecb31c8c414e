// nn/ssm/s4.cpp — S4 (see s4.h for the equations and their cost): the DPLR bilinear
// discretisation, the kernel from four Cauchy sums and the Woodbury correction, the exact carried
// state, and the dense recurrence of step().
#include "nn/ssm/s4.h"

#include <cmath>
#include <complex>
#include <numbers>
#include <optional>

#include "nn/init.h"
#include "nn/ssm/hippo.h"
#include "nn/ssm/s4d.h"

namespace engram::nn::ssm {

namespace {

constexpr const char* kLayer = "S4";

// M [.., N, N, 2] times the column v [.., N, 2] -> [.., N, 2].
Tensor matvec(const Tensor& M, const Tensor& v) {
  if (M.dim() == 4 && v.dim() == 4) return cplx::batched_matvec(M, v);  // v [B, H, N, 2]
  return squeeze(cplx::matmul(M, unsqueeze(v, -2)), -2);
}

// The row v [.., N, 2] times M [.., N, N, 2] -> [.., N, 2].
Tensor vecmat(const Tensor& v, const Tensor& M) {
  return squeeze(cplx::matmul(unsqueeze(v, -3), M), -3);
}

// The outer product a_n b_m: a, b [.., N, 2] -> [.., N, N, 2] (no conjugation).
Tensor outer_product(const Tensor& a, const Tensor& b) {
  return cplx::mul(unsqueeze(a, -2), unsqueeze(b, -3));
}

// diag(d) [.., N, N, 2] from d [.., N, 2].
Tensor diag_embed(const Tensor& d) {
  const int64_t N = d.size(-2);
  std::vector<double> eye(N * N, 0.0);
  for (int64_t i = 0; i < N; ++i) eye[i * N + i] = 1.0;
  Tensor I = raw::to_device(from_vector(eye, {N, N, 1}, d.dtype()), d.device());
  return mul(unsqueeze(d, -3), I);  // [.., 1, N, 2] * [N, N, 1]
}

// [half, conj(half)] along the modes dim of a complex [.., N/2, 2].
Tensor with_conjugates(const Tensor& half) {
  return cat({half, cplx::conj(half)}, half.dim() - 2);
}

// Complex host constants as a [n, 2] tensor in `like`'s dtype and device.
Tensor constants(const std::vector<cdouble>& z, const Tensor& like) {
  std::vector<double> flat(2 * z.size());
  for (size_t i = 0; i < z.size(); ++i) flat[2 * i] = z[i].real(), flat[2 * i + 1] = z[i].imag();
  return raw::to_device(from_vector(flat, {(int64_t)z.size(), 2}, like.dtype()), like.device());
}

// A^^(2^k) for k = 0..K with 2^K <= max_power, so every power up to max_power is a product of them.
std::vector<Tensor> squares(const Tensor& A_bar, int64_t max_power) {
  std::vector<Tensor> s{A_bar};
  while ((int64_t(2) << (s.size() - 1)) <= max_power) s.push_back(cplx::matmul(s.back(), s.back()));
  return s;
}

// A^^e (e >= 1) as the product of the squares A^^(2^k) over the set bits k of e.
Tensor power(const std::vector<Tensor>& sq, int64_t e) {
  Tensor result;
  for (size_t k = 0; k < sq.size(); ++k)
    if ((e >> k) & 1) result = result.defined() ? cplx::matmul(result, sq[k]) : sq[k];
  return result;
}

}  // namespace

struct S4::Call {
  int64_t L = 0, L_gen = 0;  // the call's length and the generating function's (odd) length
  Modes m;
  Discrete d;
  std::vector<Tensor> sq;    // A^^(2^k)
  Tensor A_L;                // A^^L
  Tensor C_tilde;            // C (I - A^^L_gen)    [H, N, 2]
  Tensor c, g;               // 2/(1+zeta) [M, 2];  (2/dt)(1-zeta)/(1+zeta) [H, M, 2]
  Tensor r_CP, r_PP;         // k(C~, P), k(P^*, P) [H, M, 2]
  Tensor K;                  // the kernel [H, L]

  // The generating function c (k_Cb - k_CP k_Pb / (1 + k_PP)) for Cauchy sums k_Cb = k(C~, b),
  // k_Pb = k(P^*, b), turned into its first L coefficients [.., H, L].
  Tensor coefficients(const Tensor& r_Cb, const Tensor& r_Pb) const {
    Tensor woodbury = cplx::div(cplx::mul(r_CP, r_Pb), add(r_PP, cplx::one(r_PP)));
    Tensor spectrum = cplx::mul(c, sub(r_Cb, woodbury));  // K^ at zeta_k, k = 0..L_gen/2
    return slice(irfft(spectrum, L_gen), -1, 0, L);
  }
};

S4::S4(int64_t H, int64_t N, Generator* gen)
    : d_model(H),
      state_size(N),
      modes(N / 2),
      log_dt(register_parameter("log_dt", empty({H}))),
      log_A_real(register_parameter("log_A_real", empty({H, N / 2}))),
      A_imag(register_parameter("A_imag", empty({H, N / 2}))),
      P(register_parameter("P", empty({H, N / 2, 2}))),
      B(register_parameter("B", empty({H, N / 2, 2}))),
      C(register_parameter("C", empty({H, N / 2, 2}))),
      D(register_parameter("D", empty({H}))) {
  ENGRAM_CHECK(H > 0, "{}: d_model must be positive, got {}", kLayer, H);
  ENGRAM_CHECK(N >= 2 && N % 2 == 0,
               "{}: state_size N must be even and >= 2 (N/2 conjugate pairs of modes), got {}",
               kLayer, N);
  // HiPPO-LegS's DPLR form; eigh's ascending order puts the positive imaginary half last
  HippoDPLR hippo = make_dplr_hippo(N);
  std::vector<double> lar, imag;
  std::vector<cdouble> p, b;
  for (int64_t h = 0; h < H; ++h)
    for (int64_t j = N / 2; j < N; ++j) {
      lar.push_back(std::log(-hippo.Lambda[j].real()));
      imag.push_back(hippo.Lambda[j].imag());
      p.push_back(hippo.P[j]);
      b.push_back(hippo.B[j]);
    }
  raw::copy_(log_A_real, from_vector(lar, {H, modes}, log_A_real.dtype()));
  raw::copy_(A_imag, from_vector(imag, {H, modes}, A_imag.dtype()));
  raw::copy_(P, raw::to_dtype(complex_tensor(p, {H, modes}), P.dtype()));
  raw::copy_(B, raw::to_dtype(complex_tensor(b, {H, modes}), B.dtype()));
  init::uniform_(log_dt, std::log(1e-3), std::log(1e-1), gen);
  init::normal_(C, 0.0, std::sqrt(0.5), gen);  // torch.randn(cfloat): re, im each N(0, 1/2)
  init::normal_(D, 0.0, 1.0, gen);
  output_linear = register_module("output_linear", std::make_shared<Linear>(H, 2 * H, true, gen));
}

std::string S4::extra_repr() const {
  return fmt::format("d_model={}, state_size={}", d_model, state_size);
}

State S4::initial_state(int64_t batch) const {
  return modal_initial_state(batch, d_model, state_size, log_dt, kLayer);
}

const Tensor& S4::checked_state(const State& state, int64_t batch) const {
  return checked_modal_state(state, batch, d_model, state_size, log_dt, kLayer);
}

S4::Modes S4::full_modes() const {
  Tensor lambda = cplx::make(neg(exp(log_A_real)), A_imag);  // [H, N/2, 2]
  return {with_conjugates(lambda), with_conjugates(P), with_conjugates(B), with_conjugates(C)};
}

S4::Discrete S4::discretise(const Modes& m) const {
  Tensor two_over_dt = mul(exp(neg(log_dt)), 2.0);  // [H]
  Tensor tdt = unsqueeze(two_over_dt, -1);          // [H, 1]
  Tensor re = cplx::real(m.Lambda), im = cplx::imag(m.Lambda);
  // D = diag(1 / (2/dt - Lambda));  A1 = D - (D P)(P^* D) / (1 + P^* D P)   (Woodbury)
  Tensor d = cplx::div(cplx::one(tdt), cplx::make(sub(tdt, re), neg(im)));  // [H, N, 2]
  Tensor DP = cplx::mul(d, m.P);                        // D P, a column
  Tensor PD = cplx::mul(cplx::conj(m.P), d);            // P^* D, a row
  Tensor denom = add(sum(cplx::mul(PD, m.P), {1}), cplx::one(d));  // 1 + P^* D P  [H, 2]
  Tensor A1 = sub(diag_embed(d), outer_product(cplx::div(DP, unsqueeze(denom, 1)), PD));
  // A^ = A1 A0 = A1 diag(2/dt + Lambda) - (A1 P) P^*;  B^ = 2 A1 B
  Tensor a0 = cplx::make(add(tdt, re), im);             // [H, N, 2]
  Tensor A_bar = sub(cplx::mul(A1, unsqueeze(a0, -3)),
                     outer_product(matvec(A1, m.P), cplx::conj(m.P)));
  Tensor B_bar = mul(matvec(A1, m.B), 2.0);
  return {two_over_dt, A1, A_bar, B_bar};
}

Tensor S4::discrete_A() const { return discretise(full_modes()).A_bar; }
Tensor S4::discrete_B() const { return discretise(full_modes()).B_bar; }

S4::Call S4::prepare(int64_t L) const {
  Call call;
  call.L = L;
  call.L_gen = L % 2 == 1 ? L : L + 1;  // odd: zeta = -1 is not a node
  call.m = full_modes();
  call.d = discretise(call.m);
  const Modes& m = call.m;
  const Discrete& d = call.d;
  call.sq = squares(d.A_bar, call.L_gen);
  call.A_L = power(call.sq, L);
  Tensor A_gen = call.L_gen == L ? call.A_L : cplx::matmul(call.A_L, d.A_bar);
  call.C_tilde = sub(m.C, vecmat(m.C, A_gen));  // C~ = C (I - A^^L_gen)
  // nodes zeta_k = exp(-2 pi i k / L_gen), k = 0..L_gen/2:
  //   (1 - zeta)/(1 + zeta) = i tan(pi k / L_gen),  2/(1 + zeta) = 1 + i tan(pi k / L_gen)
  const int64_t M = call.L_gen / 2 + 1;
  std::vector<cdouble> t(M), c(M);
  for (int64_t k = 0; k < M; ++k) {
    t[k] = cdouble(0, std::tan(std::numbers::pi * k / call.L_gen));
    c[k] = 1.0 + t[k];
  }
  call.c = constants(c, log_dt);
  call.g = mul(constants(t, log_dt), reshape(d.two_over_dt, {d_model, 1, 1}));  // [H, M, 2]
  // the four per-channel Cauchy sums k_ab = sum_n a_n b_n / (g - Lambda_n)
  Tensor Pc = cplx::conj(m.P);
  Tensor v = stack({cplx::mul(call.C_tilde, m.B), cplx::mul(call.C_tilde, m.P),
                    cplx::mul(Pc, m.B), cplx::mul(Pc, m.P)}, 0);  // [4, H, N, 2]
  Tensor r = cauchy_kernel(v, call.g, m.Lambda);                 // [4, H, M, 2]
  call.r_CP = select(r, 0, 1);
  call.r_PP = select(r, 0, 3);
  call.K = call.coefficients(select(r, 0, 0), select(r, 0, 2));  // [H, L]
  return call;
}

Tensor S4::kernel(int64_t L) const {
  ENGRAM_CHECK(L > 0, "{}: kernel length must be positive, got {}", kLayer, L);
  return prepare(L).K;
}

Tensor S4::forward(const Tensor& x, State& state) {
  check_sequence_input(x, d_model, kLayer);
  const int64_t L = x.size(1);
  const Tensor& x0 = checked_state(state, x.size(0));
  Tensor u = transpose(x, 1, 2);  // [B, H, L]
  Call call = prepare(L);
  const Modes& m = call.m;
  Tensor y = add(causal_fft_conv(u, call.K), mul(u, unsqueeze(D, -1)));
  // A zero initial state adds exactly nothing, to the outputs or to any gradient: skip its terms
  const bool from_zero = is_zero_state(x0);
  if (!from_zero) {
    // the carried state's outputs C A^^(l+1) x0: the kernel with B^ -> A^ x0, i.e. with
    // B' = x0/dt + (Lambda x0 - P (P^* x0))/2
    Tensor Pc = cplx::conj(m.P);
    Tensor Ax0 = sub(cplx::mul(m.Lambda, x0),
                     cplx::mul(m.P, unsqueeze(sum(cplx::mul(Pc, x0), {-2}), -2)));
    Tensor x0_dt = mul(x0, reshape(mul(call.d.two_over_dt, 0.5), {d_model, 1, 1}));
    Tensor B_state = add(x0_dt, mul(Ax0, 0.5));                                    // [B, H, N, 2]
    Tensor vs = stack({cplx::mul(call.C_tilde, B_state), cplx::mul(Pc, B_state)}, 0);
    // 2B Cauchy sums per channel share z = g and w = Lambda: build the Cauchy matrix
    // Dc[h, n, k] = 1 / (g_hk - Lambda_hn) once ([H, N, M], a few elementwise ops) and take all the
    // sums as one complex [2B, N] x [N, M] product per channel (instead of 2B H M N reciprocals,
    // three times over with the backward, which was a quarter of the layer's step)
    const int64_t Bn = x0.size(0), M = call.g.size(1);
    Tensor Dc = cplx::div(cplx::one(call.g), sub(unsqueeze(call.g, 1), unsqueeze(m.Lambda, 2)));
    Tensor v_rows = reshape(permute(vs, {2, 0, 1, 3, 4}), {d_model, 2 * Bn, state_size, 2});
    Tensor rs = permute(reshape(cplx::matmul(v_rows, Dc), {d_model, 2, Bn, M, 2}),
                        {1, 2, 0, 3, 4});  // [2, B, H, M, 2]
    y = add(y, call.coefficients(select(rs, 0, 0), select(rs, 0, 1)));
  }
  {
    std::optional<NoGradGuard> values_only;  // the state's graph, unless the caller wants it
    if (!state_grad_enabled()) values_only.emplace();
    // x_L = A^^L x0 + sum_j A^^(L-1-j) B^ u_j: Krylov columns A^^(L-1-j) B^ by doubling
    Tensor krylov = unsqueeze(call.d.B_bar, -2);  // [H, N, 1, 2]: power 0
    for (size_t k = 0; krylov.size(2) < L; ++k)   // [A^^2^k K, K]: powers 2^(k+1)-1 .. 0
      krylov = cat({cplx::matmul(call.sq[k], krylov), krylov}, 2);
    krylov = slice(krylov, 2, krylov.size(2) - L, krylov.size(2));  // powers L-1 .. 0
    Tensor driven = cplx::apply_to_real(krylov, u);                  // [B, H, N, 2]
    state_set(state, "x", from_zero ? driven : add(matvec(call.A_L, x0), driven));
  }
  return note_output(gelu_linear_glu(transpose(y, 1, 2), *output_linear));
}

Tensor S4::step(const Tensor& x_t, State& state) {
  check_token_input(x_t, d_model, kLayer);
  const Tensor& x0 = checked_state(state, x_t.size(0));
  Modes m = full_modes();
  Discrete d = discretise(m);
  // x = A^ x + B^ u (dense N x N) ;  y = Re C x + D u
  Tensor x_new = add(matvec(d.A_bar, x0), mul(d.B_bar, reshape(x_t, {x_t.size(0), d_model, 1, 1})));
  Tensor y = add(sum(cplx::real(cplx::mul(m.C, x_new)), {-1}), mul(x_t, D));
  state_set(state, "x", x_new);
  return note_output(gelu_linear_glu(y, *output_linear));
}

}  // namespace engram::nn::ssm
