// memory/epinet/recall.cpp — see recall.h.
#include "memory/epinet/recall.h"

#include <algorithm>

#include "autograd/ops.h"

namespace engram::epinet {

Tensor recall(const Tensor& z, const Tensor& keys_in, const Tensor& salience_in,
              const RecallOptions& opt) {
  ENGRAM_CHECK(opt.top_k > 0, "recall: top_k must be positive, got {}", opt.top_k);
  ENGRAM_CHECK(opt.mode == RecallMode::hard || opt.temperature > 0,
               "recall: temperature must be positive, got {}", opt.temperature);
  ENGRAM_CHECK(z.dim() == 2, "recall: expected queries [B, d], got {}", shape_str(z.shape()));
  const int64_t B = z.size(0), d = z.size(1), M = keys_in.dim() == 2 ? keys_in.size(0) : 0;
  if (M == 0) return zeros({B, d}, z.dtype(), z.device());
  ENGRAM_CHECK(keys_in.size(1) == d && salience_in.numel() == M,
               "recall: keys {} and salience {} do not match queries {}", shape_str(keys_in.shape()),
               shape_str(salience_in.shape()), shape_str(z.shape()));
  // The memory lives on the host: its keys and saliences go to the queries' device.
  Tensor keys = detach(to_dtype(raw::to_device(keys_in, z.device()), z.dtype()));          // [M, d]
  Tensor s = detach(to_dtype(reshape(raw::to_device(salience_in, z.device()), {M}), z.dtype()));
  const int64_t k = std::min(opt.top_k, M);
  Tensor cos = matmul(normalize(z, -1), transpose(normalize(keys, -1), 0, 1));  // [B, M]
  Tensor score = mul(cos, s);
  Tensor idx = topk(detach(score), k, 1).indices;                               // [B, k]
  Tensor w;
  if (opt.mode == RecallMode::hard) {
    Tensor sk = index_select(s, 0, reshape(idx, {-1}));                         // [B k]
    sk = reshape(sk, {B, k});
    w = div(sk, sum(sk, {1}, true) + opt.eps);
  } else {
    w = softmax(gather(score, 1, idx) / opt.temperature, 1);
  }
  Tensor zk = reshape(index_select(keys, 0, reshape(idx, {-1})), {B, k, d});    // [B, k, d]
  return sum(mul(unsqueeze(w, -1), zk), {1});
}

}  // namespace engram::epinet
