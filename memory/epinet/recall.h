// memory/epinet/recall.h — EpiNet's recall engine over the episodic memory.
//
// For a query latent z_t [B, d] and traces (c_m = z_m, s_m) (episodic_memory.h):
//     score_m = cos(z_t, c_m) * s_m
//     K       = the top_k traces by score (all of them when fewer are stored)
//   hard (the notebook's rule): weights by salience, r_t = sum_{i in K} w_i z_i with
//     w_i = s_i / (sum_{j in K} s_j + eps). Selection is discrete and the weights are constants
//     of the memory, so no gradient reaches z_t through the recall.
//   soft: w = softmax(score_K / temperature), r_t = sum_{i in K} w_i z_i, so gradients reach the
//     query (and through it the encoder) by the cosine scores; stored latents stay detached.
// An empty memory recalls zeros.
#pragma once
#include "core/tensor.h"

namespace engram::epinet {

enum class RecallMode { hard, soft };

struct RecallOptions {
  int64_t top_k = 8;
  RecallMode mode = RecallMode::hard;
  double temperature = 0.1;  // soft mode
  double eps = 1e-8;
};

// keys: stored latents [M, d] (the context keys, no gradient); salience [M]. Returns r [B, d].
Tensor recall(const Tensor& z, const Tensor& keys, const Tensor& salience, const RecallOptions& opt);

}  // namespace engram::epinet
