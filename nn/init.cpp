// nn/init.cpp — see init.h.
#include "nn/init.h"

#include <lapacke.h>

#include <cmath>
#include <vector>

namespace engram::nn::init {

Fans fans(const Tensor& w) {
  ENGRAM_CHECK(w.dim() >= 2, "init: fan_in/fan_out need a weight of at least 2 dims, got {}",
               shape_str(w.shape()));
  int64_t receptive = 1;
  for (int64_t d = 2; d < w.dim(); ++d) receptive *= w.shape()[d];
  return {w.shape()[1] * receptive, w.shape()[0] * receptive};
}

// Draw numel values in element order and write them into t (any device/dtype).
template <class Draw> static void fill_with(const Tensor& t, Draw draw) {
  std::vector<double> v(t.numel());
  for (double& x : v) x = draw();
  raw::copy_(t, from_vector(v, t.shape(), t.dtype()));
}

void uniform_(const Tensor& t, double lo, double hi, Generator* gen) {
  Generator& g = gen ? *gen : default_generator();
  fill_with(t, [&] { return lo + (hi - lo) * g.uniform(); });
}
void normal_(const Tensor& t, double mean, double std, Generator* gen) {
  Generator& g = gen ? *gen : default_generator();
  fill_with(t, [&] { return mean + std * g.normal(); });
}
void constant_(const Tensor& t, double value) { fill_with(t, [&] { return value; }); }

void xavier_uniform_(const Tensor& t, double gain, Generator* gen) {
  Fans f = fans(t);
  double a = gain * std::sqrt(6.0 / double(f.fan_in + f.fan_out));
  uniform_(t, -a, a, gen);
}
void xavier_normal_(const Tensor& t, double gain, Generator* gen) {
  Fans f = fans(t);
  normal_(t, 0.0, gain * std::sqrt(2.0 / double(f.fan_in + f.fan_out)), gen);
}
void kaiming_uniform_(const Tensor& t, double a, bool fan_in_mode, Generator* gen) {
  Fans f = fans(t);
  double gain = std::sqrt(2.0 / (1.0 + a * a));
  double bound = gain * std::sqrt(3.0 / double(fan_in_mode ? f.fan_in : f.fan_out));
  uniform_(t, -bound, bound, gen);
}
void kaiming_normal_(const Tensor& t, double a, bool fan_in_mode, Generator* gen) {
  Fans f = fans(t);
  double gain = std::sqrt(2.0 / (1.0 + a * a));
  normal_(t, 0.0, gain / std::sqrt(double(fan_in_mode ? f.fan_in : f.fan_out)), gen);
}

void orthogonal_(const Tensor& t, double gain, Generator* gen) {
  ENGRAM_CHECK(t.dim() >= 2, "orthogonal_: needs at least 2 dims, got {}", shape_str(t.shape()));
  Generator& g = gen ? *gen : default_generator();
  int64_t rows = t.shape()[0], cols = t.numel() / rows;
  // QR of the tall orientation: A [m, n] with m >= n, column-major for LAPACK.
  bool tall = rows >= cols;
  int64_t m = tall ? rows : cols, n = tall ? cols : rows;
  std::vector<double> a(m * n), tau(n);
  for (double& x : a) x = g.normal();  // column-major A[i + j*m]
  lapack_int info = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, m, n, a.data(), m, tau.data());
  ENGRAM_CHECK(info == 0, "orthogonal_: dgeqrf failed (info {})", info);
  std::vector<double> sign(n);
  for (int64_t j = 0; j < n; ++j) sign[j] = a[j + j * m] >= 0 ? 1.0 : -1.0;  // diag(R)
  info = LAPACKE_dorgqr(LAPACK_COL_MAJOR, m, n, n, a.data(), m, tau.data());
  ENGRAM_CHECK(info == 0, "orthogonal_: dorgqr failed (info {})", info);
  std::vector<double> out(rows * cols);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double q = gain * a[i + j * m] * sign[j];
      if (tall) out[i * cols + j] = q;  // W = Q
      else out[j * cols + i] = q;       // W = Q^T
    }
  raw::copy_(t, from_vector(out, t.shape(), t.dtype()));
}

}  // namespace engram::nn::init
