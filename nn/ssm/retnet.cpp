// nn/ssm/retnet.cpp — RetNet's multi-scale retention; the equations are in retnet.h.
#include "nn/ssm/retnet.h"

#include <cmath>

#include "nn/init.h"

namespace engram::nn::ssm {

namespace {

constexpr const char* kLayer = "MultiScaleRetention";

const char* form_name(RetentionForm f) {
  switch (f) {
    case RetentionForm::parallel: return "parallel";
    case RetentionForm::chunkwise: return "chunkwise";
    case RetentionForm::recurrent: return "recurrent";
  }
  return "?";
}

// A constant table (decay masks, phases) in the dtype and on the device of `like`.
Tensor constant_like(const std::vector<double>& values, const Shape& shape, const Tensor& like) {
  return raw::to_device(from_vector(values, shape, like.dtype()), like.device());
}

}  // namespace

MultiScaleRetention::MultiScaleRetention(int64_t d, int64_t h, int64_t vf, Generator* gen)
    : d_model(d), heads(h), value_factor(vf) {
  ENGRAM_CHECK(d > 0 && h > 0 && vf > 0, "{}: d_model {}, heads {} and value_factor {} must be "
               "positive", kLayer, d, h, vf);
  ENGRAM_CHECK(d % h == 0, "{}: d_model {} is not a multiple of heads {}", kLayer, d, h);
  key_dim = d / h;
  head_dim = vf * d / h;
  ENGRAM_CHECK(key_dim % 2 == 0, "{}: the key dim per head d_model / heads = {} must be even (the "
               "rotary phase turns pairs of channels)", kLayer, key_dim);
  const int64_t value_dim = vf * d;
  q_proj = register_module("q_proj", std::make_shared<Linear>(d, d, false, gen));
  k_proj = register_module("k_proj", std::make_shared<Linear>(d, d, false, gen));
  v_proj = register_module("v_proj", std::make_shared<Linear>(d, value_dim, false, gen));
  g_proj = register_module("g_proj", std::make_shared<Linear>(d, value_dim, false, gen));
  out_proj = register_module("out_proj", std::make_shared<Linear>(value_dim, d, false, gen));
  // torchscale's reset_parameters: small projections in, a larger one out.
  for (auto& p : {q_proj, k_proj, v_proj, g_proj})
    init::xavier_uniform_(p->weight, std::pow(2.0, -2.5), gen);
  init::xavier_uniform_(out_proj->weight, 0.5, gen);
  // RetNetRelPos: angle = 1 / 10000^linspace(0, 1, dk/2), each used by one pair of channels.
  const int64_t pairs = key_dim / 2;
  for (int64_t i = 0; i < pairs; ++i)
    angle_.push_back(1.0 / std::pow(10000.0, pairs == 1 ? 0.0 : double(i) / double(pairs - 1)));
}

double MultiScaleRetention::gamma(int64_t head) const {
  ENGRAM_CHECK(head >= 0 && head < heads, "{}: head {} out of range [0, {})", kLayer, head, heads);
  return 1.0 - std::pow(2.0, -5.0 - double(head));
}

void MultiScaleRetention::set_form(RetentionForm form, int64_t chunk_size) {
  ENGRAM_CHECK(chunk_size > 0, "{}: chunk_size must be positive, got {}", kLayer, chunk_size);
  form_ = form;
  chunk_size_ = chunk_size;
}

std::string MultiScaleRetention::extra_repr() const {
  std::string form = form_name(form_);
  if (form_ == RetentionForm::chunkwise) form += fmt::format("({})", chunk_size_);
  return fmt::format("d_model={}, heads={}, key_dim={}, head_dim={}, form={}", d_model, heads,
                     key_dim, head_dim, form);
}

State MultiScaleRetention::initial_state(int64_t batch) const {
  ENGRAM_CHECK(batch > 0, "{}: batch must be positive, got {}", kLayer, batch);
  const Tensor& w = q_proj->weight;
  return {{"S", zeros({batch, heads, key_dim, head_dim}, w.dtype(), w.device())},
          {"pos", raw::to_device(from_vector<int64_t>({0}, {1}), w.device())}};
}

std::pair<Tensor, int64_t> MultiScaleRetention::read_state(const State& state,
                                                           int64_t batch) const {
  const Tensor& s = state_get(state, "S", kLayer);
  const Shape want{batch, heads, key_dim, head_dim};
  ENGRAM_CHECK(s.shape() == want, "{}: state S must be {} for a batch of {}, got {}", kLayer,
               shape_str(want), batch, shape_str(s.shape()));
  ENGRAM_CHECK(s.dtype() == q_proj->weight.dtype(), "{}: state S is {}, the parameters are {}",
               kLayer, dtype_name(s.dtype()), dtype_name(q_proj->weight.dtype()));
  const Tensor& pos = state_get(state, "pos", kLayer);
  ENGRAM_CHECK(pos.dtype() == DType::i64 && pos.numel() == 1, "{}: state pos must be one i64, got "
               "{} {}", kLayer, dtype_name(pos.dtype()), shape_str(pos.shape()));
  const int64_t p = pos.to_vector<int64_t>()[0];
  ENGRAM_CHECK(p >= 0, "{}: state pos must be >= 0, got {}", kLayer, p);
  return {s, p};
}

MultiScaleRetention::Projected MultiScaleRetention::project(const Tensor& x, int64_t pos0) const {
  const int64_t B = x.size(0), T = x.size(1), H = heads, dk = key_dim, dv = head_dim;
  // The phase of token t is (pos0 + t) theta: cos and sin tables [T, 1, dk], shared by the heads.
  std::vector<double> c((size_t)(T * dk)), s((size_t)(T * dk));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < dk; ++i) {
      const double a = double(pos0 + t) * angle_[(size_t)(i / 2)];
      c[(size_t)(t * dk + i)] = std::cos(a), s[(size_t)(t * dk + i)] = std::sin(a);
    }
  const Tensor cos_t = constant_like(c, {T, 1, dk}, x), sin_t = constant_like(s, {T, 1, dk}, x);
  // theta_shift(u) = u cos + rotate_every_two(u) sin, rotate_every_two: (a, b) -> (-b, a).
  auto theta_shift = [&](const Tensor& u) {  // u [B, T, H, dk]
    Tensor pairs = reshape(u, {B, T, H, dk / 2, 2});
    Tensor rotated =
        reshape(stack({neg(select(pairs, 4, 1)), select(pairs, 4, 0)}, 4), {B, T, H, dk});
    return add(mul(u, cos_t), mul(rotated, sin_t));
  };
  auto heads_first = [](const Tensor& u) { return permute(u, {0, 2, 1, 3}); };  // [B, H, T, .]
  Projected p;
  p.q = heads_first(theta_shift(reshape(q_proj->forward(x), {B, T, H, dk})));
  p.k = heads_first(theta_shift(reshape(mul(k_proj->forward(x), 1.0 / std::sqrt(double(dk))),
                                        {B, T, H, dk})));
  p.v = heads_first(reshape(v_proj->forward(x), {B, T, H, dv}));
  p.g = g_proj->forward(x);
  return p;
}

std::pair<Tensor, Tensor> MultiScaleRetention::retain_block(const Tensor& q, const Tensor& k,
                                                            const Tensor& v,
                                                            const Tensor& s_prev) const {
  const int64_t L = q.size(2), H = heads;
  // D [H, L, L] = gamma^(n-m) on and below the diagonal; xi [H, L, 1] = gamma^(j+1) (how much of
  // the state before the block token j still sees); zeta [H, L, 1] = gamma^(L-1-j) (how much of
  // token j is left in the state after the block); gamma^L [H, 1, 1].
  std::vector<double> d((size_t)(H * L * L), 0.0), xi((size_t)(H * L)), zeta((size_t)(H * L)),
      gl((size_t)H);
  for (int64_t h = 0; h < H; ++h) {
    const double g = gamma(h);
    for (int64_t n = 0; n < L; ++n) {
      for (int64_t m = 0; m <= n; ++m)
        d[(size_t)((h * L + n) * L + m)] = std::pow(g, double(n - m));
      xi[(size_t)(h * L + n)] = std::pow(g, double(n + 1));
      zeta[(size_t)(h * L + n)] = std::pow(g, double(L - 1 - n));
    }
    gl[(size_t)h] = std::pow(g, double(L));
  }
  const Tensor kt = transpose(k, 2, 3);  // [B, H, dk, L]
  Tensor inner = matmul(mul(matmul(q, kt), constant_like(d, {H, L, L}, q)), v);
  Tensor cross = matmul(mul(q, constant_like(xi, {H, L, 1}, q)), s_prev);
  Tensor s_next = add(mul(s_prev, constant_like(gl, {H, 1, 1}, q)),
                      matmul(kt, mul(v, constant_like(zeta, {H, L, 1}, q))));
  return {add(inner, cross), s_next};
}

Tensor MultiScaleRetention::retain_token(const Tensor& q, const Tensor& k, const Tensor& v,
                                         Tensor& s) const {
  std::vector<double> g((size_t)heads);
  for (int64_t h = 0; h < heads; ++h) g[(size_t)h] = gamma(h);
  s = add(mul(s, constant_like(g, {heads, 1, 1}, q)), matmul(unsqueeze(k, 3), unsqueeze(v, 2)));
  return squeeze(matmul(unsqueeze(q, 2), s), 2);
}

Tensor MultiScaleRetention::finish(const Tensor& o, const Tensor& g) const {
  const int64_t B = o.size(0), T = o.size(2);
  Tensor y = rms_norm(o, Tensor(), norm_eps);  // the group norm: each head's o_n on its own
  y = reshape(permute(y, {0, 2, 1, 3}), {B, T, heads * head_dim});
  return out_proj->forward(mul(silu(g), y));
}

Tensor MultiScaleRetention::forward(const Tensor& x, State& state) {
  return forward(x, state, form_, chunk_size_);
}

Tensor MultiScaleRetention::forward(const Tensor& x, State& state, RetentionForm form,
                                    int64_t chunk_size) {
  ENGRAM_CHECK(x.dim() == 3 && x.size(2) == d_model && x.size(0) > 0 && x.size(1) > 0,
               "{}: expected x [B, T, {}] with B, T >= 1, got {}", kLayer, d_model,
               shape_str(x.shape()));
  ENGRAM_CHECK(form != RetentionForm::chunkwise || chunk_size > 0,
               "{}: chunk_size must be positive, got {}", kLayer, chunk_size);
  const int64_t T = x.size(1);
  auto [s, pos] = read_state(state, x.size(0));
  Projected p = project(x, pos);
  Tensor o;
  if (form == RetentionForm::parallel) {
    std::tie(o, s) = retain_block(p.q, p.k, p.v, s);
  } else if (form == RetentionForm::chunkwise) {
    std::vector<Tensor> blocks;
    for (int64_t t0 = 0; t0 < T; t0 += chunk_size) {
      const int64_t t1 = std::min(T, t0 + chunk_size);
      auto part = [&](const Tensor& u) { return slice(u, 2, t0, t1); };
      Tensor block;
      std::tie(block, s) = retain_block(part(p.q), part(p.k), part(p.v), s);
      blocks.push_back(block);
    }
    o = blocks.size() == 1 ? blocks[0] : cat(blocks, 2);
  } else {
    std::vector<Tensor> qs = unbind(p.q, 2), ks = unbind(p.k, 2), vs = unbind(p.v, 2), outs;
    for (size_t t = 0; t < qs.size(); ++t) outs.push_back(retain_token(qs[t], ks[t], vs[t], s));
    o = stack(outs, 2);
  }
  state_set(state, "S", s);
  state_set(state, "pos", raw::to_device(from_vector<int64_t>({pos + T}, {1}), x.device()));
  return note_output(finish(o, p.g));
}

Tensor MultiScaleRetention::step(const Tensor& x_t, State& state) {
  ENGRAM_CHECK(x_t.dim() == 2 && x_t.size(1) == d_model && x_t.size(0) > 0,
               "{}.step: expected x_t [B, {}], got {}", kLayer, d_model, shape_str(x_t.shape()));
  return squeeze(forward(unsqueeze(x_t, 1), state, RetentionForm::recurrent), 1);
}

}  // namespace engram::nn::ssm
