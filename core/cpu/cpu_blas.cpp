// core/cpu/cpu_blas.cpp — every matrix product goes through OpenBLAS (cblas_sgemm / dgemm).
//
// out[b] = alpha * A[b] @ B[b] + beta * out[b], A [.., M, K], B [.., K, N]. A transposed view
// (column-major inner dims) is passed to BLAS as Trans instead of being copied; anything else
// with odd inner strides is made contiguous first. Batch dims may have stride 0 (broadcast).
//
// complex_matmul: out[b] = op(A[b]) op(B[b]) on complex [.., rows, cols, 2] (interleaved re, im
// is exactly BLAS's complex layout), op = ConjTrans for an adjoint operand (the backward's
// G B^H and A^H G), through cblas_cgemm / zgemm. Counted as 8 M N K flops.
#include <cblas.h>

#include <algorithm>

#include "core/backend.h"
#include "core/kernel_args.h"
#include "core/flops.h"

namespace engram::cpu {

struct GemmOperand {
  Tensor t;
  CBLAS_TRANSPOSE trans;
  int64_t ld;
};

// Decide how BLAS should read the last two dims [rows, cols] of t.
static GemmOperand gemm_operand(const Tensor& t) {
  int64_t r = t.shape()[t.dim() - 2], c = t.shape()[t.dim() - 1];
  int64_t sr = t.strides()[t.dim() - 2], sc = t.strides()[t.dim() - 1];
  if ((sc == 1 || c == 1) && (sr >= std::max<int64_t>(c, 1) || r == 1))
    return {t, CblasNoTrans, std::max<int64_t>(r == 1 ? c : sr, 1)};
  if ((sr == 1 || r == 1) && (sc >= std::max<int64_t>(r, 1) || c == 1))
    return {t, CblasTrans, std::max<int64_t>(c == 1 ? r : sc, 1)};
  Tensor cont = raw::contiguous(t);  // odd strides: copy once
  return {cont, CblasNoTrans, std::max<int64_t>(c, 1)};
}

static void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K, float alpha,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                 int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
}
static void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K,
                 double alpha, const double* a, int64_t lda, const double* b, int64_t ldb,
                 double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
}

static void matmul(Tref a, Tref b, Tref out, double alpha, double beta) {
  const int64_t nd = out.dim();
  ENGRAM_CHECK(nd >= 2 && a.dim() == nd && b.dim() == nd && out.is_contiguous(),
               "matmul kernel: expects equal-rank operands and a contiguous out, got {} {} {}",
               shape_str(a.shape()), shape_str(b.shape()), shape_str(out.shape()));
  int64_t M = out.shape()[nd - 2], N = out.shape()[nd - 1], K = a.shape()[nd - 1];
  GemmOperand A = gemm_operand(a), B = gemm_operand(b);
  int64_t batches = out.numel() / std::max<int64_t>(M * N, 1);
  if (M * N == 0) return;
  flops::add(2 * M * N * K * batches);  // 2 M N K per product (core/flops.h)
  ENGRAM_DISPATCH_FLOAT(out.dtype(), "matmul", [&] {
    using T = scalar_t;
    const T *ap = A.t.data<T>(), *bp = B.t.data<T>();
    T* op = out.data<T>();
    for (int64_t bi = 0; bi < batches; ++bi) {
      int64_t oa = 0, ob = 0, rem = bi;
      for (int64_t d = nd - 3; d >= 0; --d) {
        int64_t i = rem % out.shape()[d];
        rem /= out.shape()[d];
        oa += i * A.t.strides()[d];
        ob += i * B.t.strides()[d];
      }
      T* c = op + bi * M * N;
      if (K == 0) {
        for (int64_t i = 0; i < M * N; ++i) c[i] = beta == 0 ? T(0) : T(beta) * c[i];
        continue;
      }
      gemm(A.trans, B.trans, M, N, K, T(alpha), ap + oa, A.ld, bp + ob, B.ld, T(beta), c, N);
    }
  });
}

static void cgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K,
                  const float* a, int64_t lda, const float* b, int64_t ldb, float* c) {
  const float one[2] = {1, 0}, zero[2] = {0, 0};
  cblas_cgemm(CblasRowMajor, ta, tb, M, N, K, one, a, lda, b, ldb, zero, c, N);
}
static void cgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K,
                  const double* a, int64_t lda, const double* b, int64_t ldb, double* c) {
  const double one[2] = {1, 0}, zero[2] = {0, 0};
  cblas_zgemm(CblasRowMajor, ta, tb, M, N, K, one, a, lda, b, ldb, zero, c, N);
}

static void complex_matmul(Tref a, Tref b, bool adjoint_a, bool adjoint_b, Tref out) {
  const int64_t K = check_complex_matmul_args(a, b, adjoint_a, adjoint_b, out);
  const int64_t nd = out.dim(), M = out.shape()[nd - 3], N = out.shape()[nd - 2];
  const int64_t lda = a.shape()[nd - 2], ldb = b.shape()[nd - 2];  // in complex elements
  const int64_t batches = out.numel() / std::max<int64_t>(2 * M * N, 1);
  if (M * N == 0) return;
  flops::add(8 * M * N * K * batches);
  const CBLAS_TRANSPOSE ta = adjoint_a ? CblasConjTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = adjoint_b ? CblasConjTrans : CblasNoTrans;
  ENGRAM_DISPATCH_FLOAT(out.dtype(), "complex_matmul", [&] {
    using T = scalar_t;
    const T *ap = a.data<T>(), *bp = b.data<T>();
    T* op = out.data<T>();
    for (int64_t bi = 0; bi < batches; ++bi) {
      const auto [oa, ob] = batch_offsets(out, a, b, bi, 3);
      T* c = op + bi * 2 * M * N;
      if (K == 0) {
        std::fill(c, c + 2 * M * N, T(0));
        continue;
      }
      cgemm(ta, tb, M, N, K, ap + oa, std::max<int64_t>(lda, 1), bp + ob,
            std::max<int64_t>(ldb, 1), c);
    }
  });
}

void register_blas(Backend& b) {
  b.matmul = matmul;
  b.complex_matmul = complex_matmul;
}

}  // namespace engram::cpu
