// cuda/cuda_index.cu — index_select / index_add / gather / scatter_add on the GPU
// (mirrors core/cpu/cpu_index.cpp; idx is i64).
//
//   index_select: out[.., i, ..] = x[.., idx[i], ..]      (idx 1-D along `dim`; any dtype)
//   index_add:    out[.., idx[i], ..] += src[.., i, ..]   (its adjoint; f32/f64)
//   gather:       out[i][j] = x[i][idx[i][j]]  (dim 1 shown; idx has out's shape; f32/f64)
//   scatter_add:  out[i][idx[i][j]] += src[i][j]          (its adjoint; f32/f64)
//
// Every index is bounds-checked before anything is written, as the CPU checks index_select /
// index_add up front: a small kernel records the first (lowest flat position) index outside
// [0, n) with atomicMin in a Scratch word, which is copied back; the host then reads that index
// and fails with the CPU's message ("index v at position p is out of range [0, n)"; p is the
// element offset in idx, which for the 1-D contiguous idx of select/add is its position i). This
// costs one host synchronisation per call.
//
// The kernels walk the elements of out (select), src (add) or idx (gather, scatter_add) with the
// Strided indexer, so every operand may be an arbitrary strided view: the operand being indexed
// gets stride 0 along `dim` and the index supplies the position there. For select/add the
// position i along dim of flat element f is (f / inner) % m, inner = the product of the dims
// after `dim` (the indexer walks row-major, so flat order is the logical order). Repeated
// indices in index_add / scatter_add collide, so those accumulate with atomicAdd (float and
// double; the summation order, and so the last bits in f32, may vary from run to run).
#include <climits>

#include "cuda/common.cuh"

namespace engram::cuda {

// ---------------------------------------------------------------- bounds check
__global__ void find_bad_index_kernel(const int64_t* p, Strided<1> s, int64_t count, int64_t n,
                                      unsigned long long* first) {
  ENGRAM_GRID_STRIDE(i, count) {
    int64_t off[1];
    s.offsets(i, off);
    const int64_t v = p[off[0]];
    if (v < 0 || v >= n) atomicMin(first, (unsigned long long)i);
  }
}

// Fails naming `op` when an element of idx is outside [0, n).
static void check_indices(Tref idx, int64_t n, const char* op) {
  const int64_t count = idx.numel();
  if (count == 0) return;
  Scratch first(sizeof(unsigned long long));
  unsigned long long* fp = first.as<unsigned long long>();
  ENGRAM_CUDA_CHECK(cudaMemsetAsync(fp, 0xff, sizeof(unsigned long long), stream()), op);
  find_bad_index_kernel<<<blocks_for(count), kThreads, 0, stream()>>>(
      idx.data<int64_t>(), make_strided(idx.shape(), idx.strides(), op), count, n, fp);
  check_launch(op);
  unsigned long long host_first = 0;
  ENGRAM_CUDA_CHECK(cudaMemcpyAsync(&host_first, fp, sizeof(host_first), cudaMemcpyDeviceToHost,
                                    stream()),
                    op);
  synchronize(op);
  if (host_first == ULLONG_MAX) return;
  // The element offset of flat position host_first (row-major over idx's shape).
  int64_t rem = (int64_t)host_first, pos = 0;
  for (int64_t d = idx.dim() - 1; d >= 0; --d) {
    pos += (rem % idx.shape()[d]) * idx.strides()[d];
    rem /= idx.shape()[d];
  }
  int64_t v = 0;
  ENGRAM_CUDA_CHECK(cudaMemcpyAsync(&v, idx.data<int64_t>() + pos, sizeof(v),
                                    cudaMemcpyDeviceToHost, stream()),
                    op);
  synchronize(op);
  ENGRAM_FAIL("{}: index {} at position {} is out of range [0, {})", op, v, pos, n);
}

static void check_common(Tref t, int64_t dim, Tref idx, const char* op, const char* what) {
  require_cuda(t, op, what);
  require_cuda(idx, op, "idx");
  ENGRAM_CHECK(idx.dtype() == DType::i64, "{}: idx must be i64, got {}", op,
               dtype_name(idx.dtype()));
  ENGRAM_CHECK(dim >= 0 && dim < t.dim(), "{}: dim {} is out of range for {} of shape {}", op, dim,
               what, shape_str(t.shape()));
}

// Product of the dims after `dim`.
static int64_t inner_size(const Shape& s, int64_t dim) {
  int64_t inner = 1;
  for (size_t d = (size_t)dim + 1; d < s.size(); ++d) inner *= s[d];
  return inner;
}

// ---------------------------------------------------------------- index_select / index_add
// off[0]: out, off[1]: x (stride 0 along dim) over out's shape.
template <typename T>
__global__ void index_select_kernel(const T* x, T* out, const int64_t* idx, Strided<2> s,
                                    int64_t total, int64_t inner, int64_t m, int64_t sx) {
  ENGRAM_GRID_STRIDE(f, total) {
    int64_t off[2];
    s.offsets(f, off);
    out[off[0]] = x[off[1] + idx[(f / inner) % m] * sx];
  }
}

template <typename T>
static void index_select_typed(Tref x, int64_t dim, const Tensor& ic, Tref out) {
  Shape xs = x.strides();
  xs[dim] = 0;  // the index supplies the position along dim
  const int64_t total = out.numel();
  index_select_kernel<T><<<blocks_for(total), kThreads, 0, stream()>>>(
      x.data<T>(), out.data<T>(), ic.data<int64_t>(),
      make_strided(out.shape(), out.strides(), xs, "index_select"), total,
      inner_size(out.shape(), dim), ic.numel(), x.strides()[dim]);
  check_launch("index_select");
}

static void index_select(Tref x, int64_t dim, Tref idx, Tref out) {
  check_common(x, dim, idx, "index_select", "x");
  require_cuda(out, "index_select", "out");
  Tensor ic = raw::contiguous(idx);
  Shape want = x.shape();
  want[dim] = ic.numel();
  ENGRAM_CHECK(out.shape() == want && out.dtype() == x.dtype(),
               "index_select: out is {} {}, expected {} {}", dtype_name(out.dtype()),
               shape_str(out.shape()), dtype_name(x.dtype()), shape_str(want));
  check_indices(ic, x.shape()[dim], "index_select");
  if (out.numel() == 0) return;
  ENGRAM_DISPATCH_ALL(x.dtype(), "index_select",
                      [&] { index_select_typed<scalar_t>(x, dim, ic, out); });
}

// off[0]: out (stride 0 along dim), off[1]: src, over src's shape.
template <typename T>
__global__ void index_add_kernel(T* out, const T* src, const int64_t* idx, Strided<2> s,
                                 int64_t total, int64_t inner, int64_t m, int64_t so) {
  ENGRAM_GRID_STRIDE(f, total) {
    int64_t off[2];
    s.offsets(f, off);
    atomicAdd(out + off[0] + idx[(f / inner) % m] * so, src[off[1]]);
  }
}

template <typename T>
static void index_add_typed(Tref out, int64_t dim, const Tensor& ic, Tref src) {
  Shape os = out.strides();
  os[dim] = 0;
  const int64_t total = src.numel();
  index_add_kernel<T><<<blocks_for(total), kThreads, 0, stream()>>>(
      out.data<T>(), src.data<T>(), ic.data<int64_t>(),
      make_strided(src.shape(), os, src.strides(), "index_add"), total,
      inner_size(src.shape(), dim), ic.numel(), out.strides()[dim]);
  check_launch("index_add");
}

static void index_add(Tref out, int64_t dim, Tref idx, Tref src) {
  check_common(out, dim, idx, "index_add", "out");
  require_cuda(src, "index_add", "src");
  Tensor ic = raw::contiguous(idx);
  Shape want = out.shape();
  want[dim] = ic.numel();
  ENGRAM_CHECK(src.shape() == want && src.dtype() == out.dtype(),
               "index_add: src is {} {}, expected {} {}", dtype_name(src.dtype()),
               shape_str(src.shape()), dtype_name(out.dtype()), shape_str(want));
  check_indices(ic, out.shape()[dim], "index_add");
  if (src.numel() == 0) return;
  ENGRAM_DISPATCH_FLOAT(out.dtype(), "index_add",
                        [&] { index_add_typed<scalar_t>(out, dim, ic, src); });
}

// ---------------------------------------------------------------- gather / scatter_add
// Checks idx's rank and that it fits inside `t` off dim (the walk reads t with idx's shape).
static void check_fits(Tref idx, Tref t, int64_t dim, const char* op, const char* what) {
  bool ok = idx.dim() == t.dim();
  for (int64_t d = 0; ok && d < idx.dim(); ++d) ok = d == dim || idx.shape()[d] <= t.shape()[d];
  ENGRAM_CHECK(ok, "{}: idx of shape {} does not fit {} of shape {} (dim {})", op,
               shape_str(idx.shape()), what, shape_str(t.shape()), dim);
}

// off[0]: idx, off[1]: x (stride 0 along dim), off[2]: out, over idx's shape.
template <typename T>
__global__ void gather_kernel(const T* x, T* out, const int64_t* idx, Strided<3> s, int64_t total,
                              int64_t sx) {
  ENGRAM_GRID_STRIDE(f, total) {
    int64_t off[3];
    s.offsets(f, off);
    out[off[2]] = x[off[1] + idx[off[0]] * sx];
  }
}

template <typename T> static void gather_typed(Tref x, int64_t dim, Tref idx, Tref out) {
  Shape xs = x.strides();
  xs[dim] = 0;
  const int64_t total = idx.numel();
  gather_kernel<T><<<blocks_for(total), kThreads, 0, stream()>>>(
      x.data<T>(), out.data<T>(), idx.data<int64_t>(),
      make_strided(idx.shape(), idx.strides(), xs, out.strides(), "gather"), total,
      x.strides()[dim]);
  check_launch("gather");
}

static void gather(Tref x, int64_t dim, Tref idx, Tref out) {
  check_common(x, dim, idx, "gather", "x");
  require_cuda(out, "gather", "out");
  check_fits(idx, x, dim, "gather", "x");
  ENGRAM_CHECK(out.shape() == idx.shape() && out.dtype() == x.dtype(),
               "gather: out is {} {}, expected {} {}", dtype_name(out.dtype()),
               shape_str(out.shape()), dtype_name(x.dtype()), shape_str(idx.shape()));
  ENGRAM_DISPATCH_FLOAT(x.dtype(), "gather", [&] {
    check_indices(idx, x.shape()[dim], "gather");
    if (idx.numel() > 0) gather_typed<scalar_t>(x, dim, idx, out);
  });
}

// off[0]: idx, off[1]: out (stride 0 along dim), off[2]: src, over idx's shape.
template <typename T>
__global__ void scatter_add_kernel(T* out, const T* src, const int64_t* idx, Strided<3> s,
                                   int64_t total, int64_t so) {
  ENGRAM_GRID_STRIDE(f, total) {
    int64_t off[3];
    s.offsets(f, off);
    atomicAdd(out + off[1] + idx[off[0]] * so, src[off[2]]);
  }
}

template <typename T> static void scatter_add_typed(Tref out, int64_t dim, Tref idx, Tref src) {
  Shape os = out.strides();
  os[dim] = 0;
  const int64_t total = idx.numel();
  scatter_add_kernel<T><<<blocks_for(total), kThreads, 0, stream()>>>(
      out.data<T>(), src.data<T>(), idx.data<int64_t>(),
      make_strided(idx.shape(), idx.strides(), os, src.strides(), "scatter_add"), total,
      out.strides()[dim]);
  check_launch("scatter_add");
}

static void scatter_add(Tref out, int64_t dim, Tref idx, Tref src) {
  check_common(out, dim, idx, "scatter_add", "out");
  require_cuda(src, "scatter_add", "src");
  check_fits(idx, out, dim, "scatter_add", "out");
  bool fits_src = idx.dim() == src.dim();
  for (int64_t d = 0; fits_src && d < idx.dim(); ++d) fits_src = idx.shape()[d] <= src.shape()[d];
  ENGRAM_CHECK(fits_src && src.dtype() == out.dtype(),
               "scatter_add: src is {} {}, out {}; idx of shape {} must fit inside src",
               dtype_name(src.dtype()), shape_str(src.shape()), dtype_name(out.dtype()),
               shape_str(idx.shape()));
  ENGRAM_DISPATCH_FLOAT(out.dtype(), "scatter_add", [&] {
    check_indices(idx, out.shape()[dim], "scatter_add");
    if (idx.numel() > 0) scatter_add_typed<scalar_t>(out, dim, idx, src);
  });
}

void register_index(Backend& b) {
  b.index_select = index_select;
  b.index_add = index_add;
  b.gather = gather;
  b.scatter_add = scatter_add;
}

}  // namespace engram::cuda
