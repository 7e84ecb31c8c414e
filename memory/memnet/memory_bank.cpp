// memory/memnet/memory_bank.cpp — see memory_bank.h.
#include "memory/memnet/memory_bank.h"

#include <cmath>
#include <map>
#include <tuple>

#include "autograd/ops.h"
#include "autograd/tape.h"

namespace engram::memnet {

namespace {

constexpr double kCosineDelta = 1e-3;
// beta = 1 + softplus(w . h + b) starts near 10: cosine scores lie in [-1, 1], and with beta ~ 1.7
// (b = 0) every read was a near-uniform blur whose gradient could not tell slots apart
constexpr double kStrengthBias = 9.0;

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// a / sqrt(|a|^2 + delta) along the last dim: cos~'s normalisation (bounded gradient at 0).
Tensor soft_normalize(const Tensor& a) {
  return mul(a, rsqrt(add(sum(square(a), {-1}, true), kCosineDelta)));
}

// I_n, built once per (n, dtype, device): every read and every link update needs it.
const Tensor& identity(int64_t n, DType dtype, Device device) {
  static std::map<std::tuple<int64_t, int, int>, Tensor> cache;
  Tensor& t = cache[{n, int(dtype), int(device)}];
  if (!t.defined()) {
    std::vector<double> v(size_t(n * n), 0.0);
    for (int64_t i = 0; i < n; ++i) v[size_t(i * n + i)] = 1.0;
    t = raw::to_device(from_vector(v, {n, n}, dtype), device);
  }
  return t;
}

}  // namespace

void validate(const MemoryBankConfig& c) {
  ENGRAM_CHECK(c.d_model >= 1 && c.slots >= 1 && c.width >= 1, "memnet: d_model, slots and width "
               "must be >= 1, got {}, {}, {}", c.d_model, c.slots, c.width);
  ENGRAM_CHECK(c.read_heads >= 1 && c.write_heads >= 1, "memnet: read_heads and write_heads must be "
               ">= 1, got {} and {}", c.read_heads, c.write_heads);
  ENGRAM_CHECK(c.top_k >= 1, "memnet: top_k must be >= 1, got {}", c.top_k);
  ENGRAM_CHECK(c.bottleneck >= 1, "memnet: bottleneck must be >= 1, got {}", c.bottleneck);
  ENGRAM_CHECK(c.spread_init >= 0 && c.spread_init < 1, "memnet: spread must be in [0, 1), got {}",
               c.spread_init);
  ENGRAM_CHECK(c.stdp_rate >= 0 && c.stdp_rate <= 1, "memnet: stdp_rate must be in [0, 1], got {}",
               c.stdp_rate);
  ENGRAM_CHECK(c.link_decay >= 0 && c.link_decay <= 1, "memnet: link_decay must be in [0, 1], got {}",
               c.link_decay);
  ENGRAM_CHECK(c.usage_decay >= 0 && c.usage_decay <= 1, "memnet: usage_decay must be in [0, 1], "
               "got {}", c.usage_decay);
  ENGRAM_CHECK(c.alloc_temperature >= 0, "memnet: alloc_temperature must be >= 0, got {}",
               c.alloc_temperature);
}

MemoryBankState initial_bank_state(const MemoryBankConfig& c, int64_t B, DType dtype, Device device) {
  MemoryBankState s;
  s.slots = zeros({B, c.slots, c.width}, dtype, device);
  s.links = zeros({B, c.slots, c.slots}, dtype, device);
  s.usage = zeros({B, c.slots}, dtype, device);
  s.writes = zeros({B, c.slots}, dtype, device);
  s.age = zeros({B, c.slots}, dtype, device);
  s.activity = zeros({B, c.slots}, dtype, device);
  return s;
}

Tensor random_read_distributions(uint64_t seed, int64_t B, int64_t T, int64_t R, int64_t N,
                                 int64_t position, DType dtype, Device device) {
  std::vector<double> p(size_t(B * T * R * N));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t r = 0; r < R; ++r) {
        double* row = p.data() + ((b * T + t) * R + r) * N;
        const uint64_t key = splitmix64(seed ^ splitmix64(uint64_t(position + t) * 0x100000001b3ull +
                                                          uint64_t(b) * 0x9e37ull + uint64_t(r)));
        double total = 0;
        for (int64_t i = 0; i < N; ++i) {
          // u in (0, 1]: the top 53 bits, shifted by one ulp so log never sees 0
          const double u = (double(splitmix64(key + uint64_t(i)) >> 11) + 1.0) * 0x1.0p-53;
          total += row[i] = -std::log(u);
        }
        for (int64_t i = 0; i < N; ++i) row[i] /= total;
      }
  return raw::to_device(from_vector(p, {B, T * R, N}, dtype), device);
}

MultiHeadMemoryBank::MultiHeadMemoryBank(const MemoryBankConfig& c, Generator* gen) : cfg(c) {
  validate(c);
  const int64_t E = c.d_model, R = c.read_heads, W = c.write_heads, d = c.width;
  // the write heads share their projections and differ by what they pool (write_pool's rows)
  read_query = register_module("read_query", std::make_shared<nn::Linear>(E, R * d, true, gen));
  read_strength = register_module("read_strength", std::make_shared<nn::Linear>(E, R, true, gen));
  raw::copy_(read_strength->bias, full({R}, kStrengthBias));
  if (c.policies() > 1) {
    policy_gate = register_module("policy_gate", std::make_shared<nn::Linear>(E, R * c.policies(), true, gen));
    // start by reading mostly by content: pi ~ (0.8, 0.2 / (P - 1), ...), exploration a minority
    std::vector<double> b(size_t(R * c.policies()), 0.0);
    for (int64_t r = 0; r < R; ++r) b[size_t(r * c.policies())] = std::log(0.8 / (0.2 / double(c.policies() - 1)));
    raw::copy_(policy_gate->bias, from_vector(b, {R * c.policies()}, DType::f32));
  }
  write_pool = register_module("write_pool", std::make_shared<nn::Linear>(E, W, false, gen));
  write_key = register_module("write_key", std::make_shared<nn::Linear>(E, d, true, gen));
  write_strength = register_module("write_strength", std::make_shared<nn::Linear>(E, 1, true, gen));
  raw::copy_(write_strength->bias, full({1}, kStrengthBias));
  write_gates = register_module("write_gates", std::make_shared<nn::Linear>(E, 2, true, gen));
  // a fresh bank writes (g ~ 0.88) into the slot allocation picks (g_a ~ 0.88): a ring-like store
  // to start from, which content addressing then learns to refine
  raw::copy_(write_gates->bias, full({2}, 2.0));
  erase = register_module("erase", std::make_shared<nn::Linear>(E, d, true, gen));
  raw::copy_(erase->bias, full({d}, 3.0));  // e ~ 0.95: an allocated slot is overwritten, not blended
  bottleneck_down = register_module("bottleneck_down", std::make_shared<nn::Linear>(E, c.bottleneck, true, gen));
  bottleneck_up = register_module("bottleneck_up", std::make_shared<nn::Linear>(c.bottleneck, d, true, gen));
  const double a = c.spread_init;
  Tensor logit = full({1}, a <= 0 ? -30.0 : std::log(a / (1 - a)));
  spread_logit = c.spread_learned && c.graph ? register_parameter("spread_logit", logit)
                                             : register_buffer("spread_logit", logit);
}

std::string MultiHeadMemoryBank::extra_repr() const {
  return fmt::format("slots={}, width={}, read_heads={}, write_heads={}, top_k={}, policies={}, "
                     "graph={}", cfg.slots, cfg.width, cfg.read_heads, cfg.write_heads, cfg.top_k,
                     cfg.policies(), cfg.graph);
}

double MultiHeadMemoryBank::spread() const {
  return cfg.graph ? 1.0 / (1.0 + std::exp(-to_dtype(spread_logit, DType::f64).item())) : 0.0;
}

// q [B, K, d], slots [B, N, d], beta [B, K, 1] -> scores [B, K, N]
Tensor MultiHeadMemoryBank::scores(const Tensor& q, const Tensor& slots, const Tensor& beta) const {
  if (cfg.address == Address::dot)
    return mul(matmul(q, transpose(slots, 1, 2)), mul(beta, 1.0 / std::sqrt(double(cfg.width))));
  return mul(matmul(soft_normalize(q), transpose(soft_normalize(slots), 1, 2)), beta);
}

BankRead MultiHeadMemoryBank::read(const Tensor& h, const MemoryBankState& st, int64_t position) {
  const int64_t B = h.size(0), S = h.size(1), R = cfg.read_heads, N = cfg.slots, d = cfg.width;
  Tensor q = reshape(read_query->forward(h), {B, S * R, d});
  Tensor beta = add(softplus(reshape(read_strength->forward(h), {B, S * R, 1})), 1.0);
  Tensor z = scores(q, st.slots, beta);  // [B, SR, N]
  Tensor top = softmax(z, -1);
  if (cfg.top_k < N) {
    Tensor outside;
    {
      NoGradGuard ng;
      Tensor idx = topk(z, cfg.top_k, -1).indices;
      Tensor keep = scatter_add(zeros(z.shape(), z.dtype(), z.device()), -1, idx,
                                ones(idx.shape(), z.dtype(), z.device()));
      outside = eq(keep, zeros({1}, z.dtype(), z.device()));
    }
    top = softmax(masked_fill(z, outside, -INFINITY), -1);
  }
  Tensor w = top, pi;
  if (cfg.policies() > 1) {
    std::vector<Tensor> dists{top};
    if (cfg.policy_uniform) {
      NoGradGuard ng;
      Tensor written = to_dtype(ge(st.writes, full({1}, 0.5, z.dtype(), z.device())), z.dtype());  // [B, N]
      Tensor count = sum(written, {-1}, true);
      Tensor none = to_dtype(eq(count, zeros({1}, z.dtype(), z.device())), z.dtype());
      Tensor uniform = div(add(written, none), add(count, mul(none, double(N))));
      dists.push_back(expand(unsqueeze(uniform, 1), {B, S * R, N}));
    }
    if (cfg.policy_random)
      dists.push_back(random_read_distributions(cfg.seed, B, S, R, N, position, z.dtype(), z.device()));
    pi = softmax(reshape(policy_gate->forward(h), {B, S * R, cfg.policies()}), -1);
    w = mul(unsqueeze(select(pi, 2, 0), 2), dists[0]);
    for (size_t p = 1; p < dists.size(); ++p)
      w = add(w, mul(unsqueeze(select(pi, 2, int64_t(p)), 2), dists[p]));
    pi = reshape(pi, {B, S, R, cfg.policies()});
  }
  if (cfg.graph) {
    Tensor rowsum = sum(st.links, {-1}, true);  // [B, N, 1]
    Tensor keep = sub(ones({1}, z.dtype(), z.device()), clamp(rowsum, 0.0, 1.0));
    Tensor stochastic = add(div(st.links, clamp(rowsum, 1.0, INFINITY)),
                            mul(keep, identity(N, z.dtype(), z.device())));
    Tensor a = sigmoid(spread_logit);
    w = add(w, mul(a, sub(matmul(w, stochastic), w)));
  }
  BankRead out;
  out.content = reshape(top, {B, S, R, N});
  out.reads = reshape(matmul(w, st.slots), {B, S, R * d});
  out.weights = reshape(w, {B, S, R, N});
  out.policy = pi;
  return out;
}

// softmax(-u / tau), or for tau = 0 its limit: all weight on the least-used slot (the first of
// equals), a choice without gradient, as DNC's sorted free list is.
Tensor MultiHeadMemoryBank::allocation(const Tensor& usage) const {
  if (cfg.alloc_temperature > 0) return softmax(mul(usage, -1.0 / cfg.alloc_temperature), -1);
  NoGradGuard ng;
  Tensor idx = unsqueeze(argmin(usage, -1), 1);  // [B, 1]
  return scatter_add(zeros(usage.shape(), usage.dtype(), usage.device()), 1, idx,
                     ones({usage.size(0), 1}, usage.dtype(), usage.device()));
}

BankWrite MultiHeadMemoryBank::write(const Tensor& h_seg, MemoryBankState& st) {
  const int64_t B = h_seg.size(0), S = h_seg.size(1), W = cfg.write_heads,
                d = cfg.width;
  const DType dt = h_seg.dtype();
  const Device dev = h_seg.device();
  Tensor attn = softmax(write_pool->forward(h_seg), 1);       // [B, S, W] over the segment
  Tensor p = matmul(transpose(attn, 1, 2), h_seg);            // [B, W, E]
  Tensor keys = reshape(write_key->forward(p), {B, W, d});
  Tensor beta = add(softplus(squeeze(write_strength->forward(p), 2)), 1.0);  // [B, W]
  Tensor gates = sigmoid(reshape(write_gates->forward(p), {B, W, 2}));
  Tensor erase_v = sigmoid(reshape(erase->forward(p), {B, W, d}));
  Tensor values = bottleneck_up->forward(tanh(reshape(bottleneck_down->forward(p), {B, W, cfg.bottleneck})));
  st.usage = mul(st.usage, cfg.usage_decay);
  std::vector<Tensor> head_weights;
  for (int64_t w = 0; w < W; ++w) {
    Tensor k = unsqueeze(select(keys, 1, w), 1);                       // [B, 1, d]
    Tensor c = squeeze(softmax(scores(k, st.slots, reshape(select(beta, 1, w), {B, 1, 1})), -1), 1);
    Tensor alloc = allocation(st.usage);  // [B, N]
    Tensor g = unsqueeze(select(select(gates, 1, w), 1, 0), 1), ga = unsqueeze(select(select(gates, 1, w), 1, 1), 1);
    Tensor ww = mul(g, add(c, mul(ga, sub(alloc, c))));                 // [B, N]
    Tensor ww_col = unsqueeze(ww, 2);                                   // [B, N, 1]
    Tensor e = unsqueeze(select(erase_v, 1, w), 1), v = unsqueeze(select(values, 1, w), 1);  // [B, 1, d]
    st.slots = add(mul(st.slots, sub(ones({1}, dt, dev), mul(ww_col, e))), mul(ww_col, v));
    st.usage = add(st.usage, mul(sub(ones({1}, dt, dev), st.usage), ww));
    {
      NoGradGuard ng;
      Tensor wd = detach(ww);
      st.writes = add(st.writes, wd);
      st.age = mul(st.age, sub(ones({1}, dt, dev), wd));
    }
    head_weights.push_back(ww);
  }
  {
    NoGradGuard ng;
    st.age = add(st.age, double(S));
  }
  BankWrite out;
  out.weights = stack(head_weights, 1);                                  // [B, W, N]
  out.readback = reshape(matmul(out.weights, st.slots), {B, W * d});
  return out;
}

void MultiHeadMemoryBank::link(MemoryBankState& st, const Tensor& mean_reads,
                               const Tensor& mean_writes) const {
  if (!cfg.graph) return;
  const int64_t N = cfg.slots;
  Tensor act = add(mean_reads, mean_writes);                                      // [B, N]
  const Device dev = act.device();
  Tensor post = div(act, clamp(max(act, 1, true), 1e-30, INFINITY));
  Tensor hebb = matmul(unsqueeze(st.activity, 2), unsqueeze(post, 1));            // pre_i post_j
  Tensor links = add(mul(st.links, cfg.link_decay),
                     mul(mul(hebb, sub(ones({1}, act.dtype(), dev), st.links)), cfg.stdp_rate));
  st.links = mul(links, sub(ones({1}, act.dtype(), dev), identity(N, act.dtype(), dev)));
  st.activity = post;
}

}  // namespace engram::memnet
