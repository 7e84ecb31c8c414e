// autograd/attention_ops.cpp — attention's fused masked softmax and its backward.
//
// masked_softmax(x, scale, causal, window, prefix), x [..., Tq, Tk]:
//   y = softmax(scale * x + mask) along the last dim, mask_ij = -inf where query i must not see
//   key j (nn/attention.h's causal/window/prefix rule, core/attention_mask.h), else 0.
// The mask is computed from indices inside the kernel (core/backend.h's masked_softmax), never
// stored, and masked keys get exactly 0. A row that sees no key is NaN, as in PyTorch.
// Backward: dx = scale * y * (dy - sum_j y_j dy_j) (masked entries have y = 0, so get 0).
// It replaces masked_fill(scores, mask, -inf) + softmax in MultiHeadAttention: one pass over the
// scores forward and one backward instead of a mask build, a masked_fill each way and a softmax.
#include "autograd/ops.h"
#include "autograd/raw_ops.h"

namespace engram {

Tensor masked_softmax(const Tensor& x, double scale, bool causal, int64_t window, int64_t prefix) {
  ENGRAM_CHECK(is_floating(x.dtype()), "masked_softmax: expected a floating tensor, got {} {}",
               dtype_name(x.dtype()), shape_str(x.shape()));
  ENGRAM_CHECK(x.dim() >= 2, "masked_softmax: expected x [..., Tq, Tk], got {}",
               shape_str(x.shape()));
  ENGRAM_CHECK(window >= 0 && prefix >= 0, "masked_softmax: window {} and prefix {} must be >= 0",
               window, prefix);
  ENGRAM_CHECK(causal || (window == 0 && prefix == 0),
               "masked_softmax: window and prefix apply to a causal mask only");
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  ENGRAM_KERNEL(x.device(), masked_softmax)(x, scale, causal, window, prefix, y);
  record1("masked_softmax", {x}, y, [y, scale, causal, window, prefix](const Tensor& dy) {
    Tensor dx = empty(y.shape(), y.dtype(), y.device());
    ENGRAM_KERNEL(y.device(), masked_softmax_backward)(y, dy, scale, causal, window, prefix, dx);
    return std::vector<Tensor>{dx};
  });
  return y;
}

}  // namespace engram
