// apps/bench/workloads.h — the engram side of the benchmark workloads.
//
// A workload is a model, a fixed batch (drawn from a seeded generator) and a loss: one training
// step is forward + loss + backward + Adam update. The shapes below are the contract with
// apps/bench/torch_ref.py, which builds the same models in PyTorch. The hyper-parameters that
// parameter shapes do not show (lengths, heads, rates, slots) travel with the exported weights as
// safetensors metadata (Workload::meta), the torch side loads the weights strictly (any name or
// shape that differs is an error), and --check compares both sides' losses on the same weights
// and batch, so the two cannot drift apart silently.
//
//   mlp          784-512-512-10 ReLU MLP, batch 128, cross-entropy
//   cnn          Conv(1->32,3,p1)-ReLU-MaxPool2-Conv(32->64,3,p1)-ReLU-MaxPool2-Flatten-
//                Linear(3136->128)-ReLU-Linear(128->10), batch 64 of 1x28x28, cross-entropy
//   lstm         byte LM: Embedding(256,128) -> LSTM(128->256) -> Linear(256,256), B 32 x T 128
//   transformer  byte LM: token + learned position embeddings (d 128) -> 4 pre-norm blocks
//                (4 heads, MLP 512, GELU, causal) -> LayerNorm -> Linear(128,256), B 16 x T 128
//   spectral     SpectralMix(128) (LayerNorm -> rfft -> complex filter -> irfft -> Linear) on
//                x [32, 128, 128], loss mean(y^2)
//   hebbian      q, k, v = Linear(128->64, no bias) of x [32, 128, 128]; the fused hebbian_scan
//                H_t = sigmoid(g) H_{t-1} + softplus(e) k_t v_t^T, r_t = H_t^T q_t (raw q, k:
//                no normalisation), loss mean(r^2)
//   epinet       one EpiNet step with recall and replay (memory/epinet/): ConvEncoder (d 128) ->
//                hard top-8 recall from 256 stored latents (cosine x salience, weights by salience)
//                -> a 4-expert MoE over [z; r] (hidden 128, 10 classes); loss = CE(batch of 64) +
//                0.5 CE(replay batch of 64). The memory's contents are part of the fixed batch;
//                memorize() (a copy into preallocated slots) is not part of the step.
//   crsd_tiny    apps/crsd_tiny's default model and batch (its built-in defaults, which are
//                configs/tiny.yaml: a 2-layer byte-level memory::CRSDLanguageModel, d_model 128,
//                d_mem 32, reservoir 128, 32 episodic slots; B 16 x T 128), built by the app's
//                own apps::make_language_model, cross-entropy. The step is the bench's (Adam from
//                an empty state), not the app's loop (AdamW, clipping, state carried over).
//   hybrid       a 2-layer byte-level memory LM of titans::GatedHybridBlock (model.kind=hybrid,
//                apps/common/memory_lm.h, built by apps::make_memory_lm): Embedding(256, 64) ->
//                2 x [LN -> ALiBi local attention (4 heads, window 16) beside Titans' linear neural
//                memory (4 heads, chunk 8) and an episodic CMR bank (4 heads, 32 ring slots, one
//                write per token, softmax reads), sigmoid gate between the two memories, Linear
//                (2E -> E) over [attn; merged], residual, GELU MLP] -> LayerNorm -> Linear(64, 256);
//                B 8 x T 64, cross-entropy, every step from a fresh state.
//   memnet       apps/memnet's default model (configs/memnet.yaml; model.kind=memnet,
//                apps/common/memnet_lm.h, memory/memnet/memnet.h, built by
//                apps::make_language_model): Embedding(256, 64) -> a windowed controller (2 local
//                attention blocks, 4 heads, window 16, ALiBi) -> LayerNorm = h; a graph memory
//                of 32 slots of width 32 (2 read heads: top-4 cosine reads mixed with uniform
//                and random reads by a meta-policy, spreading activation over STDP links; 1 write
//                head every 4 tokens, hard least-used allocation, bottleneck 16), a dream
//                (self-attention over the slots) every 8 segments; y = h + W_f [h; r] ->
//                LayerNorm -> Linear(64, 256). B 16 x T 128 from a fresh memory every step; loss
//                = cross-entropy + 0.1 L_hal + 0.01 L_util + 0.01 L_sparse (the LM's
//                auxiliary_loss), as apps/memnet trains it.
//   s4d, s4, s5, mamba, linoss, retnet, samba
//                crsd_tiny's state-space LMs (apps/common/ssm_lm.h) from their configs,
//                apps/crsd_tiny/configs/<kind>.yaml (~252K parameters each), B 16 x T 128 bytes,
//                cross-entropy, every step from a zero state. The PyTorch side (torch_ssm.py) runs
//                the layer references of tests/golden/torch_ssm_*.py: Mamba's selective_scan_ref
//                loop, S5's and LinOSS's recurrences as loops over time, S4/S4D in convolution
//                mode, RetNet's parallel form.
//
// FLOPs: for the dense workloads, flop_per_step counts the multiply-adds of the matrix products
// and convolutions (2 FLOPs each) of forward and backward: each product costs its forward once
// for the weight gradient and once more for the input gradient, which is skipped where the input
// is the data itself (the first layer of mlp and cnn). Elementwise work, FFTs and the optimizer
// are not counted, so the figure is a lower bound on the work and the fraction of sgemm peak it
// gives is an upper bound on how well the matrix units were used.
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "apps/common/lm.h"
#include "apps/common/memnet_lm.h"
#include "apps/common/ssm_lm.h"
#include "apps/common/memory_lm.h"
#include "apps/common/trainer.h"
#include "memory/crsd/crsd.h"
#include "memory/epinet/encoder.h"
#include "memory/epinet/recall.h"
#include "nn/moe.h"
#include "nn/attention.h"
#include "nn/checkpoint.h"
#include "nn/layers.h"
#include "nn/recurrent.h"
#include "nn/spectral.h"
#include "nn/ssm/mixer.h"

namespace engram::bench {

struct Workload {
  std::string name;
  std::shared_ptr<nn::Module> model;
  std::function<Tensor()> loss;  // runs the forward on the fixed batch, returns the scalar loss
  nn::NamedTensors data;         // the batch, exported beside the weights as "data.<name>"
  nn::Metadata meta;             // everything torch_ref.py needs to build the same model
  double flop_per_step = 0;      // matmul/conv FLOPs of forward + backward; 0 = not dense
};

inline const std::vector<std::string>& workload_names() {
  static const std::vector<std::string> names = {"mlp",      "cnn",     "lstm",     "transformer",
                                                 "spectral", "hebbian", "epinet", "crsd_tiny",
                                                 "hybrid",   "memnet",  "s4d",    "s4",
                                                 "s5",       "mamba",   "linoss", "retnet",
                                                 "samba"};
  return names;
}

// ---------------------------------------------------------------- FLOP counting
// y = x W^T over `rows` rows: forward, weight gradient, and the input gradient when wanted.
inline double linear_flop(double rows, double in, double out, bool input_grad = true) {
  return 2 * rows * in * out * (input_grad ? 3 : 2);
}
// A 'same' convolution of a [B, Cin, H, W] input to [B, Cout, H, W] with a k x k kernel.
inline double conv_flop(double B, double cin, double cout, double H, double W, double k,
                        bool input_grad = true) {
  return 2 * B * cout * H * W * cin * k * k * (input_grad ? 3 : 2);
}

// ---------------------------------------------------------------- models without a module of
// their own in nn/: small modules here, with the child names torch_ref.py uses.
class ByteLSTM : public nn::Module {
 public:
  ByteLSTM(int64_t vocab, int64_t embed_dim, int64_t hidden, Generator* gen) {
    embed = register_module("embed", std::make_shared<nn::Embedding>(vocab, embed_dim, -1, gen));
    lstm = register_module("lstm", std::make_shared<nn::LSTM>(embed_dim, hidden, 1, true, 0.0, gen));
    head = register_module("head", std::make_shared<nn::Linear>(hidden, vocab, true, gen));
  }
  Tensor forward(const Tensor& ids) {  // [B, T] -> logits [B, T, V]
    return head->forward(lstm->forward(embed->forward(ids)).output);
  }
  std::string type_name() const override { return "ByteLSTM"; }
  std::shared_ptr<nn::Embedding> embed;
  std::shared_ptr<nn::LSTM> lstm;
  std::shared_ptr<nn::Linear> head;
};

class ByteTransformer : public nn::Module {
 public:
  ByteTransformer(int64_t vocab, int64_t context, int64_t d, int64_t heads, int64_t ff,
                  int64_t layers, Generator* gen) {
    tok_embed = register_module("tok_embed", std::make_shared<nn::Embedding>(vocab, d, -1, gen));
    pos_embed = register_module("pos_embed", std::make_shared<nn::Embedding>(context, d, -1, gen));
    for (int64_t l = 0; l < layers; ++l)
      blocks.push_back(register_module(
          fmt::format("blocks.{}", l),
          std::make_shared<nn::TransformerBlock>(d, heads, ff, /*causal=*/true, 0.0, gen)));
    norm = register_module("norm", std::make_shared<nn::LayerNorm>(d));
    head = register_module("head", std::make_shared<nn::Linear>(d, vocab, true, gen));
  }
  Tensor forward(const Tensor& ids) {  // [B, T] -> logits [B, T, V]
    const int64_t T = ids.shape()[1];
    Tensor positions = raw::to_dtype(arange(0, double(T)), DType::i64);  // [T]
    Tensor x = add(tok_embed->forward(ids), pos_embed->forward(positions));
    for (auto& block : blocks) x = block->forward(x);
    return head->forward(norm->forward(x));
  }
  std::string type_name() const override { return "ByteTransformer"; }
  std::shared_ptr<nn::Embedding> tok_embed, pos_embed;
  std::vector<std::shared_ptr<nn::TransformerBlock>> blocks;
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::Linear> head;
};

// The Hebbian recurrence alone: projections, then one fused scan with learnable decay and rate.
class HebbianRecall : public nn::Module {
 public:
  HebbianRecall(int64_t in, int64_t d, Generator* gen)
      : gamma_logit(register_parameter("gamma_logit", full({}, 2.1972245773362196))),  // logit(0.9)
        eta_raw(register_parameter("eta_raw", full({}, 0.0))) {                       // softplus: 0.69
    q_proj = register_module("q_proj", std::make_shared<nn::Linear>(in, d, false, gen));
    k_proj = register_module("k_proj", std::make_shared<nn::Linear>(in, d, false, gen));
    v_proj = register_module("v_proj", std::make_shared<nn::Linear>(in, d, false, gen));
  }
  Tensor forward(const Tensor& x) {  // [B, T, in] -> recalls [B, T, d]
    return hebbian_scan(q_proj->forward(x), k_proj->forward(x), v_proj->forward(x),
                        sigmoid(gamma_logit), softplus(eta_raw))
        .recall;
  }
  std::string type_name() const override { return "HebbianRecall"; }
  Tensor& gamma_logit;
  Tensor& eta_raw;
  std::shared_ptr<nn::Linear> q_proj, k_proj, v_proj;
};

// ---------------------------------------------------------------- the workloads
inline Workload make_mlp(Generator& gen) {
  const int64_t B = 128;
  auto model = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::UnaryModule>>{
      std::make_shared<nn::Linear>(784, 512, true, &gen), nn::ReLU(),
      std::make_shared<nn::Linear>(512, 512, true, &gen), nn::ReLU(),
      std::make_shared<nn::Linear>(512, 10, true, &gen)});
  Tensor x = randn({B, 784}, DType::f32, &gen), y = randint(0, 10, {B}, &gen);
  Workload w{"mlp", model, [model, x, y] { return cross_entropy(model->forward(x), y); },
             {{"input", x}, {"target", y}}, {}, 0};
  w.flop_per_step = linear_flop(B, 784, 512, false) + linear_flop(B, 512, 512) + linear_flop(B, 512, 10);
  return w;
}

inline Workload make_cnn(Generator& gen) {
  const int64_t B = 64;
  auto model = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::UnaryModule>>{
      std::make_shared<nn::Conv2d>(1, 32, 3, 1, 1, 1, true, &gen), nn::ReLU(),
      std::make_shared<nn::MaxPool2d>(2),
      std::make_shared<nn::Conv2d>(32, 64, 3, 1, 1, 1, true, &gen), nn::ReLU(),
      std::make_shared<nn::MaxPool2d>(2), std::make_shared<nn::Flatten>(1),
      std::make_shared<nn::Linear>(64 * 7 * 7, 128, true, &gen), nn::ReLU(),
      std::make_shared<nn::Linear>(128, 10, true, &gen)});
  Tensor x = randn({B, 1, 28, 28}, DType::f32, &gen), y = randint(0, 10, {B}, &gen);
  Workload w{"cnn", model, [model, x, y] { return cross_entropy(model->forward(x), y); },
             {{"input", x}, {"target", y}}, {}, 0};
  w.flop_per_step = conv_flop(B, 1, 32, 28, 28, 3, false) + conv_flop(B, 32, 64, 14, 14, 3) +
                    linear_flop(B, 3136, 128) + linear_flop(B, 128, 10);
  return w;
}

inline Workload make_lstm(Generator& gen) {
  const int64_t B = 32, T = 128, V = 256, E = 128, H = 256;
  auto model = std::make_shared<ByteLSTM>(V, E, H, &gen);
  Tensor ids = randint(0, V, {B, T}, &gen), target = randint(0, V, {B, T}, &gen);
  Workload w{"lstm", model, [model, ids, target] { return cross_entropy(model->forward(ids), target); },
             {{"input", ids}, {"target", target}},
             {{"vocab", std::to_string(V)}, {"embed", std::to_string(E)}, {"hidden", std::to_string(H)}},
             0};
  w.flop_per_step = linear_flop(B * T, E, 4 * H) + linear_flop(B * T, H, 4 * H) + linear_flop(B * T, H, V);
  return w;
}

inline Workload make_transformer(Generator& gen) {
  const int64_t B = 16, T = 128, V = 256, D = 128, heads = 4, ff = 512, layers = 4;
  auto model = std::make_shared<ByteTransformer>(V, T, D, heads, ff, layers, &gen);
  Tensor ids = randint(0, V, {B, T}, &gen), target = randint(0, V, {B, T}, &gen);
  Workload w{"transformer", model,
             [model, ids, target] { return cross_entropy(model->forward(ids), target); },
             {{"input", ids}, {"target", target}},
             {{"vocab", std::to_string(V)}, {"context", std::to_string(T)}, {"d_model", std::to_string(D)},
              {"heads", std::to_string(heads)}, {"ff", std::to_string(ff)}, {"layers", std::to_string(layers)}},
             0};
  const double N = double(B * T), d_head = double(D / heads);
  const double attention = 2 * 2 * double(B * heads) * T * T * d_head * 3;  // Q K^T and A V
  const double block = linear_flop(N, D, 3 * D) + linear_flop(N, D, D) + linear_flop(N, D, ff) +
                       linear_flop(N, ff, D) + attention;
  w.flop_per_step = double(layers) * block + linear_flop(N, D, V);
  return w;
}

inline Workload make_spectral(Generator& gen) {
  const int64_t B = 32, T = 128, F = 128;
  auto model = std::make_shared<nn::SpectralMix>(F, 0.0, &gen);
  Tensor x = randn({B, T, F}, DType::f32, &gen);
  Workload w{"spectral", model, [model, x] { return mean(square(model->forward(x))); },
             {{"input", x}}, {{"features", std::to_string(F)}}, 0};
  w.flop_per_step = linear_flop(B * T, F, F);
  return w;
}

inline Workload make_hebbian(Generator& gen) {
  const int64_t B = 32, T = 128, C = 128, D = 64;
  auto model = std::make_shared<HebbianRecall>(C, D, &gen);
  Tensor x = randn({B, T, C}, DType::f32, &gen);
  return Workload{"hebbian", model, [model, x] { return mean(square(model->forward(x))); },
                  {{"input", x}}, {{"in_features", std::to_string(C)}, {"d", std::to_string(D)}}, 0};
}

inline Workload make_crsd_tiny(Generator& gen) {
  // The app's configuration at its defaults: the same model and batch `crsd_tiny` trains.
  apps::Config app_cfg(apps::lm_schema("crsd_tiny"));
  ENGRAM_CHECK(app_cfg.get_string("model.kind") == "crsd" && app_cfg.get_string("data.tokenizer") == "byte",
               "crsd_tiny: expected the app's default to be a byte-level CRSD model, got model.kind={} "
               "data.tokenizer={}", app_cfg.get_string("model.kind"), app_cfg.get_string("data.tokenizer"));
  const int64_t B = app_cfg.get_int("train.batch"), T = app_cfg.get_int("train.seq_len"), V = 256;
  std::shared_ptr<apps::LanguageModel> lm = apps::make_language_model(app_cfg, V, &gen);
  auto* crsd = dynamic_cast<memory::CRSDLanguageModel*>(&lm->module());
  ENGRAM_CHECK(crsd != nullptr, "crsd_tiny: the app's model is not a memory::CRSDLanguageModel");
  std::shared_ptr<memory::CRSDLanguageModel> model(lm, crsd);  // shares ownership with lm
  const memory::CRSDConfig& cfg = model->cfg;
  Tensor ids = randint(0, V, {B, T}, &gen), target = randint(0, V, {B, T}, &gen);
  auto loss = [model, ids, target] {
    memory::CRSDLanguageModel::State state;  // every step starts from the empty memory
    return cross_entropy(model->forward(ids, state), target);
  };
  // Every option the PyTorch twin needs, including the defaults the app leaves alone.
  nn::Metadata meta = {
      {"vocab", std::to_string(cfg.vocab_size)}, {"d_model", std::to_string(cfg.d_model)},
      {"d_mem", std::to_string(cfg.d_mem)}, {"layers", std::to_string(cfg.layers)},
      {"reservoir", std::to_string(cfg.reservoir.size)},
      {"reservoir_leak", fmt::format("{:.17g}", cfg.reservoir.leak)},
      {"hebbian_eps", fmt::format("{:.17g}", cfg.hebbian.eps)},
      {"slots", std::to_string(cfg.episodic.slots)},
      {"temperature", fmt::format("{:.17g}", cfg.episodic.temperature)},
      {"decay", fmt::format("{:.17g}", cfg.episodic.decay)},
      {"episodic_eps", fmt::format("{:.17g}", cfg.episodic.eps)}};
  // The torch twin implements only the default variant; refuse configs it would silently ignore.
  ENGRAM_CHECK(cfg.hebbian.top_k == 0 && !cfg.hebbian.detach_memory && cfg.episodic.top_k == 0 &&
                   cfg.episodic.recency_window == 0 && !cfg.episodic.detach_memory &&
                   cfg.use_hebbian && cfg.use_episodic && cfg.use_spectral,
               "crsd_tiny: torch_ref.py implements only the default CRSD options (no top-k, no "
               "recency window, nothing detached, every memory on)");
  return Workload{"crsd_tiny", model, loss, {{"input", ids}, {"target", target}}, meta, 0};
}

// The gated hybrid memory block in apps/memory_lm's model, built by the app code from a Config.
inline Workload make_hybrid(Generator& gen) {
  const int64_t B = 8, T = 64, V = 256;
  apps::Config cfg(apps::lm_schema("memory_lm"));
  // Every option the model reads, set here (not left at defaults that may move).
  for (auto [key, value] : std::vector<std::pair<const char*, const char*>>{
           {"model.kind", "hybrid"}, {"model.d_model", "64"}, {"model.layers", "2"},
           {"model.heads", "4"}, {"model.ff_mult", "4"}, {"model.dropout", "0"},
           {"model.window", "16"}, {"model.memory_heads", "4"}, {"model.memory_slots", "32"},
           {"model.memory_segment", "1"}, {"model.memory_policy", "ring"},
           {"model.memory_read", "softmax"}, {"model.memory_top_k", "0"},
           {"model.memory_pre_assoc", "false"}, {"model.memory_placement", "per_block"},
           {"model.titans_chunk", "8"}, {"model.titans_max_lr", "0.1"},
           {"model.hybrid_gate", "sigmoid"}})
    cfg.set(key, value, "bench hybrid");
  std::shared_ptr<apps::LanguageModel> lm = apps::make_memory_lm(cfg, V, &gen);
  std::shared_ptr<nn::Module> model(lm, &lm->module());  // shares ownership with lm
  Tensor ids = randint(0, V, {B, T}, &gen), target = randint(0, V, {B, T}, &gen);
  auto loss = [lm, ids, target] {
    apps::LMState state = lm->initial_state(ids.size(0));  // every step starts with empty memories
    return cross_entropy(lm->forward(ids, state), target);
  };
  nn::Metadata meta = {{"vocab", std::to_string(V)}};
  for (const char* key : {"model.d_model", "model.layers", "model.heads", "model.ff_mult",
                          "model.window", "model.memory_heads", "model.memory_slots",
                          "model.titans_chunk"})
    meta[std::string(key).substr(6)] = std::to_string(cfg.get_int(key));
  meta["titans_max_lr"] = fmt::format("{:.17g}", cfg.get_real("model.titans_max_lr"));
  // The variant torch_ref.py implements, which it checks: one write per token into a ring of
  // slots, softmax reads of every live slot, a bank per block, the two-source sigmoid gate.
  meta["memory_segment"] = std::to_string(cfg.get_int("model.memory_segment"));
  for (const char* key : {"model.memory_policy", "model.memory_read", "model.memory_placement",
                          "model.hybrid_gate"})
    meta[std::string(key).substr(6)] = cfg.get_string(key);
  meta["memory_top_k"] = std::to_string(cfg.get_int("model.memory_top_k"));
  meta["memory_pre_assoc"] = cfg.get_bool("model.memory_pre_assoc") ? "true" : "false";
  return Workload{"hybrid", model, loss, {{"input", ids}, {"target", target}}, meta, 0};
}

// apps/memnet's default model (configs/memnet.yaml), built by the app code from a Config, trained
// with its composite loss. Every option the model reads is set here, including the defaults the
// yaml leaves alone, so a changed default cannot move the workload.
inline Workload make_memnet(Generator& gen) {
  const int64_t B = 16, T = 128, V = 256;
  apps::Config cfg(apps::lm_schema("memnet"));
  for (auto [key, value] : std::vector<std::pair<const char*, const char*>>{
           {"model.kind", "memnet"}, {"model.d_model", "64"}, {"model.layers", "2"},
           {"model.heads", "4"}, {"model.ff_mult", "4"}, {"model.dropout", "0"},
           {"model.window", "16"}, {"model.memnet_slots", "32"}, {"model.memnet_width", "32"},
           {"model.memnet_read_heads", "2"}, {"model.memnet_write_heads", "1"},
           {"model.memnet_top_k", "4"}, {"model.memnet_bottleneck", "16"},
           {"model.memnet_segment", "4"}, {"model.memnet_address", "cosine"},
           {"model.memnet_policy", "mixed"}, {"model.memnet_graph", "true"},
           {"model.memnet_spread", "0.1"}, {"model.memnet_spread_learned", "true"},
           {"model.memnet_stdp_rate", "0.5"}, {"model.memnet_link_decay", "0.98"},
           {"model.memnet_usage_decay", "0.98"}, {"model.memnet_alloc_temperature", "0"},
           {"model.memnet_dream_every", "8"}, {"model.memnet_dream_gate", "0.1"},
           {"model.memnet_memory", "true"}, {"model.memnet_hallucination", "0.1"},
           {"model.memnet_utilization", "0.01"}, {"model.memnet_sparsity", "0.01"},
           {"train.seed", "0"}})
    cfg.set(key, value, "bench memnet");
  std::shared_ptr<apps::LanguageModel> lm = apps::make_language_model(cfg, V, &gen);
  memnet::MemNet* net = apps::memnet_of(*lm);
  ENGRAM_CHECK(net != nullptr, "memnet: model.kind=memnet did not build a memnet::MemNet");
  std::shared_ptr<nn::Module> model(lm, &lm->module());  // shares ownership with lm
  Tensor ids = randint(0, V, {B, T}, &gen), target = randint(0, V, {B, T}, &gen);
  auto loss = [lm, ids, target] {
    apps::LMState state = lm->initial_state(ids.size(0));  // every step starts with an empty memory
    Tensor ce = cross_entropy(lm->forward(ids, state), target);
    Tensor aux = lm->auxiliary_loss();  // as apps/common/train_loop.cpp adds it
    return aux.defined() ? add(ce, aux) : ce;
  };
  const memnet::MemNetConfig& c = net->cfg;
  const memnet::MemoryBankConfig& b = c.bank;
  auto real = [](double x) { return fmt::format("{:.17g}", x); };
  nn::Metadata meta = {
      {"vocab", std::to_string(c.vocab)}, {"d_model", std::to_string(c.d_model)},
      {"layers", std::to_string(c.layers)}, {"heads", std::to_string(c.heads)},
      {"window", std::to_string(c.window)}, {"ff_mult", std::to_string(c.ff_mult)},
      {"segment", std::to_string(c.segment)}, {"dream_every", std::to_string(c.dream_every)},
      {"dream_heads", std::to_string(c.dream_heads)}, {"slots", std::to_string(b.slots)},
      {"width", std::to_string(b.width)}, {"read_heads", std::to_string(b.read_heads)},
      {"write_heads", std::to_string(b.write_heads)}, {"top_k", std::to_string(b.top_k)},
      {"bottleneck", std::to_string(b.bottleneck)},
      {"address", b.address == memnet::Address::cosine ? "cosine" : "dot"},
      {"policy_uniform", b.policy_uniform ? "true" : "false"},
      {"policy_random", b.policy_random ? "true" : "false"}, {"graph", b.graph ? "true" : "false"},
      {"spread_learned", b.spread_learned ? "true" : "false"},
      {"stdp_rate", real(b.stdp_rate)}, {"link_decay", real(b.link_decay)},
      {"usage_decay", real(b.usage_decay)}, {"alloc_temperature", real(b.alloc_temperature)},
      {"random_seed", std::to_string(b.seed)},
      {"l_hallucination", real(cfg.get_real("model.memnet_hallucination"))},
      {"l_utilization", real(cfg.get_real("model.memnet_utilization"))},
      {"l_sparsity", real(cfg.get_real("model.memnet_sparsity"))}};
  // The variant torch_ref.py implements (it checks these): memory on, cosine addresses, all three
  // policies, the graph with a learned spread, hard allocation, no dropout.
  ENGRAM_CHECK(c.memory && c.dropout == 0 && b.address == memnet::Address::cosine &&
                   b.policy_uniform && b.policy_random && b.graph && b.spread_learned &&
                   b.alloc_temperature == 0 && c.dream_every > 0 && b.top_k < b.slots,
               "memnet: torch_ref.py implements only the default MemNet variant");
  return Workload{"memnet", model, loss, {{"input", ids}, {"target", target}}, meta, 0};
}

// crsd_tiny's state-space language models (apps/common/ssm_lm.h) at the app's size: the model of
// apps/crsd_tiny/configs/<kind>.yaml (read from the repository root, where `make bench` runs) on
// crsd_tiny's batch, from a zero state every step, the final state without its graph (as the
// training loop, which detaches it after each step). Every model.* key goes into the metadata, so
// torch_ssm.py builds the same model; its layers are tests/golden/torch_ssm_*.py's references.
inline Workload make_ssm_lm(const std::string& kind, Generator& gen) {
  const std::string path = "apps/crsd_tiny/configs/" + kind + ".yaml";
  apps::Config cfg(apps::lm_schema("crsd_tiny"));
  ENGRAM_CHECK(std::filesystem::exists(path), "{}: {} not found (run the bench from the repository "
               "root)", kind, path);
  cfg.merge_yaml_file(path);
  ENGRAM_CHECK(cfg.get_string("model.kind") == kind, "{}: {} has model.kind={}", kind, path,
               cfg.get_string("model.kind"));
  const int64_t B = cfg.get_int("train.batch"), T = cfg.get_int("train.seq_len"), V = 256;
  std::shared_ptr<apps::LanguageModel> lm = apps::make_language_model(cfg, V, &gen);
  std::shared_ptr<nn::Module> model(lm, &lm->module());  // shares ownership with lm
  Tensor ids = randint(0, V, {B, T}, &gen), target = randint(0, V, {B, T}, &gen);
  auto loss = [lm, ids, target] {
    apps::LMState state = lm->initial_state(ids.size(0));
    // as apps/common/train_loop.cpp: the final state is dropped, so it is computed as values only
    nn::ssm::NoStateGradGuard state_values_only;
    return cross_entropy(lm->forward(ids, state), target);
  };
  nn::Metadata meta = {{"vocab", std::to_string(V)}};
  for (const apps::FieldSpec& f : cfg.schema().fields())
    if (f.key.rfind("model.", 0) == 0) meta[f.key] = cfg.value_str(f.key);
  return Workload{kind, model, loss, {{"input", ids}, {"target", target}}, meta, 0};
}

// EpiNetModel's encoder and decoder, under its child names, with the memory given as data.
class EpiNetStep : public nn::Module {
 public:
  EpiNetStep(int64_t d, int64_t hidden, int64_t classes, int64_t experts, Generator* gen) {
    encoder = register_module("encoder", std::make_shared<epinet::ConvEncoder>(d, gen));
    decoder = register_module("decoder", std::make_shared<nn::MixtureOfExperts>(
                                             2 * d, hidden, classes, experts, 0,
                                             nn::ActivationKind::relu, gen));
  }
  Tensor forward(const Tensor& x, const Tensor& keys, const Tensor& salience, int64_t top_k) {
    Tensor z = encoder->forward(x);
    epinet::RecallOptions o;
    o.top_k = top_k;
    return decoder->forward(cat({z, epinet::recall(z, keys, salience, o)}, -1)).output;
  }
  std::string type_name() const override { return "EpiNetStep"; }
  std::shared_ptr<epinet::ConvEncoder> encoder;
  std::shared_ptr<nn::MixtureOfExperts> decoder;
};

inline Workload make_epinet(Generator& gen) {
  const int64_t B = 64, d = 128, M = 256, top_k = 8;
  auto model = std::make_shared<EpiNetStep>(d, 128, 10, 4, &gen);
  Tensor x = rand({B, 1, 28, 28}, DType::f32, &gen), y = randint(0, 10, {B}, &gen);
  Tensor xr = rand({B, 1, 28, 28}, DType::f32, &gen), yr = randint(0, 10, {B}, &gen);
  Tensor keys = randn({M, d}, DType::f32, &gen), salience = rand({M}, DType::f32, &gen);
  auto loss = [model, x, y, xr, yr, keys, salience] {
    return add(cross_entropy(model->forward(x, keys, salience, top_k), y),
               mul(cross_entropy(model->forward(xr, keys, salience, top_k), yr), 0.5));
  };
  Workload w{"epinet", model, loss,
             {{"input", x}, {"target", y}, {"replay_input", xr}, {"replay_target", yr},
              {"keys", keys}, {"salience", salience}},
             {{"d", std::to_string(d)}, {"hidden", "128"}, {"classes", "10"}, {"experts", "4"},
              {"top_k", std::to_string(top_k)}, {"beta", "0.5"}, {"eps", "1e-08"}},
             0};
  return w;
}

// Builds the named workload from its own generator seeded with `seed`.
inline Workload make_workload(const std::string& name, uint64_t seed) {
  Generator gen(seed);
  Workload w;
  if (name == "mlp") w = make_mlp(gen);
  else if (name == "cnn") w = make_cnn(gen);
  else if (name == "lstm") w = make_lstm(gen);
  else if (name == "transformer") w = make_transformer(gen);
  else if (name == "spectral") w = make_spectral(gen);
  else if (name == "hebbian") w = make_hebbian(gen);
  else if (name == "epinet") w = make_epinet(gen);
  else if (name == "crsd_tiny") w = make_crsd_tiny(gen);
  else if (name == "hybrid") w = make_hybrid(gen), w.meta["check_tolerance"] = "5e-7";
  else if (name == "memnet") w = make_memnet(gen), w.meta["check_tolerance"] = "5e-7";
  else if (apps::is_ssm_lm_kind(name)) w = make_ssm_lm(name, gen);
  else ENGRAM_FAIL("unknown workload '{}' (known: {})", name, fmt::join(workload_names(), ", "));
  w.meta["workload"] = name;
  return w;
}

// Writes the model's parameters and buffers under their own names and the batch under
// "data.<name>", with the metadata, for torch_ref.py to load.
inline void export_workload(const Workload& w, const std::string& path) {
  nn::NamedTensors tensors = w.model->named_parameters();
  for (auto& b : w.model->named_buffers()) tensors.push_back(b);
  for (auto& [name, t] : w.data) tensors.emplace_back("data." + name, t);
  nn::save_safetensors(path, tensors, w.meta);
}

}  // namespace engram::bench
