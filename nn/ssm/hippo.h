// nn/ssm/hippo.h — the HiPPO-LegS matrices and their diagonalisation, shared by S4, S4D and S5.
//
// HiPPO-LegS (Gu et al. 2020; lindermanlab/S5 s5/ssm_init.py make_HiPPO, from srush/annotated-s4):
//   A[n, k] = -sqrt(2n+1) sqrt(2k+1)  for n > k,   -(n+1)  for n = k,   0  for n < k
//   B[n]    =  sqrt(2n+1)
// NPLR form (make_NPLR_HiPPO): with the low-rank factor P[n] = sqrt(n + 1/2), S = A + P P^T is
// normal: its diagonal is -1/2 everywhere and the rest is skew-symmetric, S = -1/2 I + S_skew.
// DPLR form (make_DPLR_HiPPO): S = V diag(Lambda) V^*, V unitary, with
//   Lambda = mean(diag S) + i * eigenvalues of the Hermitian -i S_skew (ascending)
// so A = V (diag(Lambda) - (V^* P)(V^* P)^*) V^*; B and P move to the eigenbasis as V^* B, V^* P.
// (numpy's eigh(S * -1j) in the reference reads only a triangle and the real part of the diagonal,
// so it diagonalises exactly -i S_skew.) The eigenvalues come in conjugate pairs -1/2 +- i w, and
// for odd N one is -1/2; eigh's ascending order puts the negative imaginary halves first.
//
// Everything here is f64 host data: plain vectors (row-major matrices), plus helpers that turn
// complex vectors into tensors in engram's complex layout (a trailing dim 2 = [re, im]).
#pragma once
#include <complex>
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace engram::nn::ssm {

using cdouble = std::complex<double>;

// HiPPO-LegS in the NPLR form: A [N, N] row-major, P [N], B [N].
struct HippoLegS {
  int64_t N = 0;
  std::vector<double> A, P, B;
};
HippoLegS make_hippo_legs(int64_t N);

// The diagonalised (DPLR) form of HiPPO-LegS.
struct HippoDPLR {
  int64_t N = 0;
  std::vector<cdouble> Lambda;  // [N] eigenvalues of S, ascending imaginary part
  std::vector<cdouble> V;       // [N, N] row-major, column j = eigenvector of Lambda[j]; unitary
  std::vector<cdouble> P;       // [N] V^* P (the low-rank factor in the eigenbasis)
  std::vector<cdouble> B;       // [N] V^* B
  std::vector<double> B_orig;   // [N] B before the change of basis, sqrt(2n+1)
};
HippoDPLR make_dplr_hippo(int64_t N);

// Eigen-decomposition of a Hermitian matrix H [n, n] (row-major; read in full, must be
// Hermitian): H = V diag(w) V^*, w ascending, V's columns orthonormal eigenvectors (LAPACK zheev).
void hermitian_eigh(int64_t n, const std::vector<cdouble>& H, std::vector<double>& w,
                    std::vector<cdouble>& V);

// Complex host data as an f64 tensor of `shape` + [2] ([re, im] last); shape's numel must be
// values.size().
Tensor complex_tensor(const std::vector<cdouble>& values, const Shape& shape);
// The inverse: an f64 or f32 tensor [.., 2] read back as complex values (row-major order).
std::vector<cdouble> complex_values(const Tensor& t);

}  // namespace engram::nn::ssm
