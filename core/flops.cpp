// core/flops.cpp — the global operation counter of core/flops.h (matrix products and the fused
// memory kernels' forwards; see there for what each kernel adds).
#include "core/flops.h"

namespace engram::flops {

std::atomic<int64_t> counter{0};

void reset() { counter.store(0, std::memory_order_relaxed); }

}  // namespace engram::flops
