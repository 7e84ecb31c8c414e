// memory/crsd/episodic.cpp — see episodic.h.
#include "memory/crsd/episodic.h"

#include <cmath>

namespace engram::memory {

EpisodicBuffer::EpisodicBuffer(int64_t dk, int64_t dv, EpisodicOptions opt)
    : d_k(dk), d_v(dv), options(opt) {
  ENGRAM_CHECK(opt.slots > 0, "EpisodicBuffer: slots must be positive, got {}", opt.slots);
  ENGRAM_CHECK(opt.temperature > 0, "EpisodicBuffer: temperature must be positive, got {}",
               opt.temperature);
  ENGRAM_CHECK(opt.top_k >= 0 && opt.top_k <= opt.slots,
               "EpisodicBuffer: top_k {} out of range [0, {}]", opt.top_k, opt.slots);
}

EpisodicState EpisodicBuffer::initial_state(int64_t B, DType dt, Device dev) const {
  int64_t S = options.slots;
  return {zeros({B, S, d_k}, dt, dev), zeros({B, S, d_v}, dt, dev), zeros({B, S}, dt, dev),
          zeros({B, S}, dt, dev), zeros({B, S}, dt, dev)};
}

// The mask of slots a read may attend to: filled, inside the recency window, among the top-k.
static Tensor allowed_slots(const Tensor& scores, const EpisodicState& st, const EpisodicOptions& o) {
  NoGradGuard ng;
  Tensor allowed = st.filled;
  if (o.recency_window > 0) allowed = mul(allowed, lt(st.age, full({}, double(o.recency_window), st.age.dtype(), st.age.device())));
  if (o.top_k > 0 && o.top_k < scores.shape()[1]) {
    // rank only allowed slots: push the others far down before taking the top k
    Tensor ranked = add(mul(detach(scores), allowed), mul(add(allowed, -1.0), 1e9));
    Tensor idx = topk(ranked, o.top_k, 1).indices;
    Tensor top = scatter_add(zeros_like(allowed), 1, idx, ones(idx.shape(), allowed.dtype(), allowed.device()));
    allowed = mul(allowed, top);
  }
  return allowed;
}

Tensor EpisodicBuffer::step(const Tensor& q, const Tensor& k, const Tensor& v, EpisodicState& st) const {
  ENGRAM_CHECK(q.dim() == 2 && q.shape()[1] == d_k && k.shape() == q.shape() && v.dim() == 2 &&
                   v.shape()[1] == d_v && v.shape()[0] == q.shape()[0],
               "EpisodicBuffer: expected q, k [B, {}] and v [B, {}], got q {} k {} v {}", d_k, d_v,
               shape_str(q.shape()), shape_str(k.shape()), shape_str(v.shape()));
  ENGRAM_CHECK(st.keys.defined() && st.keys.shape()[0] == q.shape()[0],
               "EpisodicBuffer: state is for batch {}, input has batch {}",
               st.keys.defined() ? st.keys.shape()[0] : 0, q.shape()[0]);
  const double eps = options.eps;
  // ---- read: cosine scores over slots, masked softmax, weighted sum of values
  Tensor qn = normalize(q, -1, eps), kn_slots = normalize(st.keys, -1, eps);
  Tensor scores = mul(squeeze(matmul(kn_slots, unsqueeze(qn, -1)), -1), 1.0 / options.temperature);
  Tensor allowed = allowed_slots(scores, st, options);
  // masked softmax, finite when nothing is allowed: w = e / Z with e = exp(s - m) on allowed
  // slots and 0 elsewhere, Z = sum(e), or 1 when that sum is 0 (then w = 0 and the recall is 0).
  // The shift m is the (detached) max over the ALLOWED slots only: softmax is invariant to it,
  // and a max that included disallowed slots could sit far above every allowed score, so that at
  // a small temperature every allowed exp(s - m) underflowed to 0 and the recall vanished.
  // Disallowed slots go through -inf (exp gives exactly 0 and no gradient), never through
  // exp(s - m) * 0, which is NaN when s - m overflows.
  Tensor neg_inf = full({}, -INFINITY, scores.dtype(), scores.device());
  Tensor masked = where(allowed, scores, neg_inf);
  Tensor m = detach(max(masked, 1, true));
  m = where(eq(m, neg_inf), zeros({}, m.dtype(), m.device()), m);  // no allowed slot: shift 0
  Tensor e = exp(sub(masked, m));
  Tensor z = sum(e, {1}, true);
  Tensor w = div(e, add(z, detach(eq(z, zeros({}, z.dtype(), z.device())))));
  Tensor recall = squeeze(matmul(unsqueeze(w, 1), st.values), 1);

  // ---- write: pick the slot, overwrite it with a one-hot blend
  Tensor onehot, novelty;
  {
    NoGradGuard ng;
    Tensor kn = normalize(k, -1, eps);
    Tensor sim = squeeze(matmul(kn_slots, unsqueeze(kn, -1)), -1);              // [B, S]
    Tensor max_sim = max(add(mul(sim, st.filled), mul(add(st.filled, -1.0), 2.0)), 1, false);  // -2 when empty
    novelty = clamp(sub(ones_like(max_sim), max_sim), 0.0, 1.0);                // [B]
    st.importance = mul(st.importance, options.decay);
    st.age = add(st.age, 1.0);
    Tensor priority = sub(st.importance, sub(ones_like(st.filled), st.filled)); // empty -> -1
    Tensor slot = argmin(priority, 1, true);                                    // [B, 1]
    onehot = scatter_add(zeros_like(st.filled), 1, slot, ones(slot.shape(), st.filled.dtype(), st.filled.device()));
    Tensor keep = sub(ones_like(onehot), onehot);
    st.importance = add(mul(st.importance, keep), mul(onehot, unsqueeze(novelty, 1)));
    st.age = mul(st.age, keep);
    st.filled = maximum(st.filled, onehot);
  }
  Tensor keep3 = unsqueeze(sub(ones_like(onehot), onehot), -1), hot3 = unsqueeze(onehot, -1);
  Tensor kw = options.detach_memory ? detach(k) : k, vw = options.detach_memory ? detach(v) : v;
  Tensor old_k = options.detach_memory ? detach(st.keys) : st.keys;
  Tensor old_v = options.detach_memory ? detach(st.values) : st.values;
  st.keys = add(mul(old_k, keep3), mul(hot3, unsqueeze(kw, 1)));
  st.values = add(mul(old_v, keep3), mul(hot3, unsqueeze(vw, 1)));
  return recall;
}

Tensor EpisodicBuffer::forward(const Tensor& q, const Tensor& k, const Tensor& v, EpisodicState& st) const {
  ENGRAM_CHECK(q.dim() == 3 && k.shape() == q.shape() && v.dim() == 3 && v.shape()[1] == q.shape()[1] &&
                   q.shape()[2] == d_k && v.shape()[2] == d_v && v.shape()[0] == q.shape()[0],
               "EpisodicBuffer: expected q, k [B, T, {}] and v [B, T, {}], got q {} k {} v {}", d_k,
               d_v, shape_str(q.shape()), shape_str(k.shape()), shape_str(v.shape()));
  ENGRAM_CHECK(st.keys.defined() && st.keys.shape()[0] == q.shape()[0],
               "EpisodicBuffer: state is for batch {}, input has batch {}",
               st.keys.defined() ? st.keys.shape()[0] : 0, q.shape()[0]);
  // the fused op: the same reads and writes as step() at every t, one node for the sequence
  const EpisodicOptions& o = options;
  EpisodicScan out = episodic_scan(q, k, v, {st.keys, st.values, st.importance, st.age, st.filled},
                                   {o.temperature, o.decay, o.eps, o.top_k, o.recency_window,
                                    o.detach_memory});
  st = {out.slots.keys, out.slots.values, out.slots.importance, out.slots.age, out.slots.filled};
  return out.recall;
}

std::string EpisodicBuffer::extra_repr() const {
  return fmt::format("d_k={}, d_v={}, slots={}, temperature={}, top_k={}, recency_window={}", d_k,
                     d_v, options.slots, options.temperature, options.top_k, options.recency_window);
}

}  // namespace engram::memory
