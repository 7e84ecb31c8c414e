// nn/ssm/hippo.cpp — HiPPO-LegS, its NPLR and DPLR forms (equations in nn/ssm/hippo.h).
#include "nn/ssm/hippo.h"

#include <cmath>

#include "core/error.h"

// LAPACKE's complex arguments as std::complex (layout-compatible with Fortran's COMPLEX*16).
#define lapack_complex_float std::complex<float>
#define lapack_complex_double std::complex<double>
#include <lapacke.h>

namespace engram::nn::ssm {

HippoLegS make_hippo_legs(int64_t N) {
  ENGRAM_CHECK(N >= 1, "make_hippo_legs: the state size N must be >= 1, got {}", N);
  HippoLegS h;
  h.N = N;
  h.A.assign(N * N, 0.0);
  h.P.resize(N);
  h.B.resize(N);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < n; ++k) h.A[n * N + k] = -std::sqrt(2.0 * n + 1) * std::sqrt(2.0 * k + 1);
    h.A[n * N + n] = -(n + 1.0);
    h.P[n] = std::sqrt(n + 0.5);
    h.B[n] = std::sqrt(2.0 * n + 1);
  }
  return h;
}

void hermitian_eigh(int64_t n, const std::vector<cdouble>& H, std::vector<double>& w,
                    std::vector<cdouble>& V) {
  ENGRAM_CHECK(n >= 1 && (int64_t)H.size() == n * n,
               "hermitian_eigh: expected an [{}, {}] matrix, got {} values", n, n, H.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j)
      ENGRAM_CHECK(std::abs(H[i * n + j] - std::conj(H[j * n + i])) <=
                       1e-12 * (1 + std::abs(H[i * n + j])),
                   "hermitian_eigh: the matrix is not Hermitian at ({}, {})", i, j);
  V = H;  // zheev overwrites the matrix with its eigenvectors
  w.assign(n, 0.0);
  lapack_int info = LAPACKE_zheev(LAPACK_ROW_MAJOR, 'V', 'L', (lapack_int)n, V.data(),
                                  (lapack_int)n, w.data());
  ENGRAM_CHECK(info == 0, "hermitian_eigh: LAPACK zheev failed (info {}) for n = {}", info, n);
}

HippoDPLR make_dplr_hippo(int64_t N) {
  HippoLegS h = make_hippo_legs(N);
  // S = A + P P^T, its mean diagonal (the common real part) and the Hermitian -i S_skew
  std::vector<double> S(N * N);
  double diag_mean = 0;
  for (int64_t i = 0; i < N; ++i) {
    for (int64_t j = 0; j < N; ++j) S[i * N + j] = h.A[i * N + j] + h.P[i] * h.P[j];
    diag_mean += S[i * N + i] / N;
  }
  std::vector<cdouble> H(N * N);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j)
      H[i * N + j] = i == j ? cdouble(0) : cdouble(0, -1) * 0.5 * (S[i * N + j] - S[j * N + i]);
  std::vector<double> imag;
  HippoDPLR d;
  d.N = N;
  hermitian_eigh(N, H, imag, d.V);
  d.Lambda.resize(N);
  for (int64_t j = 0; j < N; ++j) d.Lambda[j] = cdouble(diag_mean, imag[j]);
  d.B_orig = h.B;
  d.P.assign(N, 0.0);
  d.B.assign(N, 0.0);
  for (int64_t j = 0; j < N; ++j)  // (V^* x)_j = sum_i conj(V[i, j]) x_i
    for (int64_t i = 0; i < N; ++i) {
      d.P[j] += std::conj(d.V[i * N + j]) * h.P[i];
      d.B[j] += std::conj(d.V[i * N + j]) * h.B[i];
    }
  return d;
}

Tensor complex_tensor(const std::vector<cdouble>& values, const Shape& shape) {
  ENGRAM_CHECK(shape_numel(shape) == (int64_t)values.size(),
               "complex_tensor: {} values do not fill the shape {}", values.size(),
               shape_str(shape));
  std::vector<double> flat(2 * values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    flat[2 * i] = values[i].real();
    flat[2 * i + 1] = values[i].imag();
  }
  Shape s = shape;
  s.push_back(2);
  return from_vector<double>(flat, s);
}

std::vector<cdouble> complex_values(const Tensor& t) {
  ENGRAM_CHECK(t.dim() >= 1 && t.shape().back() == 2,
               "complex_values: expected a tensor [.., 2] ([re, im] last), got {}",
               shape_str(t.shape()));
  std::vector<double> flat = t.to_vector<double>();
  std::vector<cdouble> v(flat.size() / 2);
  for (size_t i = 0; i < v.size(); ++i) v[i] = cdouble(flat[2 * i], flat[2 * i + 1]);
  return v;
}

}  // namespace engram::nn::ssm
