// apps/common/ssm_lm.h — the state-space language models of crsd_tiny's --model list (nn/ssm/):
//
//   ids [B, T] -> Embedding(V, C) -> L ResidualBlocks (nn/ssm/block.h) -> RMSNorm -> Linear(C, V)
//
// model.kind picks every block's mixer:
//   s4d      nn::ssm::S4D: diagonal complex SSM, ZOH, FFT convolution (S4D-Lin or S4D-Inv init)
//   s4       nn::ssm::S4: HiPPO-LegS in DPLR form, bilinear, Cauchy-kernel generating function
//   s5       nn::ssm::S5: one MIMO diagonal complex state, parallel scan (HiPPO-N init)
//   mamba    nn::ssm::Mamba: selective scan (fused op), causal conv, SiLU gate
//   linoss   nn::ssm::LinOSS: forced oscillators, IM or IMEX, 2x2-block scan
//   retnet   nn::ssm::MultiScaleRetention + a SwiGLU feed-forward per block
//   samba    Mamba and sliding-window attention alternating, each with a SwiGLU feed-forward
// Every mixer carries its recurrent state across calls (named blocks.<l>.<name>, "carry.*" in
// checkpoints), so training on consecutive segments (train.carry_state) and generation one token
// at a time see the stream the same way. A call with T = 1 outside training runs each mixer's
// recurrent step(); every other call runs its parallel / convolution / chunked form (the two are
// held equal by tests/test_ssm_*.cpp).
#pragma once
#include <memory>

#include "apps/common/lm.h"

namespace engram::apps {

bool is_ssm_lm_kind(const std::string& kind);
std::vector<std::string> ssm_lm_kinds();
std::vector<FieldSpec> ssm_lm_fields();  // model.ssm_*, model.retnet_chunk
std::unique_ptr<LanguageModel> make_ssm_lm(const Config& cfg, int64_t vocab_size, Generator* gen);

}  // namespace engram::apps
