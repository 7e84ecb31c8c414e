// cuda/cuda_blas.cu — the matrix product on the GPU through cuBLAS (mirrors core/cpu/cpu_blas.cpp).
//
//   out[b] = alpha * A[b] @ B[b] + beta * out[b],   A [.., M, K], B [.., K, N], out [.., M, N]
//
// out is contiguous; A and B share out's batch shape (a batch stride of 0, or a size-1 batch dim,
// is a broadcast). As on the CPU, each operand's inner two dims are read in place when they are
// row-major (NoTrans) or column-major, i.e. a transposed view (Trans), with the same leading
// dimension the CPU passes to cblas; any other inner strides are copied contiguous once.
//
// cuBLAS is column-major: a row-major [R, C] matrix with row stride ld is, to cuBLAS, its
// transpose [C, R] with leading dimension ld. So row-major C = A B is column-major
// C^T = B^T A^T: we call gemm with the operands swapped (B first, m = N, n = M) and keep each
// operand's Trans flag and ld as the CPU computes them.
//
// Batches: the batch dims (size-1 dims dropped) are merged from the innermost outwards while both
// operands stay uniformly strided; those run as one cublas*StridedBatched call and any remaining
// outer batch dims are looped over on the host. f32 uses cublasGemmStridedBatchedEx with
// CUBLAS_COMPUTE_32F (exact f32, as the CPU), or CUBLAS_COMPUTE_32F_FAST_TF32 only when
// tf32_enabled(); f64 uses cublasDgemmStridedBatched. K == 0 writes out = beta * out (0 when
// beta == 0, never reading out), as the CPU. i64 fails as on the CPU (floating dtypes only).
//
// complex_matmul: out[b] = op(A[b]) op(B[b]) on dense complex [.., rows, cols, 2] (cuComplex /
// cuDoubleComplex layout), op = conjugate transpose where adjoint. The column-major view of a
// row-major X is X^T and (X^H)^T = conj(X) = (X^T)^H, so the swapped call C^T = op(B)^T op(A)^T
// takes CUBLAS_OP_C exactly where the CPU passes CblasConjTrans. One cublasCgemm / Zgemm per
// batch element, looped on the host (the S4 products it serves have few batch elements).
#include <cublas_v2.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "core/flops.h"
#include "core/kernel_args.h"
#include "cuda/common.cuh"

namespace engram::cuda {

// Every cuBLAS call is checked: a failure names the op and cuBLAS's status name and text.
static void check_cublas(cublasStatus_t st, const char* call, const char* op) {
  if (st != CUBLAS_STATUS_SUCCESS)
    ENGRAM_FAIL("cuBLAS error in {}: {} returned {} ({})", op, call, cublasGetStatusName(st),
                cublasGetStatusString(st));
}
#define ENGRAM_CUBLAS_CHECK(CALL, OP) check_cublas((CALL), #CALL, (OP))

// One handle for the process, created at the first product and bound to the backend's stream,
// so cuBLAS work is ordered with every other kernel. It is never destroyed: destroying it from a
// static destructor could run after the CUDA runtime has shut down.
static cublasHandle_t handle() {
  static cublasHandle_t h = [] {
    cublasHandle_t created = nullptr;
    ENGRAM_CUBLAS_CHECK(cublasCreate(&created), "matmul (cuBLAS set-up)");
    ENGRAM_CUBLAS_CHECK(cublasSetStream(created, stream()), "matmul (cuBLAS set-up)");
    return created;
  }();
  return h;
}

struct GemmOperand {
  Tensor t;              // the tensor read (the operand itself, or a contiguous copy)
  cublasOperation_t op;  // N: row-major inner dims; T: column-major (a transposed view)
  int64_t ld;
};

// How cuBLAS reads the last two dims [rows, cols] of t: the CPU's gemm_operand, line for line.
static GemmOperand gemm_operand(const Tensor& t) {
  int64_t r = t.shape()[t.dim() - 2], c = t.shape()[t.dim() - 1];
  int64_t sr = t.strides()[t.dim() - 2], sc = t.strides()[t.dim() - 1];
  if ((sc == 1 || c == 1) && (sr >= std::max<int64_t>(c, 1) || r == 1))
    return {t, CUBLAS_OP_N, std::max<int64_t>(r == 1 ? c : sr, 1)};
  if ((sr == 1 || r == 1) && (sc >= std::max<int64_t>(r, 1) || c == 1))
    return {t, CUBLAS_OP_T, std::max<int64_t>(c == 1 ? r : sc, 1)};
  Tensor cont = raw::contiguous(t);  // odd strides: one device copy
  return {cont, CUBLAS_OP_N, std::max<int64_t>(c, 1)};
}

// One strided-batched product; m, n, k in cuBLAS's (column-major) terms.
static void gemm_batched(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                         double alpha, const float* a, int lda, long long sa, const float* b,
                         int ldb, long long sb, double beta, float* c, int ldc, long long scc,
                         int count) {
  const float al = float(alpha), be = float(beta);
  const cublasComputeType_t ct = tf32_enabled() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  ENGRAM_CUBLAS_CHECK(cublasGemmStridedBatchedEx(handle(), ta, tb, m, n, k, &al, a, CUDA_R_32F, lda,
                                                 sa, b, CUDA_R_32F, ldb, sb, &be, c, CUDA_R_32F,
                                                 ldc, scc, count, ct, CUBLAS_GEMM_DEFAULT),
                      "matmul");
}
static void gemm_batched(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                         double alpha, const double* a, int lda, long long sa, const double* b,
                         int ldb, long long sb, double beta, double* c, int ldc, long long scc,
                         int count) {
  ENGRAM_CUBLAS_CHECK(cublasDgemmStridedBatched(handle(), ta, tb, m, n, k, &alpha, a, lda, sa, b,
                                                ldb, sb, &beta, c, ldc, scc, count),
                      "matmul");
}

// K == 0: the product is empty, so out = beta * out (exactly 0 when beta == 0, as the CPU).
template <typename T> static void scale_out(Tref out, double beta) {
  T* o = out.data<T>();
  const T b = T(beta);
  const bool zero = beta == 0;
  for_each_index(out.numel(), [=] __device__(int64_t i) { o[i] = zero ? T(0) : b * o[i]; },
                 "matmul");
}

// One batch dim as the products see it: its size and each operand's stride.
struct BatchDim {
  int64_t size, sa, sb;
};

template <typename T>
static void matmul_typed(const GemmOperand& A, const GemmOperand& B, Tref out, double alpha,
                         double beta, int64_t M, int64_t N, int64_t K) {
  if (K == 0) return scale_out<T>(out, beta);
  const int64_t nd = out.dim();
  // Batch dims, size-1 ones dropped; a broadcast (size-1 operand dim) reads with stride 0.
  std::vector<BatchDim> dims;
  for (int64_t d = 0; d < nd - 2; ++d) {
    if (out.shape()[d] == 1) continue;
    dims.push_back({out.shape()[d], A.t.shape()[d] == 1 ? 0 : A.t.strides()[d],
                    B.t.shape()[d] == 1 ? 0 : B.t.strides()[d]});
  }
  // Merge the innermost dims while both operands stay uniformly strided: one batched call.
  int64_t inner = 1, sa = 0, sb = 0;
  size_t first = dims.size();
  if (!dims.empty()) {
    first = dims.size() - 1;
    inner = dims[first].size;
    sa = dims[first].sa;
    sb = dims[first].sb;
    while (first > 0 && dims[first - 1].sa == sa * inner && dims[first - 1].sb == sb * inner) {
      --first;
      inner *= dims[first].size;
    }
  }
  int64_t outer = 1;
  for (size_t i = 0; i < first; ++i) outer *= dims[i].size;

  const T *ap = A.t.data<T>(), *bp = B.t.data<T>();
  T* op = out.data<T>();
  const int64_t mn = M * N;
  constexpr int64_t kMaxCount = 1 << 16;  // products per cuBLAS call
  for (int64_t o = 0; o < outer; ++o) {
    int64_t oa = 0, ob = 0, rem = o;
    for (size_t i = first; i-- > 0;) {
      const int64_t idx = rem % dims[i].size;
      rem /= dims[i].size;
      oa += idx * dims[i].sa;
      ob += idx * dims[i].sb;
    }
    for (int64_t b0 = 0; b0 < inner; b0 += kMaxCount) {
      const int count = (int)std::min(kMaxCount, inner - b0);
      // column-major C^T [N, M] = op(B)^T [N, K] op(A)^T [K, M]
      gemm_batched(B.op, A.op, (int)N, (int)M, (int)K, alpha, bp + ob + b0 * sb, (int)B.ld, sb,
                   ap + oa + b0 * sa, (int)A.ld, sa, beta, op + (o * inner + b0) * mn, (int)N, mn,
                   count);
    }
  }
}

static void matmul(Tref a, Tref b, Tref out, double alpha, double beta) {
  require_cuda(a, "matmul", "a");
  require_cuda(b, "matmul", "b");
  require_cuda(out, "matmul", "out");
  const int64_t nd = out.dim();
  ENGRAM_CHECK(nd >= 2 && a.dim() == nd && b.dim() == nd && out.is_contiguous(),
               "matmul kernel: expects equal-rank operands and a contiguous out, got {} {} {}",
               shape_str(a.shape()), shape_str(b.shape()), shape_str(out.shape()));
  const int64_t M = out.shape()[nd - 2], N = out.shape()[nd - 1], K = a.shape()[nd - 1];
  ENGRAM_CHECK(a.shape()[nd - 2] == M && b.shape()[nd - 2] == K && b.shape()[nd - 1] == N,
               "matmul kernel: shapes {} @ {} do not give {}", shape_str(a.shape()),
               shape_str(b.shape()), shape_str(out.shape()));
  for (int64_t d = 0; d < nd - 2; ++d)
    ENGRAM_CHECK((a.shape()[d] == out.shape()[d] || a.shape()[d] == 1) &&
                     (b.shape()[d] == out.shape()[d] || b.shape()[d] == 1),
                 "matmul kernel: batch shapes of {} and {} do not match out {}",
                 shape_str(a.shape()), shape_str(b.shape()), shape_str(out.shape()));
  ENGRAM_CHECK(a.dtype() == out.dtype() && b.dtype() == out.dtype(),
               "matmul kernel: dtypes differ: a {}, b {}, out {}", dtype_name(a.dtype()),
               dtype_name(b.dtype()), dtype_name(out.dtype()));
  const int64_t batches = out.numel() / std::max<int64_t>(M * N, 1);
  if (M * N == 0) return;
  GemmOperand A = gemm_operand(a), B = gemm_operand(b);
  ENGRAM_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && A.ld <= INT_MAX && B.ld <= INT_MAX,
               "matmul kernel: dims M {} N {} K {} (lda {}, ldb {}) exceed cuBLAS's 32-bit limit",
               M, N, K, A.ld, B.ld);
  flops::add(2 * M * N * K * batches);  // 2 M N K per product (core/flops.h)
  ENGRAM_DISPATCH_FLOAT(out.dtype(), "matmul", [&] {
    matmul_typed<scalar_t>(A, B, out, alpha, beta, M, N, K);
  });
}

static void cgemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float* a,
                  int lda, const float* b, int ldb, float* c, int ldc) {
  const cuComplex one = make_cuComplex(1, 0), zero = make_cuComplex(0, 0);
  ENGRAM_CUBLAS_CHECK(cublasCgemm(handle(), ta, tb, m, n, k, &one,
                                  reinterpret_cast<const cuComplex*>(a), lda,
                                  reinterpret_cast<const cuComplex*>(b), ldb, &zero,
                                  reinterpret_cast<cuComplex*>(c), ldc),
                      "complex_matmul");
}
static void cgemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const double* a,
                  int lda, const double* b, int ldb, double* c, int ldc) {
  const cuDoubleComplex one = make_cuDoubleComplex(1, 0), zero = make_cuDoubleComplex(0, 0);
  ENGRAM_CUBLAS_CHECK(cublasZgemm(handle(), ta, tb, m, n, k, &one,
                                  reinterpret_cast<const cuDoubleComplex*>(a), lda,
                                  reinterpret_cast<const cuDoubleComplex*>(b), ldb, &zero,
                                  reinterpret_cast<cuDoubleComplex*>(c), ldc),
                      "complex_matmul");
}

template <typename T>
static void complex_matmul_typed(Tref a, Tref b, bool adjoint_a, bool adjoint_b, Tref out,
                                 int64_t K) {
  const int64_t nd = out.dim(), M = out.shape()[nd - 3], N = out.shape()[nd - 2];
  const int64_t lda = std::max<int64_t>(a.shape()[nd - 2], 1), ldb = std::max<int64_t>(b.shape()[nd - 2], 1);
  const int64_t batches = out.numel() / (2 * M * N);
  if (K == 0) return scale_out<T>(out, 0.0);
  const cublasOperation_t ta = adjoint_a ? CUBLAS_OP_C : CUBLAS_OP_N;
  const cublasOperation_t tb = adjoint_b ? CUBLAS_OP_C : CUBLAS_OP_N;
  const T *ap = a.data<T>(), *bp = b.data<T>();
  T* op = out.data<T>();
  for (int64_t bi = 0; bi < batches; ++bi) {
    const auto [oa, ob] = batch_offsets(out, a, b, bi, 3);
    // column-major C^T [N, M] = op(B)^T [N, K] op(A)^T [K, M]
    cgemm(tb, ta, (int)N, (int)M, (int)K, bp + ob, (int)ldb, ap + oa, (int)lda,
          op + bi * 2 * M * N, (int)N);
  }
}

static void complex_matmul(Tref a, Tref b, bool adjoint_a, bool adjoint_b, Tref out) {
  require_cuda(a, "complex_matmul", "a");
  require_cuda(b, "complex_matmul", "b");
  require_cuda(out, "complex_matmul", "out");
  const int64_t K = check_complex_matmul_args(a, b, adjoint_a, adjoint_b, out);
  const int64_t nd = out.dim(), M = out.shape()[nd - 3], N = out.shape()[nd - 2];
  if (M * N == 0) return;
  ENGRAM_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && a.shape()[nd - 2] <= INT_MAX &&
                   b.shape()[nd - 2] <= INT_MAX,
               "complex_matmul kernel: dims M {} N {} K {} exceed cuBLAS's 32-bit limit", M, N, K);
  flops::add(8 * M * N * K * (out.numel() / (2 * M * N)));
  ENGRAM_DISPATCH_FLOAT(out.dtype(), "complex_matmul", [&] {
    complex_matmul_typed<scalar_t>(a, b, adjoint_a, adjoint_b, out, K);
  });
}

void register_blas(Backend& b) {
  b.matmul = matmul;
  b.complex_matmul = complex_matmul;
}

}  // namespace engram::cuda
