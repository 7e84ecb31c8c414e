// autograd/ops.h — every differentiable op of engram, by family.
//
// Each op runs its forward through core's kernel dispatch and, when an input requires grad,
// records a tape node whose backward is written beside the forward in the family's .cpp, under a
// one-line formula comment (e.g. `// y = tanh(x); dx += dy * (1 - y*y)`). Binary ops broadcast
// like NumPy; gradients of broadcast inputs are summed back by the tape (autograd/tape.h).
//
// Complex numbers (rfft/irfft) are held as real tensors with a trailing dim of 2 = [re, im],
// exactly PyTorch's torch.view_as_real layout, so every other op applies to them unchanged.
#pragma once
#include <optional>
#include <vector>

#include "autograd/tape.h"
#include "core/backend.h"
#include "core/rng.h"

namespace engram {

using Dims = std::vector<int64_t>;

// ---- elementwise.cpp ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor pow(const Tensor& a, double exponent);
Tensor pow(double base, const Tensor& x);
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
Tensor gelu(const Tensor& x, bool tanh_approximation = false);
Tensor silu(const Tensor& x);
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);
Tensor square(const Tensor& x);
Tensor reciprocal(const Tensor& x);
Tensor clamp(const Tensor& x, double lo, double hi);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);  // cond != 0 ? a : b
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);  // mask != 0 -> value
// Comparisons (not differentiable): 0/1 in the inputs' dtype.
Tensor gt(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, const Tensor& b);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, double s);
Tensor operator+(double s, const Tensor& a);
Tensor operator-(const Tensor& a, double s);
Tensor operator-(double s, const Tensor& a);
Tensor operator*(const Tensor& a, double s);
Tensor operator*(double s, const Tensor& a);
Tensor operator/(const Tensor& a, double s);
Tensor operator/(double s, const Tensor& a);

// ---- reduce.cpp (dims may be negative; empty dims = all) ----
Tensor sum(const Tensor& x);
Tensor sum(const Tensor& x, const Dims& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const Dims& dims, bool keepdim = false);
Tensor var(const Tensor& x, const Dims& dims, bool keepdim = false, int64_t correction = 1);
Tensor max(const Tensor& x);
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor min(const Tensor& x);
Tensor min(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);  // i64, not differentiable
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor logsumexp(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);
Tensor cumsum(const Tensor& x, int64_t dim);
struct TopK {
  Tensor values, indices;  // values differentiable, indices i64
};
TopK topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true);

// ---- matmul.cpp ----
Tensor matmul(const Tensor& a, const Tensor& b);  // 1-D, 2-D, batched with broadcast batch dims
Tensor outer(const Tensor& a, const Tensor& b);   // a [n], b [m] -> [n, m]
// Complex matrix product, complex as trailing [re, im]: a [.., M, K, 2] @ b [.., K, N, 2] ->
// [.., M, N, 2], batch dims broadcast (one complex gemm per batch element, each way).
Tensor complex_matmul(const Tensor& a, const Tensor& b);

// ---- shape.cpp (views share storage; their backwards route gradients back) ----
Tensor reshape(const Tensor& x, const Shape& shape);  // one dim may be -1
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor permute(const Tensor& x, const Dims& dims);
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1);
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor select(const Tensor& x, int64_t dim, int64_t index);  // drops dim
Tensor expand(const Tensor& x, const Shape& shape);
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor contiguous(const Tensor& x);
Tensor cat(const std::vector<Tensor>& xs, int64_t dim);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim);
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim);
// All slices x[.., i, ..] along dim as views, recorded as ONE node (per-step loops over time use
// it: T separate selects would each send a full-size zero gradient back, O(T^2) work).
std::vector<Tensor> unbind(const Tensor& x, int64_t dim);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim);
Tensor to_dtype(const Tensor& x, DType dtype);

// ---- index.cpp (indices are i64) ----
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
// weight [V, D], ids any shape -> [..., D]; rows at padding_idx get no gradient
Tensor embedding(const Tensor& weight, const Tensor& ids, int64_t padding_idx = -1);

// ---- nn_ops.cpp ----
Tensor normalize(const Tensor& x, int64_t dim = -1, double eps = 1e-12);  // x / max(|x|_2, eps)
Tensor cosine_similarity(const Tensor& a, const Tensor& b, int64_t dim = -1, double eps = 1e-8);
enum class Reduction { mean, sum, none };
// logits [N, C] (or [N, C] after flattening leading dims), target i64 [N]
Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index = -100,
                     double label_smoothing = 0.0, Reduction reduction = Reduction::mean);
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, int64_t ignore_index = -100,
                Reduction reduction = Reduction::mean);
Tensor mse_loss(const Tensor& a, const Tensor& b, Reduction reduction = Reduction::mean);
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps = 1e-6);
Tensor dropout(const Tensor& x, double p, bool training, Generator* gen = nullptr);

// ---- attention_ops.cpp ----
// softmax(scale * x + mask) over the last dim of x [..., Tq, Tk], the mask (causal, with an
// optional window and prefix: nn/attention.h's rule) computed from indices, never materialised;
// masked keys get exactly 0, a row seeing no key is NaN. Without causal, a scaled softmax.
Tensor masked_softmax(const Tensor& x, double scale, bool causal, int64_t window = 0,
                      int64_t prefix = 0);

// ---- conv.cpp (NCHW) ----
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride = 1,
              int64_t padding = 0, int64_t dilation = 1);
Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride = -1, int64_t padding = 0);
Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride = -1, int64_t padding = 0);

// ---- fft.cpp (last dim; complex as trailing [re, im]) ----
Tensor rfft(const Tensor& x);              // [.., n] -> [.., n/2+1, 2]
Tensor irfft(const Tensor& X, int64_t n);  // [.., n/2+1, 2] -> [.., n], normalised by 1/n
// Elementwise complex product of [.., 2] pairs, broadcasting like mul (one fused kernel each way).
Tensor complex_mul(const Tensor& a, const Tensor& b);

// ---- scan.cpp ----
// h_t = a_t * h_{t-1} + b_t along dim 1 of [B, T, ...]; h0 [B, ...] (undefined = zeros).
Tensor linear_scan(const Tensor& a, const Tensor& b, const Tensor& h0 = Tensor());

// ---- recurrent_ops.cpp (nn/recurrent.h's cells over a whole sequence, one tape node) ----
// LSTM layer over time, gates in PyTorch's order i f g o (nn/recurrent.h has the cell):
// gx [B, T, 4H] = x_t W_ih^T + biases for every step, w_hh [4H, H], h0 and c0 [B, H]
// (undefined = zeros). Returns every h_t [B, T, H] and the last cell state [B, H]; the last h
// is output[:, T-1].
struct LstmSequence {
  Tensor output;  // [B, T, H]
  Tensor c_last;  // [B, H]
};
LstmSequence lstm_sequence(const Tensor& gx, const Tensor& w_hh, const Tensor& h0 = Tensor(),
                           const Tensor& c0 = Tensor());
// CRSD's leaky tanh reservoir over time (memory/crsd/reservoir.h):
// s_t = (1 - leak) s_{t-1} + leak tanh(drive_t + s_{t-1} w^T); drive [B, T, R] = W_in u_t for
// every step, w [R, R], s0 [B, R] (undefined = zeros). Returns every s_t [B, T, R].
Tensor reservoir_scan(const Tensor& drive, const Tensor& w, const Tensor& s0, double leak);

// ---- memory_ops.cpp (fused ops of the memory modules) ----
// Hebbian scan over time: H_t = gamma H_{t-1} + eta k_t v_t^T, r_t = H_t^T q_t, H_{-1} = h0.
// q, k [B, T, dk], v [B, T, dv], gamma and eta 0-dim tensors, h0 [B, dk, dv] (undefined = zeros).
// detach_memory stops the gradient from flowing through H across time steps.
struct HebbianScan {
  Tensor recall;  // [B, T, dv]
  Tensor state;   // H after the last step [B, dk, dv]
};
HebbianScan hebbian_scan(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& gamma,
                         const Tensor& eta, const Tensor& h0 = Tensor(), bool detach_memory = false,
                         int64_t chunk = 16);

// An episodic buffer's whole sequence (memory/crsd/episodic.h: cosine read over the allowed
// slots, then a priority write) in one node: q, k [B, T, dk], v [B, T, dv] and the slots entering
// the sequence -> the recalls [B, T, dv] and the slots after the last step. Gradients reach q, k,
// v and the start keys and values; slot choices are discrete (core/cpu/cpu_episodic.cpp).
struct EpisodicScan {
  Tensor recall;        // [B, T, dv]
  EpisodicSlots slots;  // after the last step
};
EpisodicScan episodic_scan(const Tensor& q, const Tensor& k, const Tensor& v,
                           const EpisodicSlots& start, const EpisodicScanArgs& args);

// Episodic CMR's context drift over time (memory/cmr/context.h's rule, row by row):
//   c_t = rho_t c_{t-1} + beta_t cin_t,  rho_t = sqrt(1 + beta_t^2 ((c_{t-1}.cin_t)^2 - 1))
//         - beta_t (c_{t-1}.cin_t),  c_{-1} = c0.
// cin [B, T, D] (unit rows in the model), beta [B, T] in (0, 1), c0 [B, D]. Returns every c_t
// [B, T, D]; the last context is its slice t = T - 1.
Tensor cmr_drift_scan(const Tensor& cin, const Tensor& beta, const Tensor& c0);

// ---- titans_ops.cpp ----
// Titans neural memory (Behrouz, Zhong & Mirrokni 2024, arXiv:2501.00663) at depth 1: a linear
// matrix memory M [dv, dk] trained while the sequence is read, by gradient steps with momentum and
// forgetting on ||M k_t - v_t||^2, in chunks of `chunk` tokens whose gradients are all taken at
// the chunk's starting weights M0_c (chunk = 1: the exact token-by-token rule):
//   y_t = M_{t-1} q_t ;  e_t = 2 (M0_c k_t - v_t) ;  S_t = eta_t S_{t-1} - theta_t e_t k_t^T ;
//   M_t = (1 - alpha_t) M_{t-1} + S_t ;  M_{-1} = m0, S_{-1} = s0.
// q, k [B, T, dk], v [B, T, dv]; theta (inner learning rate), eta (momentum decay), alpha
// (forgetting) [B, T]; m0, s0 [B, dv, dk] (s0 undefined = zeros). Every input gets a gradient,
// the second-order path through M0_c included.
struct TitansMemoryScan {
  Tensor retrieved;  // y [B, T, dv]
  Tensor memory;     // M after the last token [B, dv, dk]
  Tensor momentum;   // S after the last token [B, dv, dk]
};
TitansMemoryScan titans_linear_memory(const Tensor& q, const Tensor& k, const Tensor& v,
                                      const Tensor& theta, const Tensor& eta, const Tensor& alpha,
                                      const Tensor& m0, const Tensor& s0, int64_t chunk);

// Titans at depth 2 (the paper's deep memory, L_M = 2): M(x) = W2 silu(W1 x), W1 [h, dk],
// W2 [dv, h], trained like the linear memory on ||M(k_t) - v_t||^2 with every gradient of a chunk
// taken at its starting weights W1_0c, W2_0c:
//   y_t = W2_{t-1} silu(W1_{t-1} q_t) ;  a_t = W1_0c k_t ;  z_t = silu(a_t) ;
//   e_t = 2 (W2_0c z_t - v_t) ;  G2_t = e_t z_t^T ;  G1_t = ((W2_0c^T e_t) * silu'(a_t)) k_t^T ;
//   S{1,2}_t = eta_t S_{t-1} - theta_t G_t ;  W{1,2}_t = (1 - alpha_t) W_{t-1} + S_t.
// q, k [B, T, dk], v [B, T, dv], theta/eta/alpha [B, T], w1/s1 [B, h, dk], w2/s2 [B, dv, h]
// (s1, s2 undefined = zeros). Every input gets a gradient, second-order terms included.
struct TitansMLPScan {
  Tensor retrieved;  // y [B, T, dv]
  Tensor w1, w2;     // the weights after the last token
  Tensor s1, s2;     // the momenta after the last token
};
TitansMLPScan titans_mlp_memory(const Tensor& q, const Tensor& k, const Tensor& v,
                                const Tensor& theta, const Tensor& eta, const Tensor& alpha,
                                const Tensor& w1, const Tensor& w2, const Tensor& s1,
                                const Tensor& s2, int64_t chunk);

// ---- ssm_mamba_ops.cpp, ssm_scan_ops.cpp: state-space primitives (nn/ssm/) ----
// Causal depthwise conv1d along time (Mamba's Conv1d(D, D, K, groups=D, padding=K-1)[..., :T]):
//   y[b, t, d] = bias[d] + sum_{k<K} weight[d, k] x[b, t - (K-1) + k, d]
// x [B, T, D], weight [D, K], bias [D] (undefined = none); x0 [B, K-1, D] = the K-1 inputs before
// t = 0 (the conv state carried from the previous segment; undefined = zeros).
Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
                     const Tensor& x0 = Tensor());

// Mamba's selective scan (Gu & Dao 2023; selective_scan_ref) as one fused op:
//   dt_t = softplus(delta_t + delta_bias) (or delta_t + delta_bias when !delta_softplus)
//   h_t = exp(dt_t A) * h_{t-1} + dt_t B_t u_t      (h [B, D, N], h_{-1} = h0 or 0)
//   y_t = C_t . h_t + Dskip u_t ;  out_t = y_t * silu(z_t)
// u, delta, z [B, T, D]; A [D, N] (negative: A = -exp(A_log)); Bm, Cm [B, T, N]; Dskip, delta_bias
// [D]; h0 [B, D, N]. Dskip, z, delta_bias and h0 may be undefined (none / zeros). The backward
// recomputes the states inside chunks of `chunk` steps instead of storing all [B, T, D, N].
struct SelectiveScan {
  Tensor y;      // out [B, T, D]
  Tensor state;  // h after the last step [B, D, N]
};
SelectiveScan selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A,
                             const Tensor& Bm, const Tensor& Cm, const Tensor& Dskip,
                             const Tensor& z, const Tensor& delta_bias, const Tensor& h0,
                             bool delta_softplus = true, int64_t chunk = 64);

// 2x2-block linear recurrence along dim 1: h_t = M_t h_{t-1} + f_t, with M [.., 2, 2] broadcast to
// [B, T, F..., 2, 2], f [B, T, F..., 2], h0 [B, F..., 2] (undefined = zeros). A complex diagonal
// recurrence h_t = a_t h_t-1 + b_t is the case M = [[re a, -im a], [im a, re a]].
Tensor linear_scan_2x2(const Tensor& M, const Tensor& f, const Tensor& h0 = Tensor());

// S4's Cauchy kernel (complex as trailing [re, im]):
//   k[.., l] = sum_n v[.., n] / (z[.., l] - w[.., n])
// v, w [.., N, 2], z [.., L, 2] whose leading dims broadcast -> [.., L, 2]. Every input gets a
// gradient (z depends on the learned step size through the bilinear map).
Tensor cauchy_kernel(const Tensor& v, const Tensor& z, const Tensor& w);

// Complex Vandermonde powers (S4D's kernel; complex as trailing [re, im]):
//   V[.., j] = exp(a[..] p_j),  p_j = start + j step,  j = 0 .. count-1
// a [.., 2] -> V [.., count, 2]. One pass instead of a broadcast multiply, exp, cos, sin and a
// stack; the backward da = sum_j p_j conj(V_j) dV_j is one more (autograd/ssm_scan_ops.cpp).
Tensor vandermonde(const Tensor& a, int64_t count, double start = 0.0, double step = 1.0);

}  // namespace engram
