// memory/memnet/memnet.cpp — see memnet.h.
#include "memory/memnet/memnet.h"

#include <cmath>

#include "autograd/ops.h"
#include "autograd/tape.h"

namespace engram::memnet {

void validate(const MemNetConfig& c) {
  ENGRAM_CHECK(c.vocab >= 1 && c.d_model >= 1 && c.layers >= 1, "memnet: vocab, d_model and layers "
               "must be >= 1, got {}, {}, {}", c.vocab, c.d_model, c.layers);
  ENGRAM_CHECK(c.heads >= 1 && c.d_model % c.heads == 0, "memnet: model.d_model={} must be a "
               "multiple of model.heads={}", c.d_model, c.heads);
  ENGRAM_CHECK(c.window >= 1, "memnet: model.window must be >= 1, got {}", c.window);
  ENGRAM_CHECK(c.segment >= 1, "memnet: model.memnet_segment must be >= 1, got {}", c.segment);
  ENGRAM_CHECK(c.dream_every >= 0, "memnet: model.memnet_dream_every must be >= 0, got {}", c.dream_every);
  MemoryBankConfig b = c.bank;
  b.d_model = c.d_model;
  validate(b);
}

TransformerController::TransformerController(const MemNetConfig& c, Generator* gen) {
  cmr::LocalBlockConfig local;
  local.d_model = c.d_model, local.heads = c.heads, local.window = c.window;
  local.ff_mult = c.ff_mult, local.dropout = c.dropout;
  for (int64_t l = 0; l < c.layers; ++l)
    blocks.push_back(register_module(fmt::format("blocks.{}", l),
                                     std::make_shared<cmr::LocalAttentionBlock>(local, gen)));
  norm = register_module("norm", std::make_shared<nn::LayerNorm>(c.d_model));
}

Tensor TransformerController::forward(const Tensor& x, std::vector<cmr::BlockState>& st) {
  st.resize(blocks.size());
  Tensor h = x;
  for (size_t l = 0; l < blocks.size(); ++l) h = blocks[l]->forward(h, st[l], nullptr);
  return norm->forward(h);
}

MemNet::MemNet(const MemNetConfig& c, Generator* gen) : cfg(c) {
  cfg.bank.d_model = c.d_model;
  validate(cfg);
  const int64_t E = c.d_model, Rd = cfg.bank.read_heads * cfg.bank.width;
  embed = register_module("embed", std::make_shared<nn::Embedding>(c.vocab, E, -1, gen));
  controller = register_module("controller", std::make_shared<TransformerController>(cfg, gen));
  if (cfg.memory) {
    bank = register_module("bank", std::make_shared<MultiHeadMemoryBank>(cfg.bank, gen));
    if (cfg.dream_every > 0)
      synthesizer = register_module("synthesizer", std::make_shared<MemorySynthesizer>(
                                                       cfg.bank.width, c.dream_heads, c.dream_gate, gen));
    fuse = register_module("fuse", std::make_shared<nn::Linear>(E + Rd, E, true, gen));
    hallucinate = register_module("hallucinate", std::make_shared<nn::Linear>(
                                                     cfg.bank.write_heads * cfg.bank.width, E, true, gen));
  }
  norm = register_module("norm", std::make_shared<nn::LayerNorm>(E));
  head = register_module("head", std::make_shared<nn::Linear>(E, c.vocab, true, gen));
}

MemNetState MemNet::initial_state(int64_t batch, DType dtype, Device device) const {
  MemNetState s;
  s.controller.resize(controller->blocks.size());
  if (cfg.memory) {
    s.bank = initial_bank_state(cfg.bank, batch, dtype, device);
    s.pending_h = zeros({batch, 0, cfg.d_model}, dtype, device);
    s.pending_x = zeros({batch, 0, cfg.d_model}, dtype, device);
    s.pending_reads = zeros({batch, cfg.bank.slots}, dtype, device);
  }
  return s;
}

Tensor MemNet::forward(const Tensor& ids, MemNetState& st, MemNetStats* stats, MemNetTrace* trace,
                       nn::NamedTensors* stages) {
  ENGRAM_CHECK(ids.dim() == 2 && ids.dtype() == DType::i64, "memnet: expected ids [B, T] i64, got {} {}",
               dtype_name(ids.dtype()), shape_str(ids.shape()));
  const int64_t B = ids.size(0), T = ids.size(1);
  Tensor x = embed->forward(ids);
  if (stages) stages->emplace_back("embed", x);
  if (!cfg.memory) {
    Tensor h = controller->forward(x, st.controller);
    st.position += T;
    Tensor logits = head->forward(norm->forward(h));
    if (stages) stages->insert(stages->end(), {{"controller", h}, {"logits", logits}});
    return logits;
  }
  if (!st.started()) st = initial_state(B, x.dtype(), x.device());
  ENGRAM_CHECK(st.bank.slots.size(0) == B, "memnet: the state has batch {}, the ids {}",
               st.bank.slots.size(0), B);
  Tensor h = controller->forward(x, st.controller);
  const int64_t S = cfg.segment, R = cfg.bank.read_heads;
  MemNetStats local;
  MemNetStats& out = stats ? *stats : local;
  out = MemNetStats{};
  std::vector<Tensor> reads, weights, contents, policies, hal_terms;
  double dream_change = 0;
  Tensor write_mass, reused_mass;
  for (int64_t t0 = 0; t0 < T;) {
    const int64_t open = st.position % S, len = std::min(T - t0, S - open);
    Tensor hc = slice(h, 1, t0, t0 + len), xc = slice(x, 1, t0, t0 + len);
    BankRead rd = bank->read(hc, st.bank, st.position);
    reads.push_back(rd.reads);
    weights.push_back(rd.weights);
    contents.push_back(rd.content);
    if (rd.policy.defined()) policies.push_back(rd.policy);
    st.pending_reads = add(st.pending_reads, sum(rd.weights, {1, 2}));
    if (trace) {
      Tensor m = to_dtype(mean(select(detach(rd.weights), 0, 0), {1}), DType::f32);  // [len, N]
      for (int64_t t = 0; t < len; ++t) trace->reads.push_back(select(m, 0, t).to_vector<float>());
    }
    st.pending_h = cat({st.pending_h, hc}, 1);
    st.pending_x = cat({st.pending_x, xc}, 1);
    st.position += len, t0 += len;
    if (open + len < S) continue;
    // the segment is complete: write it, link it, reconstruct it, maybe dream
    Tensor held = to_dtype(ge(st.bank.writes, full({1}, 0.5, x.dtype(), x.device())), x.dtype());  // [B, N]
    BankWrite wr = bank->write(st.pending_h, st.bank);
    {
      NoGradGuard ng;  // summed as tensors, read once after the loop (no sync per segment)
      Tensor mass = sum(detach(wr.weights), {1});  // [B, N]
      write_mass = write_mass.defined() ? add(write_mass, sum(mass)) : sum(mass);
      Tensor reused = sum(mul(mass, held));
      reused_mass = reused_mass.defined() ? add(reused_mass, reused) : reused;
    }
    Tensor recon = hallucinate->forward(wr.readback);                  // [B, E]
    hal_terms.push_back(mse_loss(recon, layer_norm(mean(st.pending_x, {1}), Tensor(), Tensor())));
    bank->link(st.bank, mul(st.pending_reads, 1.0 / double(S * R)), mean(wr.weights, {1}));
    out.write_weights.push_back(wr.weights);
    out.write_positions.push_back(st.position);
    if (trace) {
      trace->writes.push_back(to_dtype(sum(select(detach(wr.weights), 0, 0), {0}), DType::f32)
                                  .to_vector<float>());
      trace->write_positions.push_back(st.position);
    }
    st.pending_h = zeros({B, 0, cfg.d_model}, x.dtype(), x.device());
    st.pending_x = zeros({B, 0, cfg.d_model}, x.dtype(), x.device());
    st.pending_reads = zeros({B, cfg.bank.slots}, x.dtype(), x.device());
    if (synthesizer && (st.position / S) % cfg.dream_every == 0) {
      double change = 0;
      st.bank.slots = synthesizer->forward(st.bank.slots, &change);
      ++out.dreams, dream_change += change;
    }
  }
  out.read_weights = cat(weights, 1);
  out.content_weights = cat(contents, 1);
  if (!policies.empty()) out.policy = cat(policies, 1);
  if (!hal_terms.empty()) {
    Tensor total = hal_terms[0];
    for (size_t i = 1; i < hal_terms.size(); ++i) total = add(total, hal_terms[i]);
    out.hallucination = mul(total, 1.0 / double(hal_terms.size()));
  }
  out.dream_change = out.dreams ? dream_change / double(out.dreams) : 0.0;
  if (write_mass.defined()) {
    out.write_mass = to_dtype(write_mass, DType::f64).item();
    out.reused_mass = to_dtype(reused_mass, DType::f64).item();
  }
  out.written_slots = to_dtype(mean(sum(to_dtype(ge(st.bank.writes, full({1}, 0.5, x.dtype(), x.device())),
                                                 x.dtype()), {1})), DType::f64).item();
  Tensor r = cat(reads, 1);
  Tensor y = add(h, fuse->forward(cat({h, r}, 2)));
  Tensor logits = head->forward(norm->forward(y));
  if (stages) stages->insert(stages->end(), {{"controller", h}, {"reads", r}, {"fused", y}, {"logits", logits}});
  return logits;
}

double MemNet::dream(MemNetState& st, int64_t rounds) {
  ENGRAM_CHECK(synthesizer, "memnet: dream() needs the synthesizer (model.memnet_dream_every > 0)");
  ENGRAM_CHECK(st.started(), "memnet: dream() needs a memory that has seen a stream");
  NoGradGuard ng;
  double total = 0;
  for (int64_t i = 0; i < rounds; ++i) {
    double change = 0;
    st.bank.slots = synthesizer->forward(st.bank.slots, &change);
    total += change;
  }
  return rounds ? total / double(rounds) : 0.0;
}

MemNetLosses memnet_losses(const MemNetStats& s, int64_t N) {
  MemNetLosses l;
  l.hallucination = s.hallucination;
  if (!s.read_weights.defined() || N < 2) return l;
  const double logN = std::log(double(N));
  auto entropy = [](const Tensor& p) {  // over the last dim
    return neg(sum(mul(p, log(add(p, 1e-12))), {-1}));
  };
  const Tensor& w = s.read_weights;  // [B, T, R, N]
  l.sparsity = mul(mean(entropy(s.content_weights)), 1.0 / logN);
  Tensor usage = mean(w, {1, 2});    // [B, N]
  l.utilization = add(mul(mean(entropy(usage)), -1.0 / logN), 1.0);
  return l;
}

}  // namespace engram::memnet
