// autograd/conv.cpp — conv2d (im2col + BLAS), max_pool2d, avg_pool2d over NCHW tensors.
//
// conv2d: x [B, C, H, W], weight [O, C, kh, kw], bias [O] -> y [B, O, Ho, Wo] with
//     Ho = (H + 2p - d(kh - 1) - 1) / s + 1   (likewise Wo),
// computed per image b as one matrix product over the unrolled receptive fields (L = Ho*Wo):
//     cols[b] = im2col(x[b])        [C*kh*kw, L]
//     y[b]    = W @ cols[b] + bias  W = weight viewed [O, C*kh*kw]
// and backward:
//     dW += sum_b dy[b] @ cols[b]^T      db += sum over b, l of dy[b, :, l]
//     dx[b] = col2im(W^T @ dy[b])
// Images go in chunks of about a megabyte of columns and outputs, so the columns im2col writes
// are still in cache when BLAS reads them. Backward recomputes the columns (one cheap pass over x)
// rather than keeping kh*kw copies of the input alive from forward to backward.
//
// Pools (PyTorch's defaults: dilation 1, ceil_mode false), Ho = (H + 2p - k) / s + 1:
//     max_pool2d: y = max over each window (padding is -inf); dx[argmax] += dy, with the argmax
//                 (i64, flat index in the [H, W] plane) saved by the forward
//     avg_pool2d: y = sum over each window / (k*k) (padding counts as zeros); dx += dy / (k*k)
//                 spread over the window
// All three also take an unbatched [C, H, W] input, as PyTorch does.
#include <algorithm>

#include "autograd/ops.h"
#include "autograd/raw_ops.h"

namespace engram {

// Everything conv2d's forward and backward need to unroll a chunk of images.
struct ConvPlan {
  int64_t B, C, H, W, O, kh, kw, Ho, Wo, s, p, d;
  int64_t CK, L;  // rows and columns of one image's cols
  int64_t R;      // rows of a cols buffer: CK, plus a row of ones when there is a bias
  bool direct;    // 1x1 kernel, stride 1, no padding, no bias: x[b] viewed [C, H*W] is cols[b]

  // A cols buffer for `chunk` images, [chunk, R, L]; its ones row (if any) is written once here
  // and never touched by im2col.
  Tensor buffer(int64_t chunk, DType dt, Device dev) const {
    if (direct) return Tensor();
    Tensor buf = empty({chunk, R, L}, dt, dev);
    if (R > CK) ENGRAM_KERNEL(dev, fill)(raw::narrow(buf, 1, CK, 1), 1.0);
    return buf;
  }
  // cols (all R rows) of images [b0, b0 + n) of x, unrolled into buf (or a view of x).
  Tensor cols(const Tensor& x, int64_t b0, int64_t n, const Tensor& buf) const {
    Tensor xc = raw::narrow(x, 0, b0, n);
    if (direct) return raw::view(xc, {n, C, L});
    Tensor cc = raw::narrow(buf, 0, 0, n);
    ENGRAM_KERNEL(x.device(), im2col)(xc, kh, kw, s, s, p, p, d, d, raw::narrow(cc, 1, 0, CK));
    return cc;
  }
};

// Images per chunk: as many as keep `per_image` elements each within 2^18 (1 MiB of f32, about
// an L2 cache), so what im2col writes is still in cache when BLAS reads it.
static int64_t chunk_images(int64_t per_image, int64_t B) {
  constexpr int64_t kBudget = int64_t(1) << 18;
  return std::clamp<int64_t>(kBudget / std::max<int64_t>(per_image, 1), 1, std::max<int64_t>(B, 1));
}

// A [C, H, W] input runs as a batch of one; the recorded unsqueeze/squeeze route its gradient.
template <class Fn> static Tensor unbatched(const Tensor& x, Fn fn) {
  return squeeze(fn(unsqueeze(x, 0)), 0);
}

// y[b] = W @ im2col(x[b]) + bias; dW += dy[b] @ cols[b]^T, db += sum_{b,l} dy, dx[b] = col2im(W^T @ dy[b])
//
// The bias rides along in the product: W gets bias as one more column and cols a row of ones,
// so y[b] = [W | bias] @ [cols[b]; 1] is a single GEMM per image (no separate pass over y), and
// in backward the same trick gives db as the last column of [dW | db] = dy[b] @ [cols[b]; 1]^T.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride,
              int64_t padding, int64_t dilation) {
  if (x.dim() == 3)
    return unbatched(x, [&](const Tensor& xb) { return conv2d(xb, weight, bias, stride, padding, dilation); });
  ENGRAM_CHECK(x.dim() == 4, "conv2d: expected input [B, C, H, W] or [C, H, W], got {}",
               shape_str(x.shape()));
  ENGRAM_CHECK(weight.dim() == 4, "conv2d: expected weight [O, C, kh, kw], got {} (input {})",
               shape_str(weight.shape()), shape_str(x.shape()));
  rk::check_same(x, weight, "conv2d");
  ConvPlan P{};
  P.B = x.shape()[0], P.C = x.shape()[1], P.H = x.shape()[2], P.W = x.shape()[3];
  P.O = weight.shape()[0], P.kh = weight.shape()[2], P.kw = weight.shape()[3];
  P.s = stride, P.p = padding, P.d = dilation;
  ENGRAM_CHECK(weight.shape()[1] == P.C,
               "conv2d: input {} has {} channels but weight {} expects {} (weight is [O, C, kh, kw])",
               shape_str(x.shape()), P.C, shape_str(weight.shape()), weight.shape()[1]);
  if (bias.defined()) {
    rk::check_same(x, bias, "conv2d (bias)");
    ENGRAM_CHECK(bias.dim() == 1 && bias.shape()[0] == P.O,
                 "conv2d: bias must be [{}] for weight {}, got {}", P.O, shape_str(weight.shape()),
                 shape_str(bias.shape()));
  }
  ENGRAM_CHECK(stride >= 1 && padding >= 0 && dilation >= 1,
               "conv2d: needs stride >= 1, padding >= 0, dilation >= 1; got {}, {}, {}", stride,
               padding, dilation);
  ENGRAM_CHECK(P.H + 2 * padding >= dilation * (P.kh - 1) + 1 &&
                   P.W + 2 * padding >= dilation * (P.kw - 1) + 1,
               "conv2d: input {} (padding {}) is smaller than the kernel {}x{} with dilation {}",
               shape_str(x.shape()), padding, P.kh, P.kw, dilation);
  P.Ho = (P.H + 2 * padding - dilation * (P.kh - 1) - 1) / stride + 1;
  P.Wo = (P.W + 2 * padding - dilation * (P.kw - 1) - 1) / stride + 1;
  P.CK = P.C * P.kh * P.kw, P.L = P.Ho * P.Wo, P.R = P.CK + (bias.defined() ? 1 : 0);
  P.direct = P.kh == 1 && P.kw == 1 && stride == 1 && padding == 0 && !bias.defined() &&
             x.is_contiguous();

  const Device dev = x.device();
  const DType dt = x.dtype();
  auto matmul_k = ENGRAM_KERNEL(dev, matmul);
  // wb = [W | bias], [O, R]
  Tensor wb = raw::reshape(weight, {P.O, P.CK});
  if (bias.defined()) {
    Tensor w = wb;
    wb = empty({P.O, P.R}, dt, dev);
    raw::copy_(raw::narrow(wb, 1, 0, P.CK), w);
    raw::copy_(raw::narrow(wb, 1, P.CK, 1), raw::reshape(bias, {P.O, 1}));
  }
  Tensor y = empty({P.B, P.O, P.Ho, P.Wo}, dt, dev);
  Tensor y3 = raw::view(y, {P.B, P.O, P.L});
  const int64_t chunk = chunk_images((P.R + P.O) * P.L, P.B);
  Tensor buf = P.buffer(chunk, dt, dev);
  for (int64_t b0 = 0; b0 < P.B; b0 += chunk) {
    const int64_t n = std::min(chunk, P.B - b0);
    matmul_k(raw::expand(wb, {n, P.O, P.R}), P.cols(x, b0, n, buf), raw::narrow(y3, 0, b0, n), 1.0,
             0.0);
  }

  const bool need_x = x.requires_grad(), need_w = weight.requires_grad();
  const bool need_b = bias.defined() && bias.requires_grad();
  Shape ws = weight.shape();
  // Keep alive only what backward reads: x to recompute cols for dW, W for dx.
  Tensor x_saved = need_w ? x : Tensor(), w_saved = need_x ? raw::narrow(wb, 1, 0, P.CK) : Tensor();
  record1("conv2d", {x, weight, bias}, y, [P, x_saved, w_saved, ws, need_x, need_w,
                                          need_b](const Tensor& dy_in) {
    const Device dev = dy_in.device();
    const DType dt = dy_in.dtype();
    auto matmul_k = ENGRAM_KERNEL(dev, matmul);
    Tensor dy = raw::contiguous(raw::reshape(dy_in, {P.B, P.O, P.L}));
    Tensor dx, dw, db;
    Tensor dwb;  // [dW | db], [O, R], summed image by image (the first product overwrites)
    if (need_w) dwb = P.B == 0 ? zeros({P.O, P.R}, dt, dev) : empty({P.O, P.R}, dt, dev);
    if (need_x) dx = empty({P.B, P.C, P.H, P.W}, dt, dev);
    const int64_t chunk = chunk_images((P.R + P.CK + P.O) * P.L, P.B);
    Tensor cols_buf = need_w ? P.buffer(chunk, dt, dev) : Tensor();
    Tensor dcols_buf = need_x && !P.direct ? empty({chunk, P.CK, P.L}, dt, dev) : Tensor();
    Tensor wt = need_x ? raw::transpose(w_saved, 0, 1) : Tensor();  // [CK, O]: BLAS reads it transposed
    for (int64_t b0 = 0; b0 < P.B; b0 += chunk) {
      const int64_t n = std::min(chunk, P.B - b0);
      Tensor dyc = raw::narrow(dy, 0, b0, n);
      if (need_w) {  // [dW | db] (+)= dy[b] @ [cols[b]; 1]^T, image by image
        Tensor cc = P.cols(x_saved, b0, n, cols_buf);
        for (int64_t i = 0; i < n; ++i) {
          Tensor dyi = raw::view(raw::narrow(dyc, 0, i, 1), {P.O, P.L});
          Tensor ci = raw::view(raw::narrow(cc, 0, i, 1), {P.R, P.L});
          matmul_k(dyi, raw::transpose(ci, 0, 1), dwb, 1.0, b0 + i == 0 ? 0.0 : 1.0);
        }
      }
      if (need_x) {  // dcols = W^T @ dy[b]; dx[b] = col2im(dcols)
        Tensor dxc = raw::narrow(dx, 0, b0, n);
        if (P.direct) {
          matmul_k(raw::expand(wt, {n, P.CK, P.O}), dyc, raw::view(dxc, {n, P.C, P.L}), 1.0, 0.0);
        } else {
          Tensor dc = raw::narrow(dcols_buf, 0, 0, n);
          matmul_k(raw::expand(wt, {n, P.CK, P.O}), dyc, dc, 1.0, 0.0);
          ENGRAM_KERNEL(dev, col2im)(dc, P.kh, P.kw, P.s, P.s, P.p, P.p, P.d, P.d, dxc);
        }
      }
    }
    if (need_w) {
      dw = raw::view(raw::contiguous(raw::narrow(dwb, 1, 0, P.CK)), ws);
      if (need_b) db = raw::contiguous(raw::reshape(raw::narrow(dwb, 1, P.CK, 1), {P.O}));
    } else if (need_b) {  // weights frozen: db[o] = sum_{b,l} dy[b, o, l] as dy's rows times ones
      Tensor rows = empty({1, P.B * P.O, 1}, dt, dev);
      matmul_k(raw::view(dy, {1, P.B * P.O, P.L}), full({1, P.L, 1}, 1.0, dt, dev), rows, 1.0, 0.0);
      db = raw::view(rk::reduce_keepdim(ReduceOp::sum, raw::view(rows, {P.B, P.O}), {0}), {P.O});
    }
    return std::vector<Tensor>{dx, dw, db};
  });
  return y;
}

// Output size of a pool (PyTorch's checks: padding at most half the kernel, a non-empty output).
static Shape pool_shape(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding,
                        const char* op) {
  ENGRAM_CHECK(x.dim() == 4, "{}: expected input [B, C, H, W] or [C, H, W], got {}", op,
               shape_str(x.shape()));
  ENGRAM_CHECK(kernel >= 1 && stride >= 1 && padding >= 0,
               "{}: needs kernel >= 1, stride >= 1, padding >= 0; got {}, {}, {}", op, kernel,
               stride, padding);
  ENGRAM_CHECK(2 * padding <= kernel, "{}: padding {} is more than half the kernel {}", op, padding,
               kernel);
  const int64_t H = x.shape()[2], W = x.shape()[3];
  ENGRAM_CHECK(H + 2 * padding >= kernel && W + 2 * padding >= kernel,
               "{}: input {} (padding {}) is smaller than the kernel {}", op, shape_str(x.shape()),
               padding, kernel);
  return {x.shape()[0], x.shape()[1], (H + 2 * padding - kernel) / stride + 1,
          (W + 2 * padding - kernel) / stride + 1};
}

// y = max over each k x k window; dx[argmax] += dy
Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  if (x.dim() == 3)
    return unbatched(x, [&](const Tensor& xb) { return max_pool2d(xb, kernel, stride, padding); });
  if (stride < 0) stride = kernel;
  Shape ys = pool_shape(x, kernel, stride, padding, "max_pool2d");
  Tensor y = empty(ys, x.dtype(), x.device());
  Tensor argmax = empty(ys, DType::i64, x.device());
  ENGRAM_KERNEL(x.device(), max_pool2d)(x, kernel, stride, padding, y, argmax);
  Shape xs = x.shape();
  record1("max_pool2d", {x}, y, [argmax, xs](const Tensor& dy) {
    Tensor dx = empty(xs, dy.dtype(), dy.device());
    ENGRAM_KERNEL(dy.device(), max_pool2d_backward)(dy, argmax, dx);
    return std::vector<Tensor>{dx};
  });
  return y;
}

// y = sum over each k x k window / (k*k); dx += dy / (k*k) over the window
Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  if (x.dim() == 3)
    return unbatched(x, [&](const Tensor& xb) { return avg_pool2d(xb, kernel, stride, padding); });
  if (stride < 0) stride = kernel;
  Shape ys = pool_shape(x, kernel, stride, padding, "avg_pool2d");
  Tensor y = empty(ys, x.dtype(), x.device());
  ENGRAM_KERNEL(x.device(), avg_pool2d)(x, kernel, stride, padding, y);
  Shape xs = x.shape();
  record1("avg_pool2d", {x}, y, [xs, kernel, stride, padding](const Tensor& dy) {
    Tensor dx = empty(xs, dy.dtype(), dy.device());
    ENGRAM_KERNEL(dy.device(), avg_pool2d_backward)(dy, kernel, stride, padding, dx);
    return std::vector<Tensor>{dx};
  });
  return y;
}

}  // namespace engram
