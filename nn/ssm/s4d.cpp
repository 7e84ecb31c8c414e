// nn/ssm/s4d.cpp — S4D (see s4d.h for the equations), the complex helpers, the FFT causal
// convolution and the GELU -> Linear -> GLU output transform shared with S4.
#include "nn/ssm/s4d.h"

#include <cmath>
#include <numbers>
#include <optional>

#include "nn/init.h"

namespace engram::nn::ssm {

namespace {
constexpr const char* kLayer = "S4D";
}

// ---------------------------------------------------------------- complex helpers
namespace cplx {

// Inside this namespace mul/div/exp/matmul name the complex versions, so the real ops are
// spelled engram::.
Tensor make(const Tensor& re, const Tensor& im) { return stack({re, im}, -1); }
Tensor real(const Tensor& z) { return select(z, -1, 0); }
Tensor imag(const Tensor& z) { return select(z, -1, 1); }
Tensor conj(const Tensor& z) { return make(real(z), neg(imag(z))); }

// (ar + i ai)(br + i bi) = (ar br - ai bi) + i (ar bi + ai br): the fused complex_mul op
Tensor mul(const Tensor& a, const Tensor& b) { return engram::complex_mul(a, b); }

// a / b = a conj(b) / |b|^2
Tensor div(const Tensor& a, const Tensor& b) {
  Tensor norm2 = engram::add(square(real(b)), square(imag(b)));
  return engram::div(cplx::mul(a, conj(b)), unsqueeze(norm2, -1));
}

Tensor exp(const Tensor& z) {
  Tensor r = engram::exp(real(z)), th = imag(z);
  return make(engram::mul(r, engram::cos(th)), engram::mul(r, engram::sin(th)));
}

Tensor matmul(const Tensor& a, const Tensor& b) { return engram::complex_matmul(a, b); }

// Re sum_n a_n V_nl = sum_n (Re a_n Re V_nl - Im a_n Im V_nl). V [.., N, L, 2] is read in place as
// the real matrix [.., N, 2L] (each l's re, im side by side: a view, also of a slice along L), and
// the rows [Re a; Im a] [.., 2, N] times it give, for every l, (Re a Re V, Re a Im V) and
// (Im a Re V, Im a Im V); the answer is the first of row 0 minus the second of row 1. Twice the
// multiply-adds of the four real products it replaces, but V is never copied, forward or back.
// With a batch in front of a ([B, H, N, 2] against V [H, N, L, 2]) the rows of the whole batch
// go through one [2B, N] x [N, 2L] product per channel.
Tensor real_contract(const Tensor& a, const Tensor& V) {
  const int64_t N = V.size(-3), L = V.size(-2);
  Shape ws(V.shape().begin(), V.shape().end() - 1);
  ws.back() = 2 * L;
  Tensor W = reshape(V, ws);  // [.., N, 2L]
  auto combine = [](const Tensor& R, int64_t row_dim) {  // R [.., 2 (row), .., L, 2]
    return engram::sub(select(select(R, row_dim, 0), -1, 0), select(select(R, row_dim, 1), -1, 1));
  };
  if (a.dim() == 4 && V.dim() == 4) {
    const int64_t B = a.size(0), H = a.size(1);
    Tensor rows = reshape(permute(a, {1, 0, 3, 2}), {H, 2 * B, N});  // a copy of a, not of V
    Tensor R = reshape(engram::matmul(rows, W), {H, B, 2, L, 2});
    return permute(combine(R, 2), {1, 0, 2});  // [B, H, L]
  }
  Shape rs(a.shape().begin(), a.shape().end() - 1);  // [.., N] -> [.., 2, L, 2]
  rs.back() = 2;
  rs.push_back(L);
  rs.push_back(2);
  Tensor R = reshape(engram::matmul(transpose(a, -1, -2), W), rs);
  return combine(R, -3);
}

// M v per channel for a batch of complex vectors: M [H, N, K, 2], v [B, H, K, 2] -> [B, H, N, 2],
// as one complex [N, K] x [K, B] product per channel (v's batch moved behind K: a copy of v, never
// of M).
Tensor batched_matvec(const Tensor& M, const Tensor& v) {
  return permute(engram::complex_matmul(M, permute(v, {1, 2, 0, 3})), {2, 0, 1, 3});
}

// sum_l V[h, n, l] u[b, h, l] -> [B, H, N, 2]: V [H, N, L, 2] complex, u [B, H, L] real, as one
// complex [N, L] x [L, B] product per channel with u as complex (imaginary part 0): u is moved
// and widened (small), V is read in place when its matrices are dense (not a slice along L).
Tensor apply_to_real(const Tensor& V, const Tensor& u) {
  Tensor u_lb = permute(u, {1, 2, 0});  // [H, L, B]
  Tensor U = make(u_lb, zeros_like(u_lb));
  return permute(engram::complex_matmul(V, U), {2, 0, 1, 3});
}

Tensor one(const Tensor& like) {
  return raw::to_device(from_vector(std::vector<double>{1.0, 0.0}, {2}, like.dtype()),
                        like.device());
}

}  // namespace cplx

// ---------------------------------------------------------------- shared pieces
Tensor causal_fft_conv(const Tensor& u, const Tensor& k) {
  ENGRAM_CHECK(u.dim() >= 2 && k.dim() == 2 && u.size(-1) == k.size(1) && u.size(-2) == k.size(0),
               "causal_fft_conv: expected u [.., H, L] and k [H, L], got u {} and k {}",
               shape_str(u.shape()), shape_str(k.shape()));
  const int64_t L = u.size(-1), d = u.dim() - 1;
  // zero-padding both to 2L: the circular convolution of length 2L has no wrap-around below L
  Tensor u_f = rfft(cat({u, zeros_like(u)}, d));           // [.., H, L+1, 2]
  Tensor k_f = rfft(cat({k, zeros_like(k)}, 1));           // [H, L+1, 2]
  Tensor y = irfft(cplx::mul(u_f, k_f), 2 * L);            // [.., H, 2L]
  return slice(y, d, 0, L);
}

Tensor gelu_linear_glu(const Tensor& y, Linear& output_linear) {
  const int64_t H = y.size(-1);
  Tensor z = output_linear.forward(gelu(y));  // [.., 2H]
  return mul(slice(z, -1, 0, H), sigmoid(slice(z, -1, H, 2 * H)));
}

// ---------------------------------------------------------------- S4D
S4D::S4D(int64_t H, int64_t N, S4DInit init_kind, Generator* gen)
    : d_model(H),
      state_size(N),
      modes(N / 2),
      init(init_kind),
      log_dt(register_parameter("log_dt", empty({H}))),
      C(register_parameter("C", empty({H, N / 2, 2}))),
      log_A_real(register_parameter("log_A_real", empty({H, N / 2}))),
      A_imag(register_parameter("A_imag", empty({H, N / 2}))),
      D(register_parameter("D", empty({H}))) {
  ENGRAM_CHECK(H > 0, "{}: d_model must be positive, got {}", kLayer, H);
  ENGRAM_CHECK(N >= 2 && N % 2 == 0,
               "{}: state_size N must be even and >= 2 (N/2 complex modes and their conjugates), "
               "got {}", kLayer, N);
  init::uniform_(log_dt, std::log(1e-3), std::log(1e-1), gen);
  init::normal_(C, 0.0, std::sqrt(0.5), gen);  // torch.randn(cfloat): re, im each N(0, 1/2)
  init::constant_(log_A_real, std::log(0.5));
  std::vector<double> imag(H * modes);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t n = 0; n < modes; ++n)
      imag[h * modes + n] = init == S4DInit::lin
                                ? std::numbers::pi * n
                                : double(N) / std::numbers::pi * (double(N) / (2 * n + 1) - 1);
  raw::copy_(A_imag, from_vector(imag, {H, modes}, A_imag.dtype()));
  init::normal_(D, 0.0, 1.0, gen);
  output_linear = register_module("output_linear", std::make_shared<Linear>(H, 2 * H, true, gen));
}

std::string S4D::extra_repr() const {
  return fmt::format("d_model={}, state_size={}, init={}", d_model, state_size,
                     init == S4DInit::lin ? "lin" : "inv");
}

State modal_initial_state(int64_t batch, int64_t H, int64_t modes, const Tensor& like,
                          const char* layer) {
  ENGRAM_CHECK(batch > 0, "{}: batch must be positive, got {}", layer, batch);
  State s;
  state_set(s, "x", zeros({batch, H, modes, 2}, like.dtype(), like.device()));
  return s;
}

const Tensor& checked_modal_state(const State& state, int64_t batch, int64_t H, int64_t modes,
                                  const Tensor& like, const char* layer) {
  const Tensor& x = state_get(state, "x", layer);
  Shape want{batch, H, modes, 2};
  ENGRAM_CHECK(x.shape() == want, "{}: state x must be {} for a batch of {}, got {}", layer,
               shape_str(want), batch, shape_str(x.shape()));
  ENGRAM_CHECK(x.dtype() == like.dtype(), "{}: state x is {}, the parameters are {}", layer,
               dtype_name(x.dtype()), dtype_name(like.dtype()));
  return x;
}

bool is_zero_state(const Tensor& x0) {
  // a sum of absolute values is 0 only when every one is (a NaN makes it NaN, not 0)
  return !x0.requires_grad() && engram::sum(engram::abs(x0)).item() == 0.0;
}

void check_sequence_input(const Tensor& x, int64_t H, const char* layer) {
  ENGRAM_CHECK(x.dim() == 3 && x.size(0) > 0 && x.size(1) > 0 && x.size(2) == H,
               "{}: expected input [B, T, {}] with B, T > 0, got {}", layer, H, shape_str(x.shape()));
}

void check_token_input(const Tensor& x_t, int64_t H, const char* layer) {
  ENGRAM_CHECK(x_t.dim() == 2 && x_t.size(0) > 0 && x_t.size(1) == H,
               "{}: step expects one token [B, {}] with B > 0, got {}", layer, H,
               shape_str(x_t.shape()));
}

State S4D::initial_state(int64_t batch) const {
  return modal_initial_state(batch, d_model, modes, log_dt, kLayer);
}

const Tensor& S4D::checked_state(const State& state, int64_t batch) const {
  return checked_modal_state(state, batch, d_model, modes, log_dt, kLayer);
}

S4D::Discrete S4D::discretise() const {
  Tensor dt = exp(log_dt);                                    // [H]
  Tensor A = cplx::make(neg(exp(log_A_real)), A_imag);        // [H, N/2, 2]
  Tensor dtA = mul(A, reshape(dt, {d_model, 1, 1}));
  Tensor A_bar = cplx::exp(dtA);
  Tensor B_bar = cplx::div(sub(A_bar, cplx::one(A_bar)), A);  // (exp(dt A) - 1) / A
  return {dtA, A_bar, B_bar};
}

Tensor S4D::kernel(int64_t L) const {
  ENGRAM_CHECK(L > 0, "{}: kernel length must be positive, got {}", kLayer, L);
  Discrete d = discretise();
  Tensor V = vandermonde(d.dtA, L);                                // A^^l, l = 0..L-1
  return mul(cplx::real_contract(cplx::mul(C, d.B_bar), V), 2.0);  // [H, L]
}

Tensor S4D::forward(const Tensor& x, State& state) {
  check_sequence_input(x, d_model, kLayer);
  const int64_t L = x.size(1);
  const Tensor& x0 = checked_state(state, x.size(0));
  Tensor u = transpose(x, 1, 2);  // [B, H, L]
  Discrete d = discretise();
  // powers 0..L: 0..L-1 for the kernel, 1..L for the carried state's outputs, L for A^^L
  Tensor V = vandermonde(d.dtA, L + 1);                    // [H, N/2, L+1, 2]
  Tensor K = mul(cplx::real_contract(cplx::mul(C, d.B_bar), slice(V, 2, 0, L)), 2.0);  // [H, L]
  Tensor y = add(causal_fft_conv(u, K), mul(u, unsqueeze(D, -1)));
  // the carried state: y_l += 2 Re sum_n C_n A^_n^(l+1) x0_n (exactly 0 from a zero state)
  const bool from_zero = is_zero_state(x0);
  if (!from_zero)
    y = add(y, mul(cplx::real_contract(cplx::mul(C, x0), slice(V, 2, 1, L + 1)), 2.0));
  // x_L = A^^L x0 + B^ sum_j A^^(L-1-j) u_j = A^^L x0 + B^ sum_l A^^l u_(L-1-l): the powers
  // 0..L-1 already in V, against u reversed in time (an index, not a second Vandermonde). All L+1
  // powers go in (V read in place), against u_rev with a zero appended for the power L:
  // u_pad = [0, u_0 .. u_(L-1)] and index L - l picks u_(L-1-l) for l < L and the 0 for l = L.
  Tensor x_L;
  {
    std::optional<NoGradGuard> values_only;  // the state's graph, unless the caller wants it
    if (!state_grad_enabled()) values_only.emplace();
    std::vector<int64_t> reversed(L + 1);
    for (int64_t l = 0; l <= L; ++l) reversed[l] = L - l;
    Tensor u_pad = cat({zeros({u.size(0), d_model, 1}, u.dtype(), u.device()), u}, 2);
    Tensor u_rev = index_select(u_pad, 2, raw::to_device(from_vector(reversed, {L + 1}), u.device()));
    Tensor driven = cplx::apply_to_real(V, u_rev);  // [B, H, N/2, 2]
    x_L = cplx::mul(d.B_bar, driven);
    if (!from_zero) x_L = add(cplx::mul(select(V, 2, L), x0), x_L);
  }
  state_set(state, "x", x_L);
  return note_output(gelu_linear_glu(transpose(y, 1, 2), *output_linear));
}

Tensor S4D::step(const Tensor& x_t, State& state) {
  check_token_input(x_t, d_model, kLayer);
  const Tensor& x0 = checked_state(state, x_t.size(0));
  Discrete d = discretise();
  // x = A^ x + B^ u ;  y = 2 Re sum_n C_n x_n + D u
  Tensor u = reshape(x_t, {x_t.size(0), d_model, 1, 1});
  Tensor x_new = add(cplx::mul(d.A_bar, x0), mul(d.B_bar, u));
  Tensor y = add(mul(sum(cplx::real(cplx::mul(C, x_new)), {-1}), 2.0), mul(x_t, D));
  state_set(state, "x", x_new);
  return note_output(gelu_linear_glu(y, *output_linear));
}

}  // namespace engram::nn::ssm
