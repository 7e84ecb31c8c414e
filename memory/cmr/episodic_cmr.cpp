// memory/cmr/episodic_cmr.cpp — see episodic_cmr.h.
#include "memory/cmr/episodic_cmr.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "autograd/ops.h"
#include "autograd/raw_ops.h"
#include "autograd/tape.h"
#include "nn/init.h"

namespace engram::cmr {

// [B, T, H * dh] -> [B * H, T, dh]
Tensor rows_of_heads(const Tensor& x, int64_t heads) {
  const int64_t B = x.size(0), T = x.size(1), dh = x.size(2) / heads;
  return reshape(permute(reshape(x, {B, T, heads, dh}), {0, 2, 1, 3}), {B * heads, T, dh});
}

// [B * H, T, dh] -> [B, T, H * dh]
Tensor heads_to_width(const Tensor& x, int64_t batch) {
  const int64_t H = x.size(0) / batch, T = x.size(1), dh = x.size(2);
  return reshape(permute(reshape(x, {batch, H, T, dh}), {0, 2, 1, 3}), {batch, T, H * dh});
}

namespace {

// Indices built on the host, uploaded to the device of the tensor they index.
Tensor index_tensor(const std::vector<int64_t>& idx, Device device) {
  return raw::to_device(from_vector(idx, {int64_t(idx.size())}), device);
}

}  // namespace

void validate(const EpisodicCMRConfig& c) {
  ENGRAM_CHECK(c.d_model > 0 && c.heads > 0 && c.head_dim > 0, "episodic CMR: d_model {}, heads {} "
               "and head_dim {} must be positive", c.d_model, c.heads, c.head_dim);
  ENGRAM_CHECK(c.slots > 0, "episodic CMR: slots must be positive, got {}", c.slots);
  ENGRAM_CHECK(c.segment > 0, "episodic CMR: segment must be positive, got {}", c.segment);
  ENGRAM_CHECK(c.top_k >= 0, "episodic CMR: top_k must be >= 0 (0 = all), got {}", c.top_k);
  ENGRAM_CHECK(c.temperature > 0, "episodic CMR: temperature must be positive, got {}",
               c.temperature);
  ENGRAM_CHECK(c.beta_init > 0 && c.beta_init < 1, "episodic CMR: beta_init must be in (0, 1), "
               "got {}", c.beta_init);
  ENGRAM_CHECK(c.usage_decay >= 0 && c.usage_decay <= 1, "episodic CMR: usage_decay must be in "
               "[0, 1], got {}", c.usage_decay);
}

CMRBankState initial_bank_state(const EpisodicCMRConfig& c, int64_t B, DType dt, Device dev) {
  const int64_t R = B * c.heads, M = c.slots, dh = c.head_dim;
  CMRBankState s;
  // The start context is the first unit vector: a dedicated "start of sequence" state, as cymr
  // begins each list from its start unit.
  std::vector<double> c0(R * dh, 0.0);
  for (int64_t r = 0; r < R; ++r) c0[r * dh] = 1.0;
  s.context = raw::to_device(from_vector(c0, {R, dh}, dt), dev);
  s.keys = zeros({R, M, dh}, dt, dev);
  s.values = zeros({R, M, dh}, dt, dev);
  s.usage = zeros({R, M}, dt, dev);
  s.written_at = full({R, M}, -1.0, DType::f64, dev);
  s.segment_sum = zeros({R, dh}, dt, dev);
  s.position = zeros({1}, DType::f64, dev);
  return s;
}

// ---------------------------------------------------------------- CMRBank

CMRBank::CMRBank(const EpisodicCMRConfig& c, Generator* gen)
    : cfg(c), beta_logit(register_parameter("beta_logit", empty({c.heads}))) {
  validate(c);
  const int64_t W = c.heads * c.head_dim;
  context_in = register_module("context_in", std::make_shared<nn::Linear>(c.d_model, W, false, gen));
  features = register_module("features", std::make_shared<nn::Linear>(c.d_model, W, false, gen));
  nn::init::constant_(beta_logit, std::log(c.beta_init / (1 - c.beta_init)));
}

Tensor CMRBank::beta() const { return sigmoid(beta_logit); }

std::string CMRBank::extra_repr() const {
  return fmt::format("heads={}, head_dim={}, slots={}, segment={}, policy={}", cfg.heads,
                     cfg.head_dim, cfg.slots, cfg.segment,
                     cfg.policy == SlotPolicy::ring ? "ring" : "lowest_use");
}

BankWrites CMRBank::write(const Tensor& x, const CMRBankState& st) {
  ENGRAM_CHECK(x.dim() == 3 && x.size(2) == cfg.d_model, "CMRBank: expected x [B, T, {}], got {}",
               cfg.d_model, shape_str(x.shape()));
  const int64_t B = x.size(0), T = x.size(1), H = cfg.heads, R = B * H, S = cfg.segment;
  ENGRAM_CHECK(st.context.defined() && st.context.size(0) == R, "CMRBank: state has {} rows, the "
               "batch needs {} (B {} x heads {})", st.context.defined() ? st.context.size(0) : 0,
               R, B, H);
  BankWrites w;
  w.batch = B, w.steps = T, w.position = st.position.item();
  Tensor cin = normalize(rows_of_heads(context_in->forward(x), H));        // [R, T, dh]
  Tensor beta_rows = reshape(expand(reshape(beta(), {1, H, 1}), {B, H, T}), {R, T});
  w.contexts = cmr_drift_scan(cin, beta_rows, st.context);                 // [R, T, dh]
  Tensor f = rows_of_heads(features->forward(x), H);                        // [R, T, dh]

  // Writes close a segment: global positions p with (p + 1) % S == 0.
  const int64_t p0 = int64_t(w.position);
  for (int64_t t = 0; t < T; ++t)
    if ((p0 + t + 1) % S == 0) w.write_steps.push_back(t);
  // Segment sums from prefix sums: prefix[t + 1] = sum of f over steps <= t of this call.
  Tensor prefix = cat({zeros({R, 1, cfg.head_dim}, f.dtype(), f.device()), cumsum(f, 1)}, 1);  // [R, T+1, dh]
  const int64_t first_open = (p0 % S);  // tokens of the open segment seen before this call
  Tensor carried = reshape(st.segment_sum, {R, 1, cfg.head_dim});
  Tensor new_keys, new_values;
  if (!w.write_steps.empty()) {
    std::vector<int64_t> hi, lo;
    for (int64_t t : w.write_steps) hi.push_back(t + 1), lo.push_back(std::max<int64_t>(0, t - S + 1));
    Tensor sums = sub(index_select(prefix, 1, index_tensor(hi, f.device())),
                      index_select(prefix, 1, index_tensor(lo, f.device())));
    if (first_open > 0) {  // the first write closes a segment that began in an earlier call
      const int64_t N = int64_t(hi.size());
      Tensor add_first = N > 1 ? cat({carried, zeros({R, N - 1, cfg.head_dim}, f.dtype(), f.device())}, 1) : carried;
      sums = add(sums, add_first);
    }
    new_keys = index_select(w.contexts, 1, index_tensor(w.write_steps, f.device()));
    new_values = mul(sums, 1.0 / double(S));
    const int64_t last = w.write_steps.back();
    w.new_segment_sum = sub(select(prefix, 1, T), select(prefix, 1, last + 1));
  } else {
    w.new_segment_sum = add(st.segment_sum, select(prefix, 1, T));
  }
  w.keys = new_keys.defined() ? cat({st.keys, new_keys}, 1) : st.keys;
  w.values = new_values.defined() ? cat({st.values, new_values}, 1) : st.values;
  return w;
}

CMRBankState CMRBank::next_state(const BankWrites& w, const ReadPlan& plan) const {
  // Not detached: the next call's gradient may flow back into this call's writes; the language
  // model cuts the graph between training steps (truncated backprop), as for every state.
  const int64_t R = w.keys.size(0), N = w.keys.size(1), M = cfg.slots, dh = cfg.head_dim;
  std::vector<int64_t> rows(R * M);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t j = 0; j < M; ++j)
      rows[r * M + j] = r * N + std::max<int64_t>(0, plan.final_candidate[r * M + j]);
  const Device dev = w.keys.device();
  Tensor idx = index_tensor(rows, dev);
  CMRBankState s;
  DType dt = w.keys.dtype();
  s.keys = reshape(index_select(reshape(w.keys, {R * N, dh}), 0, idx), {R, M, dh});
  s.values = reshape(index_select(reshape(w.values, {R * N, dh}), 0, idx), {R, M, dh});
  s.usage = raw::to_device(from_vector(plan.final_usage, {R, M}, dt), dev);
  s.written_at = raw::to_device(from_vector(plan.final_written_at, {R, M}, DType::f64), dev);
  s.context = select(w.contexts, 1, w.steps - 1);
  s.segment_sum = w.new_segment_sum;
  s.position = full({1}, w.position + double(w.steps), DType::f64, dev);
  return s;
}

// ---------------------------------------------------------------- planning (no gradient)

ReadPlan plan_reads(const EpisodicCMRConfig& cfg, const Tensor& queries, const BankWrites& w,
                    const CMRBankState& st) {
  NoGradGuard no_grad;
  const int64_t R = w.keys.size(0), N = w.keys.size(1), M = cfg.slots, T = w.steps,
                dh = cfg.head_dim;
  const bool need_scores = cfg.top_k > 0 || cfg.policy == SlotPolicy::lowest_use;
  std::vector<double> q, k;
  if (need_scores) {
    q = raw::contiguous(to_dtype(queries, DType::f64)).to_vector<double>();
    k = raw::contiguous(to_dtype(w.keys, DType::f64)).to_vector<double>();
  }
  std::vector<double> usage0 = to_dtype(st.usage, DType::f64).to_vector<double>();
  std::vector<double> written0 = st.written_at.to_vector<double>();
  std::vector<int64_t> write_index(T, -1);
  for (size_t i = 0; i < w.write_steps.size(); ++i) write_index[w.write_steps[i]] = int64_t(i);

  ReadPlan plan;
  std::vector<double> hidden(R * T * (N + 1), 1.0);
  plan.final_candidate.assign(R * M, -1);
  plan.final_usage.assign(R * M, 0.0);
  plan.final_written_at.assign(R * M, -1.0);
  for (int64_t r = 0; r < R; ++r) {
    std::vector<int64_t> cand(M);
    std::vector<double> usage(M), written(M);
    for (int64_t j = 0; j < M; ++j) {
      written[j] = written0[r * M + j];
      usage[j] = usage0[r * M + j];
      cand[j] = written[j] >= 0 ? j : -1;
    }
    std::vector<std::pair<double, int64_t>> live;  // (score, slot)
    for (int64_t t = 0; t < T; ++t) {
      double* hid = hidden.data() + (r * T + t) * (N + 1);
      hid[N] = 0.0;  // the null slot is always readable
      live.clear();
      for (int64_t j = 0; j < M; ++j) {
        if (cand[j] < 0) continue;
        double s = 0;
        if (need_scores) {
          const double* qt = q.data() + (r * T + t) * dh;
          const double* kj = k.data() + (r * N + cand[j]) * dh;
          for (int64_t i = 0; i < dh; ++i) s += qt[i] * kj[i];
        }
        live.emplace_back(s, j);
      }
      if (cfg.top_k > 0 && int64_t(live.size()) > cfg.top_k) {
        std::stable_sort(live.begin(), live.end(),
                         [](const auto& a, const auto& b) { return a.first > b.first; });
        live.resize(cfg.top_k);
      }
      for (const auto& [s, j] : live) hid[cand[j]] = 0.0;
      if (cfg.policy == SlotPolicy::lowest_use) {
        // the read's softmax weights (null slot at score 0) are each slot's use at this step
        double mx = 0, total = 0;
        for (const auto& [s, j] : live) mx = std::max(mx, s);
        total = std::exp(-mx);
        for (const auto& [s, j] : live) total += std::exp(s - mx);
        for (int64_t j = 0; j < M; ++j) usage[j] *= cfg.usage_decay;
        for (const auto& [s, j] : live) usage[j] += std::exp(s - mx) / total;
      }
      if (write_index[t] >= 0) {
        int64_t victim = -1;
        for (int64_t j = 0; j < M && victim < 0; ++j)
          if (cand[j] < 0) victim = j;
        if (victim < 0) {
          victim = 0;
          for (int64_t j = 1; j < M; ++j) {
            bool better = cfg.policy == SlotPolicy::ring
                              ? written[j] < written[victim]
                              : (usage[j] < usage[victim] ||
                                 (usage[j] == usage[victim] && written[j] < written[victim]));
            if (better) victim = j;
          }
        }
        cand[victim] = M + write_index[t];
        written[victim] = w.position + double(t);
        usage[victim] = 1.0;
      }
    }
    for (int64_t j = 0; j < M; ++j) {
      plan.final_candidate[r * M + j] = cand[j];
      plan.final_usage[r * M + j] = usage[j];
      plan.final_written_at[r * M + j] = cand[j] >= 0 ? written[j] : -1.0;
    }
  }
  plan.hidden = raw::to_device(from_vector(hidden, {R, T, N + 1}, w.keys.dtype()), w.keys.device());
  return plan;
}

// ---------------------------------------------------------------- CMRReader

CMRReader::CMRReader(const EpisodicCMRConfig& c, Generator* gen) : cfg(c) {
  validate(c);
  const int64_t W = c.heads * c.head_dim;
  query = register_module("query", std::make_shared<nn::Linear>(c.d_model, W, false, gen));
  out = register_module("out", std::make_shared<nn::Linear>(W, c.d_model, true, gen));
  if (c.pre_assoc) pre_assoc = register_parameter("pre_assoc", zeros({c.heads, c.head_dim, c.head_dim}));
}

Tensor CMRReader::read(const Tensor& h, const BankWrites& w, const CMRBankState& st, ReadPlan& plan) {
  ENGRAM_CHECK(h.dim() == 3 && h.size(0) == w.batch && h.size(1) == w.steps &&
                   h.size(2) == cfg.d_model,
               "CMRReader: expected h [{}, {}, {}], got {}", w.batch, w.steps, cfg.d_model,
               shape_str(h.shape()));
  const int64_t B = w.batch, T = w.steps, R = w.keys.size(0), dh = cfg.head_dim;
  Tensor q = rows_of_heads(query->forward(h), cfg.heads);  // [R, T, dh]
  q = cfg.read == ReadRule::cosine ? mul(normalize(q), 1.0 / cfg.temperature)
                                   : mul(q, 1.0 / std::sqrt(double(dh)));
  if (!plan.hidden.defined()) plan = plan_reads(cfg, q, w, st);
  Tensor scores = cat({matmul(q, transpose(w.keys, 1, 2)), zeros({R, T, 1}, q.dtype(), q.device())}, 2);
  Tensor weights = softmax(masked_fill(scores, plan.hidden, -INFINITY), -1);  // [R, T, N + 1]
  last_weights = detach(weights);
  Tensor r = matmul(slice(weights, 2, 0, w.keys.size(1)), w.values);  // [R, T, dh]
  if (pre_assoc.defined()) {
    Tensor c = reshape(w.contexts, {B, cfg.heads, T, dh});
    r = add(r, reshape(matmul(c, transpose(pre_assoc, 1, 2)), {R, T, dh}));
  }
  return out->forward(heads_to_width(r, B));
}

// ---------------------------------------------------------------- EpisodicCMR

EpisodicCMR::EpisodicCMR(const EpisodicCMRConfig& c, Generator* gen) {
  bank = register_module("bank", std::make_shared<CMRBank>(c, gen));
  reader = register_module("reader", std::make_shared<CMRReader>(c, gen));
}

Tensor EpisodicCMR::forward(const Tensor& x, const Tensor& h, CMRBankState& state) {
  BankWrites w = bank->write(x, state);
  ReadPlan plan;
  Tensor y = reader->read(h, w, state, plan);
  state = bank->next_state(w, plan);
  return y;
}

}  // namespace engram::cmr
