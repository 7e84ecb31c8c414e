// tests/test_layers.cpp — every layer of nn/ gradchecked in f64 with respect to its inputs and
// every parameter, plus value tests (state carrying, masks, gates) and error messages.
//
// A module is checked by converting it to f64 (module.to(DType::f64)) and passing its parameter
// tensors to gradcheck next to the inputs; gradcheck perturbs them in place, so the closure just
// runs the module and ignores its argument list.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>

#include "autograd/gradcheck.h"
#include "nn/attention.h"
#include "nn/layers.h"
#include "nn/losses.h"
#include "nn/moe.h"
#include "nn/recurrent.h"
#include "nn/spectral.h"
#include "tests/test_util.h"

using namespace engram;
using namespace engram::testing;
namespace F = engram::nn::functional;

namespace {

Tensor rnd(const Shape& s, Generator& g) { return randn(s, DType::f64, &g); }

// Flattens and joins several outputs, so one gradcheck covers all of them.
Tensor join(const std::vector<Tensor>& ys) {
  std::vector<Tensor> flat;
  for (const Tensor& y : ys) flat.push_back(reshape(y, {-1}));
  return cat(flat, 0);
}

// Gradchecks run() with respect to `inputs` and every parameter of `m` (already f64). On failure
// the message names the tensor by its index in [inputs..., parameters...] and lists the names.
void check_module(const std::string& what, const nn::Module& m, const std::vector<Tensor>& inputs,
                  const std::function<Tensor()>& run) {
  std::vector<Tensor> all = inputs;
  std::string legend;
  for (size_t i = 0; i < inputs.size(); ++i) legend += fmt::format("{}=input{} ", i, i);
  for (auto& [name, p] : m.named_parameters()) {
    REQUIRE_MESSAGE(p.dtype() == DType::f64, what << ": parameter " << name << " is not f64");
    legend += fmt::format("{}={} ", all.size(), name);
    all.push_back(p);
  }
  GradcheckResult res = gradcheck([&](const std::vector<Tensor>&) { return run(); }, all,
                                  std::vector<bool>(all.size(), true));
  CHECK_MESSAGE(res.ok, what << ": " << res.message << " [" << legend << "]");
}

// Same for a plain function of its inputs.
void check_fn(const std::string& what, const std::vector<Tensor>& inputs, const TensorFn& fn) {
  GradcheckResult res = gradcheck(fn, inputs, std::vector<bool>(inputs.size(), true));
  CHECK_MESSAGE(res.ok, what << ": " << res.message);
}

}  // namespace

// ================================================================ basic layers
TEST_CASE("layers: Linear gradcheck (with and without bias)") {
  Generator g(1);
  for (bool bias : {true, false}) {
    nn::Linear lin(4, 3, bias, &g);
    lin.to(DType::f64);
    Tensor x = rnd({2, 3, 4}, g);
    check_module(fmt::format("Linear bias={}", bias), lin, {x}, [&] { return lin(x); });
  }
}

TEST_CASE("layers: Embedding gradcheck, and the padding row gets no gradient") {
  Generator g(2);
  Tensor ids = from_vector<int64_t>({0, 1, 4, 4, 2, 1}, {2, 3});
  nn::Embedding emb(5, 3, -1, &g);
  emb.to(DType::f64);
  check_module("Embedding", emb, {}, [&] { return emb(ids); });
  // with padding_idx the forward still reads row 1 but its gradient is dropped on purpose, so
  // it is checked by value (a numerical gradcheck would see the row's effect)
  nn::Embedding padded(5, 3, /*padding_idx=*/1, &g);
  for (double v : slice(padded.weight, 0, 1, 2).to_vector<double>()) CHECK(v == 0.0);
  backward(sum(padded(ids)));
  std::vector<double> gw = padded.weight.grad().to_vector<double>();
  for (int64_t d = 0; d < 3; ++d) CHECK(gw[1 * 3 + d] == 0.0);  // padding row
  CHECK(gw[4 * 3] == doctest::Approx(2.0));                     // id 4 used twice
}

TEST_CASE("layers: LayerNorm and RMSNorm gradcheck") {
  Generator g(3);
  nn::LayerNorm ln(4);
  ln.to(DType::f64);
  // perturb the affine parameters away from 1/0 so their gradients are non-trivial
  raw::copy_(ln.weight, rnd({4}, g));
  raw::copy_(ln.bias, rnd({4}, g));
  Tensor x = rnd({2, 3, 4}, g);
  check_module("LayerNorm", ln, {x}, [&] { return ln(x); });
  nn::LayerNorm plain(4, 1e-5, /*affine=*/false);
  plain.to(DType::f64);
  check_module("LayerNorm affine=false", plain, {x}, [&] { return plain(x); });
  nn::RMSNorm rms(4);
  rms.to(DType::f64);
  raw::copy_(rms.weight, rnd({4}, g));
  check_module("RMSNorm", rms, {x}, [&] { return rms(x); });
}

TEST_CASE("layers: Dropout in eval is the identity, in training a fixed-seed mask") {
  Generator g(4), mask_gen(99);
  nn::Dropout drop(0.4, &mask_gen);
  Tensor x = rnd({3, 5}, g);
  drop.eval();
  CHECK(max_abs_diff(drop(x), x) == 0.0);
  check_fn("Dropout eval", {x}, [&](const std::vector<Tensor>&) { return mul(drop(x), 1.0); });
  drop.train();
  mask_gen.manual_seed(7);
  std::vector<double> y = drop(x).to_vector<double>(), xv = x.to_vector<double>();
  int zeros_seen = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    if (y[i] == 0.0)
      ++zeros_seen;
    else
      CHECK(y[i] == doctest::Approx(xv[i] / 0.6));
  }
  CHECK(zeros_seen > 0);
  CHECK(zeros_seen < (int)y.size());
  // reseeding inside the closure gives every gradcheck evaluation the same mask
  check_module("Dropout train", drop, {x}, [&] {
    mask_gen.manual_seed(7);
    return drop(x);
  });
}

TEST_CASE("layers: Conv2d, MaxPool2d, AvgPool2d, Flatten gradcheck") {
  Generator g(5);
  nn::Conv2d conv(2, 3, 3, /*stride=*/1, /*padding=*/1, 1, true, &g);
  conv.to(DType::f64);
  Tensor x = rnd({2, 2, 4, 4}, g);
  check_module("Conv2d", conv, {x}, [&] { return conv(x); });
  nn::Conv2d strided(2, 2, 2, /*stride=*/2, 0, 1, /*bias=*/false, &g);
  strided.to(DType::f64);
  check_module("Conv2d stride 2 no bias", strided, {x}, [&] { return strided(x); });
  nn::MaxPool2d maxp(2);
  check_module("MaxPool2d", maxp, {x}, [&] { return maxp(x); });
  nn::AvgPool2d avgp(3, 1, 1);
  check_module("AvgPool2d", avgp, {x}, [&] { return avgp(x); });
  nn::Flatten flat;
  check_module("Flatten", flat, {x}, [&] { return flat(x); });
  CHECK(flat(x).shape() == Shape({2, 32}));
}

TEST_CASE("layers: activations gradcheck") {
  Generator g(6);
  Tensor x = rnd({2, 5}, g);
  for (auto kind :
       {nn::ActivationKind::relu, nn::ActivationKind::gelu, nn::ActivationKind::gelu_tanh,
        nn::ActivationKind::tanh, nn::ActivationKind::sigmoid, nn::ActivationKind::silu,
        nn::ActivationKind::leaky_relu, nn::ActivationKind::softplus}) {
    nn::Activation act(kind);
    check_module(act.type_name(), act, {x}, [&] { return act(x); });
  }
}

TEST_CASE("layers: Sequential conv net gradcheck") {
  Generator g(7);
  auto net = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::UnaryModule>>{
      std::make_shared<nn::Conv2d>(1, 2, 3, 1, 1, 1, true, &g), nn::ReLU(),
      std::make_shared<nn::MaxPool2d>(2), std::make_shared<nn::Flatten>(),
      std::make_shared<nn::Linear>(8, 3, true, &g)});
  net->to(DType::f64);
  Tensor x = rnd({2, 1, 4, 4}, g);
  check_module("Sequential", *net, {x}, [&] { return (*net)(x); });
  CHECK((*net)(x).shape() == Shape({2, 3}));
}

// ================================================================ recurrent
TEST_CASE("layers: LSTM parameter names and shapes are PyTorch's") {
  nn::LSTM lstm(4, 3, 2);
  std::vector<std::string> names;
  for (auto& [n, p] : lstm.named_parameters()) names.push_back(n + shape_str(p.shape()));
  CHECK(names == std::vector<std::string>{"weight_ih_l0[12, 4]", "weight_hh_l0[12, 3]",
                                          "bias_ih_l0[12]", "bias_hh_l0[12]", "weight_ih_l1[12, 3]",
                                          "weight_hh_l1[12, 3]", "bias_ih_l1[12]",
                                          "bias_hh_l1[12]"});
  nn::GRU gru(4, 3, 1, /*bias=*/false);
  CHECK(gru.num_parameters() == 9 * 4 + 9 * 3);
  double bound = 1.0 / std::sqrt(3.0);
  for (double v : lstm.parameters()[0].to_vector<double>()) CHECK(std::abs(v) <= bound);
}

TEST_CASE("layers: LSTM and GRU gradcheck (inputs, initial state, every parameter)") {
  Generator g(8);
  const int64_t B = 2, T = 3, C = 4, H = 3, L = 2;
  nn::LSTM lstm(C, H, L, true, 0.0, &g);
  lstm.to(DType::f64);
  Tensor x = rnd({B, T, C}, g), h0 = rnd({L, B, H}, g), c0 = rnd({L, B, H}, g);
  check_module("LSTM", lstm, {x, h0, c0}, [&] {
    nn::LSTMOutput o = lstm(x, {h0, c0});
    return join({o.output, o.h_n, o.c_n});
  });
  nn::LSTM lstm_nb(C, H, 1, /*bias=*/false, 0.0, &g);
  lstm_nb.to(DType::f64);
  check_module("LSTM bias=false", lstm_nb, {x}, [&] { return lstm_nb(x).output; });

  nn::GRU gru(C, H, L, true, 0.0, &g);
  gru.to(DType::f64);
  check_module("GRU", gru, {x, h0}, [&] {
    nn::GRUOutput o = gru(x, h0);
    return join({o.output, o.h_n});
  });
  nn::GRU gru_nb(C, H, 1, /*bias=*/false, 0.0, &g);
  gru_nb.to(DType::f64);
  check_module("GRU bias=false", gru_nb, {x}, [&] { return gru_nb(x).output; });
}

TEST_CASE("layers: LSTM and GRU step by step equal the sequence call") {
  Generator g(9);
  const int64_t B = 2, T = 4, C = 3, H = 5, L = 2;
  nn::LSTM lstm(C, H, L, true, 0.0, &g);
  nn::GRU gru(C, H, L, true, 0.0, &g);
  Tensor x = randn({B, T, C}, DType::f32, &g);
  NoGradGuard ng;
  nn::LSTMOutput full = lstm(x);
  nn::GRUOutput gfull = gru(x);
  nn::LSTMState state;
  Tensor gh;
  std::vector<Tensor> outs, gouts;
  for (int64_t t = 0; t < T; ++t) {
    nn::LSTMOutput step = lstm(slice(x, 1, t, t + 1), state);
    outs.push_back(step.output);
    state = step.state();
    nn::GRUOutput gstep = gru(slice(x, 1, t, t + 1), gh);
    gouts.push_back(gstep.output);
    gh = gstep.h_n;
  }
  CHECK(full.output.shape() == Shape({B, T, H}));
  CHECK(full.h_n.shape() == Shape({L, B, H}));
  CHECK(max_abs_diff(cat(outs, 1), full.output) < 1e-6);
  CHECK(max_abs_diff(state.h, full.h_n) < 1e-6);
  CHECK(max_abs_diff(state.c, full.c_n) < 1e-6);
  CHECK(max_abs_diff(cat(gouts, 1), gfull.output) < 1e-6);
  CHECK(max_abs_diff(gh, gfull.h_n) < 1e-6);
  // the last layer's final h is the output's last step
  CHECK(max_abs_diff(select(full.h_n, 0, L - 1), select(full.output, 1, T - 1)) == 0.0);
}

// ================================================================ attention
TEST_CASE("layers: MultiHeadAttention parameters are PyTorch's") {
  nn::MultiHeadAttention mha(4, 2);
  std::vector<std::string> names;
  for (auto& [n, p] : mha.named_parameters()) names.push_back(n + shape_str(p.shape()));
  CHECK(names == std::vector<std::string>{"in_proj_weight[12, 4]", "in_proj_bias[12]",
                                          "out_proj.weight[4, 4]", "out_proj.bias[4]"});
  for (double v : mha.in_proj_bias.to_vector<double>()) CHECK(v == 0.0);
  for (double v : mha.out_proj->bias.to_vector<double>()) CHECK(v == 0.0);
  double a = std::sqrt(6.0 / (4 + 12));  // xavier_uniform_ bound for [12, 4]
  for (double v : mha.in_proj_weight.to_vector<double>()) CHECK(std::abs(v) <= a);
  CHECK_THROWS_WITH(nn::MultiHeadAttention(5, 2), doctest::Contains("multiple of num_heads"));
}

TEST_CASE("layers: MultiHeadAttention gradcheck (self, cross with memory, masks, weights)") {
  Generator g(10);
  const int64_t B = 2, T = 3, Tk = 4, E = 4;
  nn::MultiHeadAttention mha(E, 2, true, 0.0, &g);
  mha.to(DType::f64);
  Tensor x = rnd({B, T, E}, g), mem = rnd({B, Tk, E}, g), val = rnd({B, Tk, E}, g);
  check_module("MHA self", mha, {x}, [&] { return mha(x, x, x).output; });
  nn::AttentionOptions causal;
  causal.causal = true;
  check_module("MHA self causal", mha, {x}, [&] { return mha(x, x, x, causal).output; });
  nn::AttentionOptions pad;
  pad.key_padding_mask = from_vector<double>({0, 0, 1, 1, 0, 0, 0, 1}, {B, Tk});
  pad.weights = nn::AttentionWeights::averaged;
  check_module("MHA cross, key padding, averaged weights", mha, {x, mem, val}, [&] {
    nn::AttentionOutput o = mha(x, mem, val, pad);
    return join({o.output, o.weights});
  });
  nn::AttentionOptions causal_mem;  // 3 queries that are the last 3 of 4 keys
  causal_mem.causal = true;
  causal_mem.weights = nn::AttentionWeights::per_head;
  check_module("MHA causal over memory, per-head weights", mha, {x, mem}, [&] {
    nn::AttentionOutput o = mha(x, mem, mem, causal_mem);
    return join({o.output, o.weights});
  });
  nn::MultiHeadAttention nobias(E, 1, /*bias=*/false, 0.0, &g);
  nobias.to(DType::f64);
  check_module("MHA bias=false", nobias, {x}, [&] { return nobias(x, x, x).output; });
  Generator drop_gen(3);
  nn::MultiHeadAttention dropped(E, 2, true, 0.3, &drop_gen);
  dropped.to(DType::f64);
  check_module("MHA attention dropout (training, fixed seed)", dropped, {x}, [&] {
    drop_gen.manual_seed(11);
    return dropped(x, x, x).output;
  });
}

TEST_CASE("layers: causal attention output at t ignores inputs after t") {
  Generator g(11);
  const int64_t B = 2, T = 5, E = 6;
  nn::MultiHeadAttention mha(E, 3, true, 0.0, &g);
  NoGradGuard ng;
  Tensor x = randn({B, T, E}, DType::f32, &g);
  nn::AttentionOptions opt;
  opt.causal = true;
  Tensor y = mha(x, x, x, opt).output;
  for (int64_t t = 0; t + 1 < T; ++t) {
    Tensor x2 = raw::clone(x);
    raw::copy_(slice(x2, 1, t + 1, T), randn({B, T - t - 1, E}, DType::f32, &g));
    Tensor y2 = mha(x2, x2, x2, opt).output;
    CHECK(max_abs_diff(slice(y2, 1, 0, t + 1), slice(y, 1, 0, t + 1)) < 1e-6);
    CHECK(max_abs_diff(slice(y2, 1, t + 1, T), slice(y, 1, t + 1, T)) > 1e-4);
  }
  // the last 2 queries against all T keys (a KV cache) give the last 2 rows of the full pass
  Tensor tail = slice(x, 1, T - 2, T);
  Tensor y_tail = mha(tail, x, x, opt).output;
  CHECK(max_abs_diff(y_tail, slice(y, 1, T - 2, T)) < 1e-5);
  CHECK_THROWS_WITH(mha(x, tail, tail, opt), doctest::Contains("causal mask needs Tq <= Tk"));
}

TEST_CASE("layers: key-padding mask gives padded keys zero attention weight") {
  Generator g(12);
  const int64_t B = 2, Tq = 3, Tk = 4, E = 4;
  nn::MultiHeadAttention mha(E, 2, true, 0.0, &g);
  Tensor q = randn({B, Tq, E}, DType::f32, &g), kv = randn({B, Tk, E}, DType::f32, &g);
  nn::AttentionOptions opt;
  opt.key_padding_mask = from_vector<int64_t>({0, 1, 0, 1, 0, 0, 0, 1}, {B, Tk});
  opt.weights = nn::AttentionWeights::per_head;
  nn::AttentionOutput o = mha(q, kv, kv, opt);
  REQUIRE(o.weights.shape() == Shape({B, 2, Tq, Tk}));
  std::vector<double> w = o.weights.to_vector<double>();
  std::vector<int64_t> m = opt.key_padding_mask.to_vector<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t r = 0; r < 2 * Tq; ++r) {
      double row = 0;
      for (int64_t j = 0; j < Tk; ++j) {
        double v = w[(b * 2 * Tq + r) * Tk + j];
        row += v;
        if (m[b * Tk + j])
          CHECK(v == 0.0);
        else
          CHECK(v > 0.0);
      }
      CHECK(row == doctest::Approx(1.0));
    }
  opt.weights = nn::AttentionWeights::averaged;
  CHECK(mha(q, kv, kv, opt).weights.shape() == Shape({B, Tq, Tk}));
  opt.key_padding_mask = zeros({B, Tq});
  CHECK_THROWS_WITH(mha(q, kv, kv, opt),
                    doctest::Contains("key_padding_mask must be [B=2, Tk=4], got [2, 3]"));
}

TEST_CASE("layers: TransformerBlock gradcheck and PyTorch names") {
  Generator g(13);
  nn::TransformerBlock block(4, 2, 6, /*causal=*/true, 0.0, &g);
  std::vector<std::string> names;
  for (auto& [n, p] : block.named_parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"self_attn.in_proj_weight", "self_attn.in_proj_bias",
                                          "self_attn.out_proj.weight", "self_attn.out_proj.bias",
                                          "linear1.weight", "linear1.bias", "linear2.weight",
                                          "linear2.bias", "norm1.weight", "norm1.bias",
                                          "norm2.weight", "norm2.bias"});
  block.to(DType::f64);
  Tensor x = rnd({2, 3, 4}, g);
  check_module("TransformerBlock causal", block, {x}, [&] { return block(x); });
  Tensor pad = from_vector<double>({0, 0, 1, 0, 0, 0}, {2, 3});
  nn::TransformerBlock enc(4, 1, -1, false, 0.0, &g);
  enc.to(DType::f64);
  CHECK(enc.ff_dim == 16);
  check_module("TransformerBlock key padding", enc, {x}, [&] { return enc.forward(x, pad); });
  Generator drop_gen(5);
  nn::TransformerBlock dropped(4, 2, 6, false, 0.2, &drop_gen);
  dropped.to(DType::f64);
  check_module("TransformerBlock dropout (training, fixed seed)", dropped, {x}, [&] {
    drop_gen.manual_seed(3);
    return dropped(x);
  });
  dropped.eval();
  CHECK(max_abs_diff(dropped(x), dropped(x)) == 0.0);
}

// ================================================================ mixture of experts
TEST_CASE("layers: MixtureOfExperts gradcheck (dense and top-k)") {
  Generator g(14);
  Tensor x = rnd({2, 3, 4}, g);
  nn::MixtureOfExperts dense(4, 5, 3, 3, 0, nn::ActivationKind::gelu, &g);
  dense.to(DType::f64);
  check_module("MoE dense", dense, {x}, [&] {
    nn::MoEOutput o = dense(x);
    return join({o.output, o.gate_probs});
  });
  nn::MixtureOfExperts sparse(4, 5, 3, 4, 2, nn::ActivationKind::tanh, &g);
  sparse.to(DType::f64);
  check_module("MoE top-2", sparse, {x}, [&] {
    nn::MoEOutput o = sparse(x);
    return join({o.output, o.gates});
  });
}

TEST_CASE("layers: MixtureOfExperts gates sum to 1 and top-k keeps k experts") {
  Generator g(15);
  nn::MixtureOfExperts moe(4, 8, 2, 5, 2, nn::ActivationKind::relu, &g);
  Tensor x = randn({3, 6, 4}, DType::f32, &g);
  nn::MoEOutput o = moe(x);
  CHECK(o.output.shape() == Shape({3, 6, 2}));
  REQUIRE(o.gate_probs.shape() == Shape({3, 6, 5}));
  std::vector<double> p = o.gate_probs.to_vector<double>(), w = o.gates.to_vector<double>();
  for (int64_t r = 0; r < 18; ++r) {
    double sp = 0, sw = 0;
    int nonzero = 0;
    for (int64_t e = 0; e < 5; ++e) {
      sp += p[r * 5 + e];
      sw += w[r * 5 + e];
      nonzero += w[r * 5 + e] != 0.0;
    }
    CHECK(sp == doctest::Approx(1.0));
    CHECK(sw == doctest::Approx(1.0));
    CHECK(nonzero == 2);
  }
  // dense gating with identical experts reproduces that expert
  nn::MixtureOfExperts same(4, 8, 2, 3, 0, nn::ActivationKind::relu, &g);
  for (int e = 1; e < 3; ++e)
    for (auto [src, dst] : {std::pair{same.experts[0]->fc1, same.experts[e]->fc1},
                            std::pair{same.experts[0]->fc2, same.experts[e]->fc2}}) {
      raw::copy_(dst->weight, src->weight);
      raw::copy_(dst->bias, src->bias);
    }
  CHECK(max_abs_diff(same(x).output, same.experts[0]->forward(x)) < 1e-5);
  CHECK_THROWS_WITH(nn::MixtureOfExperts(4, 8, 2, 3, 4), doctest::Contains("top_k=4"));
}

// ================================================================ spectral
TEST_CASE("layers: SpectralMix gradcheck (even and odd width) and identity filter at init") {
  Generator g(16);
  for (int64_t F : {6, 5}) {
    nn::SpectralMix mix(F, /*init_noise=*/0.3, &g);
    CHECK(mix.filter.shape() == Shape({F / 2 + 1, 2}));
    mix.to(DType::f64);
    Tensor x = rnd({2, 3, F}, g);
    check_module(fmt::format("SpectralMix F={}", F), mix, {x}, [&] { return mix(x); });
  }
  nn::SpectralMix ident(8, 0.0, &g);
  Tensor x = randn({2, 8}, DType::f32, &g);
  NoGradGuard ng;
  CHECK(max_abs_diff(ident(x), ident.proj->forward(ident.norm->forward(x))) < 1e-5);
}

// ================================================================ losses
TEST_CASE("layers: losses gradcheck") {
  Generator g(17);
  Tensor logits = rnd({2, 3, 4}, g);
  Tensor target = from_vector<int64_t>({0, 3, 1, 2, 2, -100}, {2, 3});
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none})
    check_fn(fmt::format("cross_entropy {}", nn::reduction_name(r)), {logits},
             [&](const std::vector<Tensor>& in) {
               return F::cross_entropy(in[0], target, -100, 0.1, r);
             });
  Tensor a = rnd({3, 4}, g), b = rnd({3, 4}, g);
  check_fn("mse_loss", {a, b},
           [](const std::vector<Tensor>& in) { return F::mse_loss(in[0], in[1]); });
  Tensor y = rand({3, 4}, DType::f64, &g), pw = add(rand({4}, DType::f64, &g), 0.5);
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    check_fn("bce_with_logits", {a, y}, [r](const std::vector<Tensor>& in) {
      return F::binary_cross_entropy_with_logits(in[0], in[1], r);
    });
    check_fn("bce_with_logits pos_weight", {a, y, pw}, [r](const std::vector<Tensor>& in) {
      return F::binary_cross_entropy_with_logits(in[0], in[1], r, in[2]);
    });
  }
  Tensor p = softmax(rnd({3, 5}, g), -1);
  check_fn("entropy", {p}, [](const std::vector<Tensor>& in) { return F::entropy(in[0], -1); });
  check_fn("entropy_from_logits", {a},
           [](const std::vector<Tensor>& in) { return F::entropy_from_logits(in[0], 0); });
  Tensor logq = log_softmax(rnd({3, 5}, g), -1), tp = softmax(rnd({3, 5}, g), -1);
  for (auto r : {nn::KLReduction::mean, nn::KLReduction::batchmean, nn::KLReduction::sum,
                 nn::KLReduction::none}) {
    check_fn(fmt::format("kl_div {}", nn::reduction_name(r)), {logq, tp},
             [r](const std::vector<Tensor>& in) { return F::kl_div(in[0], in[1], r); });
    check_fn(fmt::format("kl_div log_target {}", nn::reduction_name(r)), {logq, log(tp)},
             [r](const std::vector<Tensor>& in) { return F::kl_div(in[0], in[1], r, true); });
  }
}

TEST_CASE("layers: loss values") {
  // BCE with logits stays finite far out and matches the naive formula near 0
  Tensor x = from_vector<double>({-100, -2, 0.5, 3, 100}, {5});
  Tensor y = from_vector<double>({0, 1, 0, 1, 0}, {5});
  std::vector<double> l =
      F::binary_cross_entropy_with_logits(x, y, Reduction::none).to_vector<double>();
  std::vector<double> xv = x.to_vector<double>(), yv = y.to_vector<double>();
  CHECK(l[0] == doctest::Approx(0.0));
  CHECK(l[4] == doctest::Approx(100.0));
  for (int i = 1; i < 4; ++i) {
    double s = 1 / (1 + std::exp(-xv[i]));
    CHECK(l[i] == doctest::Approx(-(yv[i] * std::log(s) + (1 - yv[i]) * std::log(1 - s))));
  }
  nn::BCEWithLogitsLoss bce;
  CHECK(bce(x, y).item() == doctest::Approx((l[0] + l[1] + l[2] + l[3] + l[4]) / 5));
  // pos_weight multiplies the positive term only: for y = 1 the loss is pw * -log sigmoid(x)
  Tensor pw = from_vector<double>({3.0}, {1});
  Tensor x1 = from_vector<double>({0.7}, {1}), y1 = from_vector<double>({1.0}, {1});
  CHECK(F::binary_cross_entropy_with_logits(x1, y1, Reduction::sum, pw).item() ==
        doctest::Approx(3.0 * std::log(1 + std::exp(-0.7))));

  // entropy: uniform over 4 is log 4; a one-hot has 0
  Tensor u = full({2, 4}, 0.25, DType::f64);
  CHECK(F::entropy(u).to_vector<double>()[0] == doctest::Approx(std::log(4.0)));
  CHECK(F::entropy(from_vector<double>({0, 1, 0}, {3})).item() == doctest::Approx(0.0));
  CHECK(F::entropy_from_logits(zeros({4}, DType::f64)).item() == doctest::Approx(std::log(4.0)));

  // kl_div: KL(p || p) = 0; zero target entries contribute 0; batchmean = sum / batch
  Tensor p = from_vector<double>({0.5, 0.5, 0.0, 0.2, 0.3, 0.5}, {2, 3});
  Tensor q = from_vector<double>({0.25, 0.25, 0.5, 0.1, 0.1, 0.8}, {2, 3});
  Tensor logq = log(q);
  double expect = 0.5 * std::log(2.0) * 2 + 0.2 * std::log(2.0) + 0.3 * std::log(3.0) +
                  0.5 * std::log(0.5 / 0.8);
  CHECK(F::kl_div(logq, p, nn::KLReduction::sum).item() == doctest::Approx(expect));
  CHECK(F::kl_div(logq, p, nn::KLReduction::batchmean).item() == doctest::Approx(expect / 2));
  CHECK(F::kl_div(logq, p, nn::KLReduction::mean).item() == doctest::Approx(expect / 6));
  nn::KLDivLoss kl(nn::KLReduction::batchmean, /*log_target=*/true);
  CHECK(kl(logq, log(q)).item() == doctest::Approx(0.0));

  // the wrappers agree with the ops and keep per-element shapes
  Tensor z = from_vector<double>({1, 2, 0.5, -1, 0, 3}, {1, 2, 3});
  Tensor t = from_vector<int64_t>({2, 0}, {1, 2});
  nn::CrossEntropyLoss ce(-100, 0.0, Reduction::none);
  Tensor per = ce(z, t);
  CHECK(per.shape() == Shape({1, 2}));
  double lse0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(0.5));
  CHECK(per.to_vector<double>()[0] == doctest::Approx(lse0 - 0.5));
  nn::MSELoss mse;
  CHECK(mse(x, y).item() == doctest::Approx(F::mse_loss(x, y).item()));
  CHECK_THROWS_WITH(mse(x, z), doctest::Contains("mse_loss: input [5] and target [1, 2, 3]"));
  CHECK_THROWS_WITH(F::kl_div(logq, x), doctest::Contains("kl_div"));
}

// ================================================================ shapes, errors, summary
TEST_CASE("layers: shape errors name the module and the shapes") {
  Tensor bad = zeros({2, 5});
  CHECK_THROWS_WITH(nn::Linear(4, 3)(bad),
                    doctest::Contains("Linear: expected input [..., 4], got [2, 5]"));
  CHECK_THROWS_WITH(nn::LayerNorm(4)(bad),
                    doctest::Contains("LayerNorm: expected input [..., 4], got [2, 5]"));
  CHECK_THROWS_WITH(
      nn::LSTM(4, 3)(zeros({2, 3, 5})),
      doctest::Contains("LSTM: expected input [B, T, 4] (batch first), got [2, 3, 5]"));
  CHECK_THROWS_WITH(nn::GRU(4, 3)(bad), doctest::Contains("GRU: expected input [B, T, 4]"));
  nn::LSTMState wrong{zeros({1, 3, 3}), Tensor()};
  CHECK_THROWS_WITH(nn::LSTM(4, 3)(zeros({2, 3, 4}), wrong),
                    doctest::Contains("LSTM: expected h0 [num_layers=1, B=2, H=3], got [1, 3, 3]"));
  nn::MultiHeadAttention mha(4, 2);
  Tensor q = zeros({2, 3, 4});
  CHECK_THROWS_WITH(mha(q, zeros({2, 3, 6}), q),
                    doctest::Contains("MultiHeadAttention: expected query"));
  CHECK_THROWS_WITH(mha(q, zeros({1, 3, 4}), zeros({1, 3, 4})),
                    doctest::Contains("batch/length mismatch"));
  CHECK_THROWS_WITH(nn::TransformerBlock(4, 2)(bad),
                    doctest::Contains("TransformerBlock: expected input [B, T, 4], got [2, 5]"));
  CHECK_THROWS_WITH(nn::MixtureOfExperts(4, 3, 2, 2)(bad),
                    doctest::Contains("MixtureOfExperts: expected input [..., 4], got [2, 5]"));
  CHECK_THROWS_WITH(nn::SpectralMix(4)(bad),
                    doctest::Contains("SpectralMix: expected input [..., 4], got [2, 5]"));
  CHECK_THROWS_WITH(nn::LSTM(0, 3), doctest::Contains("LSTM: sizes must be positive"));
}

TEST_CASE("layers: summary prints the module tree with parameter counts") {
  Generator g(19);
  nn::Sequential net({std::make_shared<nn::Linear>(4, 8, true, &g), nn::GELU(),
                      std::make_shared<nn::TransformerBlock>(8, 2, 16, true, 0.0, &g),
                      std::make_shared<nn::Linear>(8, 2, true, &g)});
  Tensor y = net(zeros({1, 3, 4}));
  CHECK(y.shape() == Shape({1, 3, 2}));
  std::string s = net.summary();
  MESSAGE("\n" << s);
  int64_t block = (3 * 8 * 8 + 3 * 8) + (8 * 8 + 8) + (8 * 16 + 16) + (16 * 8 + 8) + 4 * 8;
  int64_t total = (4 * 8 + 8) + block + (8 * 2 + 2);
  CHECK(net.num_parameters() == total);
  CHECK(s.find(fmt::format("total parameters: {}", total)) != std::string::npos);
  CHECK(s.find("2: TransformerBlock(embed_dim=8, num_heads=2, ff_dim=16, causal=true)") !=
        std::string::npos);
  CHECK(s.find(fmt::format("params={}", block)) != std::string::npos);
  CHECK(s.find("self_attn: MultiHeadAttention(embed_dim=8, num_heads=2, dropout=0)") !=
        std::string::npos);
  CHECK(s.find("-> [1, 3, 2]") != std::string::npos);
  nn::LSTM lstm(4, 3, 2);
  CHECK(lstm.summary().find("LSTM(4, 3, num_layers=2, bias=true, dropout=0)  params=204") == 0);
}
