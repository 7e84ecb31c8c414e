// memory/memnet/memory_bank.h — MemNet's MultiHeadMemoryBank: a slot memory whose slots are linked
// by a Hebbian (STDP) graph, read through spreading activation and a learned mix of addressing
// policies, written through a semantic bottleneck ("Memory Is All You Need", the MemNet research;
// DNC, Graves et al. 2016, deepmind/dnc addressing.py, is the published analogue of the links,
// the usage and the erase/add write).
//
// State per batch row: slots S [N, d], links A [N, N] (A_ij: slot j tends to be active right
// after slot i), usage u [N] in [0, 1], write mass n [N] (sum of write weights), age [N] (tokens
// since the slot was last written, softly) and the previous segment's activity [N].
//
// The bank works segment by segment (S_seg tokens; memnet.h cuts the stream). Every token of a
// segment reads the memory as it was before the segment; then the segment writes once per write
// head. (The local attention of the controller covers the segment itself, so nothing is lost.)
//
// Read, per token t and read head r (h_t [E] the controller's feature):
//   q = W_q h_t [d],  beta = 1 + softplus(w_beta . h_t + b_beta)   (b_beta = 9: beta ~ 10 at init)
//   z_i = beta cos~(q, S_i)      cos~(a, b) = a.b / (sqrt(|a|^2 + delta) sqrt(|b|^2 + delta)),
//                                delta = 1e-3, so an empty slot scores 0 with a bounded gradient
//      or z_i = beta q.S_i / sqrt(d)          (address = dot)
//   three read distributions over the N slots:
//     top-k    softmax of z over the k best slots, 0 elsewhere (the choice carries no gradient)
//     uniform  1 / #written over the slots holding a write (n_i >= 0.5), 1 / N when none does
//     random   a Dirichlet(1, ..., 1) draw (normalised Exp(1) variables) from a counter-based hash
//              of (seed, token position, row, head): the same stream position always draws the
//              same distribution, so runs and gradchecks are reproducible and a resumed run
//              explores exactly as the uninterrupted one
//   meta-policy   pi_t = softmax(G h_t) over the policies in use (one per head); G's bias starts
//                 at pi = (0.8, 0.2 / (P - 1), ...): reads start mostly by content
//   W_base = sum_p pi_p P_p
//   spreading activation   W = (1 - a) W_base + a W_base A^,   a = sigmoid(alpha) learned (or
//     fixed); A^ is A made row-stochastic: A^_ij = A_ij / max(sum_j A_ij, 1) + [i == j] (1 -
//     min(sum_j A_ij, 1)), so a slot with few links keeps the rest of its weight and W stays a
//     distribution. Reading "Fire" also activates "Smoke" when Smoke followed Fire.
//   r_t = W S [d] per head; the reads of a token are concatenated [R d].
//
// Write, once per segment and write head w (h_seg [S_seg, E] the segment's features):
//   p_w = softmax_t(u_w . h_t)^T h_seg     attention pooling of the segment (learned query u_w;
//                                          the heads share the projections below)
//   key k = W_k p_w, beta_w = 1 + softplus(.), content c = softmax_i(beta_w cos~(k, S_i))
//   allocation  alloc = softmax_i(-u_i / tau): a preference for little-used (hence old) slots;
//               tau = 0 (the default) is its limit, one-hot on the least-used slot (first of
//               equals), chosen without gradient like DNC's sorted free list. (With tau = 0.1
//               and soft writes every slot soon had the same usage, so allocation spread each
//               write over all 32 slots, and the first runs learned no recall.)
//   gates       g = sigmoid(.) (write), g_a = sigmoid(.) (allocation vs content), both biased
//               to 0.88 at initialisation: a fresh bank behaves like a ring buffer
//   ww = g (g_a alloc + (1 - g_a) c)                                               [N]
//   semantic bottleneck   v = W_up tanh(W_down p_w)   (E -> bottleneck -> d), erase e = sigmoid(W_e p_w)
//                         (e's bias starts at 3, e ~ 0.95: an allocated slot is overwritten)
//   S <- S o (1 - ww e^T) + ww v^T                      (DNC's erase/add; heads one after another)
// Bookkeeping:
//   before the segment's write   u <- usage_decay u
//   per head                     u <- u + (1 - u) o ww,  n <- n + ww,  age <- (1 - ww) o age
//   after the segment            age <- age + S_seg
// u is in the graph (DNC stops the gradient of its usage; here the allocation a write makes is
// learned through the usage earlier writes left), n and age are statistics without gradient.
//
// STDP links, once per segment with the segment's activity (in the graph, like the usage: what a
// read does to later reads through the links is part of its gradient)
//   act = the mean read weight of its tokens and heads + the mean write weight of its heads,
//   post = act / max(act) (so a sharp read counts 1 whatever N is), pre = the previous segment's:
//   A <- lambda A + eta (pre post^T) o (1 - A),   then diag(A) = 0
// With A, eta, pre, post in [0, 1], A stays in [0, 1]: lambda A + eta pre post (1 - A) <=
// A + (1 - A) = 1. Links decay by lambda per segment unless renewed. (DNC's temporal link is
// L <- (1 - w_i - w_j) L + w_i p_j from the write weights alone; here reads count too, since
// "slots active together" is the STDP idea, and the bound comes from the (1 - A) factor.)
#pragma once
#include <cstdint>

#include "nn/layers.h"

namespace engram::memnet {

enum class Address { cosine, dot };

struct MemoryBankConfig {
  int64_t d_model = 64;      // E: the controller's width
  int64_t slots = 32;        // N
  int64_t width = 32;        // d: a slot's width
  int64_t read_heads = 2;    // R
  int64_t write_heads = 1;   // W
  int64_t top_k = 4;         // the top-k policy's k (>= slots: a plain softmax)
  int64_t bottleneck = 16;   // the semantic bottleneck's width
  Address address = Address::cosine;
  bool policy_uniform = true, policy_random = true;  // mixed with top-k by the meta-policy
  bool graph = true;              // spreading activation and STDP links
  double spread_init = 0.1;       // a at initialisation
  bool spread_learned = true;
  double stdp_rate = 0.5;         // eta
  double link_decay = 0.98;       // lambda, per segment
  double usage_decay = 0.98;      // per segment
  double alloc_temperature = 0.0; // tau; 0 = the least-used slot, a hard choice
  uint64_t seed = 0;              // of the random policy's hash
  int64_t policies() const { return 1 + int64_t(policy_uniform) + int64_t(policy_random); }
};
void validate(const MemoryBankConfig& cfg);  // one-line errors naming the field

struct MemoryBankState {
  Tensor slots;     // [B, N, d]   in the graph (the reads and writes of this call)
  Tensor links;     // [B, N, N]   in the graph
  Tensor usage;     // [B, N]      in the graph
  Tensor writes;    // [B, N]      no gradient: write mass so far
  Tensor age;       // [B, N]      no gradient: tokens since the last write, softly
  Tensor activity;  // [B, N]      in the graph: the previous segment's (pre), max-normalised
};
MemoryBankState initial_bank_state(const MemoryBankConfig& cfg, int64_t batch, DType dtype,
                                   Device device = Device::cpu);

struct BankRead {
  Tensor reads;    // [B, S, R d]
  Tensor weights;  // [B, S, R, N]  W after spreading
  Tensor content;  // [B, S, R, N]  the top-k (content) distribution alone
  Tensor policy;   // [B, S, R, P]  pi (undefined when one policy)
};

struct BankWrite {
  Tensor weights;   // [B, W, N]   ww per head
  Tensor readback;  // [B, W d]    ww_w . S after the write: what the segment left in memory
};

class MultiHeadMemoryBank : public nn::Module {
 public:
  MultiHeadMemoryBank(const MemoryBankConfig& cfg, Generator* gen);
  // h [B, S, E] (S tokens of one segment, or the part of it in this call); position: the stream
  // position of h's first token (seeds the random policy).
  BankRead read(const Tensor& h, const MemoryBankState& st, int64_t position);
  // h_seg [B, S_seg, E] a whole segment; replaces st.slots (in the graph) and the bookkeeping.
  BankWrite write(const Tensor& h_seg, MemoryBankState& st);
  // STDP over one segment: mean_reads [B, N] and mean_writes [B, N] its mean weights.
  void link(MemoryBankState& st, const Tensor& mean_reads, const Tensor& mean_writes) const;
  double spread() const;  // a
  std::string type_name() const override { return "MultiHeadMemoryBank"; }
  std::string extra_repr() const override;

  MemoryBankConfig cfg;
  std::shared_ptr<nn::Linear> read_query, read_strength, policy_gate;
  std::shared_ptr<nn::Linear> write_pool, write_key, write_strength, write_gates, erase;
  std::shared_ptr<nn::Linear> bottleneck_down, bottleneck_up;
  Tensor spread_logit;  // [1] (a parameter when spread_learned, else a buffer)

 private:
  Tensor allocation(const Tensor& usage) const;
  Tensor scores(const Tensor& q, const Tensor& slots, const Tensor& beta) const;
};

// The random policy's distributions for `rows` (b, t, head) triples, [B, T * R, N] (f64 math).
Tensor random_read_distributions(uint64_t seed, int64_t batch, int64_t tokens, int64_t heads,
                                 int64_t slots, int64_t position, DType dtype,
                                 Device device = Device::cpu);

}  // namespace engram::memnet
