// autograd/matmul.cpp — matrix products (all through BLAS via the matmul kernel).
//
// y = a @ b with a [.., M, K], b [.., K, N]; batch dims broadcast. 1-D operands follow NumPy:
// a vector a is treated as [1, K] and b as [K, 1], and the added dim is dropped from y.
//   da += dy @ b^T   (summed over broadcast batch dims by the tape)
//   db += a^T @ dy   (for one matrix b shared by a batch: one product over all rows)
// Transposes are views: the kernel passes them to BLAS as Trans flags, no copies.
//
// complex_matmul(a, b): a [.., M, K, 2] @ b [.., K, N, 2] in complex arithmetic (trailing re, im),
// batch dims broadcast; one complex gemm per batch element (cgemm / zgemm), in place of the four
// real products of strided re / im views (each copied contiguous for BLAS) and their recombination.
// The product is holomorphic in each factor, so the real-pair gradients are
//   da = dy b^H,   db = a^H dy          (conjugate transposes as BLAS flags; summed over broadcast
//                                        batch dims by the tape)
#include "autograd/ops.h"
#include "autograd/raw_ops.h"
#include "core/kernel_args.h"

namespace engram {

// db = a^T dy for a matrix b [K, N], from a [rows, K] and dy [rows, N]. When b is W^T, a
// transposed view of a contiguous W [N, K] (Linear), dW = dy^T a is computed in W's own layout
// and its transposed view handed back, so the transpose's backward yields a contiguous [N, K]
// gradient the tape adopts, instead of a strided copy of a^T dy.
static Tensor matrix_grad(const Tensor& b, const Tensor& a, const Tensor& dy) {
  if (b.strides()[0] == 1 && b.strides()[1] == b.shape()[0] && b.shape()[0] > 1)
    return raw::transpose(rk::matmul(raw::transpose(dy, 0, 1), a), 0, 1);
  return rk::matmul(raw::transpose(a, 0, 1), dy);
}

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  rk::check_same(a_in, b_in, "matmul");
  ENGRAM_CHECK(a_in.dim() >= 1 && b_in.dim() >= 1, "matmul: scalars are not allowed ({} @ {})",
               shape_str(a_in.shape()), shape_str(b_in.shape()));
  // Promote vectors to matrices, remember to drop the added dims from the result.
  Tensor a = a_in.dim() == 1 ? reshape(a_in, {1, a_in.shape()[0]}) : a_in;
  Tensor b = b_in.dim() == 1 ? reshape(b_in, {b_in.shape()[0], 1}) : b_in;
  int64_t M = a.shape()[a.dim() - 2], K = a.shape()[a.dim() - 1];
  int64_t K2 = b.shape()[b.dim() - 2], N = b.shape()[b.dim() - 1];
  ENGRAM_CHECK(K == K2, "matmul: inner dimensions differ: {} @ {}", shape_str(a_in.shape()),
               shape_str(b_in.shape()));
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(ba, bb, "matmul (batch dims)");
  Shape sa = batch, sb = batch, sy = batch;
  sa.insert(sa.end(), {M, K});
  sb.insert(sb.end(), {K, N});
  sy.insert(sy.end(), {M, N});
  Tensor ae = raw::expand(a, sa), be = raw::expand(b, sb);
  Tensor y = empty(sy, a.dtype(), a.device());
  ENGRAM_KERNEL(a.device(), matmul)(ae, be, y, 1.0, 0.0);
  bool need_da = a.requires_grad(), need_db = b.requires_grad();
  // One matrix b shared by every batch element (a Linear layer on a sequence, [..., M, K] @
  // [K, N]): the forward stays one product per batch element, so each sequence's values do not
  // depend on how many sequences share the batch (data-parallel runs split it: tests/mpi/), but
  // db is one product over all rows instead of per-element [.., K, N] gradients summed after.
  const bool shared_b = b.dim() == 2 && !batch.empty();
  record1("matmul", {a, b}, y, [ae, be, b, need_da, need_db, shared_b, K, N](const Tensor& dy) {
    Tensor da, db;
    if (need_da) da = rk::matmul(dy, raw::transpose(be, -1, -2));
    if (need_db && shared_b)
      db = matrix_grad(b, raw::reshape(ae, {-1, K}), raw::reshape(dy, {-1, N}));
    else if (need_db && be.dim() == 2)
      db = matrix_grad(b, ae, dy);
    else if (need_db)
      db = rk::matmul(raw::transpose(ae, -1, -2), dy);
    return std::vector<Tensor>{da, db};
  });
  Shape out = batch;
  if (a_in.dim() > 1) out.push_back(M);
  if (b_in.dim() > 1) out.push_back(N);
  return out == sy ? y : reshape(y, out);
}

Tensor complex_matmul(const Tensor& a_in, const Tensor& b_in) {
  rk::check_same(a_in, b_in, "complex_matmul");
  ENGRAM_CHECK(is_floating(a_in.dtype()), "complex_matmul: expected floating tensors, got {}",
               dtype_name(a_in.dtype()));
  ENGRAM_CHECK(a_in.dim() >= 3 && b_in.dim() >= 3 && a_in.shape().back() == 2 &&
                   b_in.shape().back() == 2,
               "complex_matmul: expects complex matrices [.., rows, cols, 2], got {} and {}",
               shape_str(a_in.shape()), shape_str(b_in.shape()));
  // the kernel reads each matrix densely (core/kernel_args.h); anything else is copied once
  Tensor a = dense_complex_matrices(a_in) ? a_in : raw::contiguous(a_in);
  Tensor b = dense_complex_matrices(b_in) ? b_in : raw::contiguous(b_in);
  const int64_t M = a.shape()[a.dim() - 3], K = a.shape()[a.dim() - 2];
  const int64_t K2 = b.shape()[b.dim() - 3], N = b.shape()[b.dim() - 2];
  ENGRAM_CHECK(K == K2, "complex_matmul: inner dimensions differ: {} @ {}",
               shape_str(a_in.shape()), shape_str(b_in.shape()));
  Shape ba(a.shape().begin(), a.shape().end() - 3), bb(b.shape().begin(), b.shape().end() - 3);
  Shape batch = broadcast_shapes(ba, bb, "complex_matmul (batch dims)");
  Shape sa = batch, sb = batch, sy = batch;
  sa.insert(sa.end(), {M, K, 2});
  sb.insert(sb.end(), {K, N, 2});
  sy.insert(sy.end(), {M, N, 2});
  Tensor ae = raw::expand(a, sa), be = raw::expand(b, sb);
  Tensor y = empty(sy, a.dtype(), a.device());
  ENGRAM_KERNEL(a.device(), complex_matmul)(ae, be, false, false, y);
  const bool need_da = a_in.requires_grad(), need_db = b_in.requires_grad();
  record1("complex_matmul", {a_in, b_in}, y, [ae, be, sa, sb, need_da, need_db](const Tensor& dy) {
    Tensor g = raw::contiguous(dy), da, db;
    if (need_da) {
      da = empty(sa, g.dtype(), g.device());
      ENGRAM_KERNEL(g.device(), complex_matmul)(g, be, false, true, da);  // dy b^H
    }
    if (need_db) {
      db = empty(sb, g.dtype(), g.device());
      ENGRAM_KERNEL(g.device(), complex_matmul)(ae, g, true, false, db);  // a^H dy
    }
    return std::vector<Tensor>{da, db};
  });
  return y;
}

// y = a b^T for vectors: y_ij = a_i b_j
Tensor outer(const Tensor& a, const Tensor& b) {
  ENGRAM_CHECK(a.dim() == 1 && b.dim() == 1, "outer: expects two vectors, got {} and {}",
               shape_str(a.shape()), shape_str(b.shape()));
  return matmul(reshape(a, {a.shape()[0], 1}), reshape(b, {1, b.shape()[0]}));
}

}  // namespace engram
