// core/cpu/kernel_checks.h — the argument check the fused CPU kernels share.
//
// The fused kernels (cpu_memory, cpu_cmr, cpu_titans, cpu_ssm_mamba, cpu_recurrent) index raw
// pointers as dense row-major arrays, so every tensor they get must be contiguous; autograd/
// makes them so, and this turns a caller that forgot into an error naming the kernel instead of
// wrong numbers. Undefined tensors (optional arguments) pass.
#pragma once
#include <initializer_list>

#include "core/error.h"
#include "core/tensor.h"

namespace engram::cpu {

inline void check_contiguous(std::initializer_list<const Tensor*> ts, const char* op) {
  for (const Tensor* t : ts)
    ENGRAM_CHECK(!t->defined() || t->is_contiguous(),
                 "{}: kernel expects contiguous tensors, got {}", op, shape_str(t->shape()));
}

}  // namespace engram::cpu
