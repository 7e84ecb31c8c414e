// core/shape.h — shapes, strides and broadcasting rules (NumPy/PyTorch semantics).
//
// A Shape lists sizes outermost first; contiguous (row-major) strides are
// stride[i] = prod(shape[i+1:]). Broadcasting aligns shapes from the right; a size-1 (or
// missing) dim stretches to match the other operand.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace engram {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);
// Result shape of broadcasting a with b; throws naming `op` and both shapes if incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Wraps a possibly negative dim into [0, ndim); throws naming `op` when out of range.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);
std::string shape_str(const Shape& s);

}  // namespace engram
