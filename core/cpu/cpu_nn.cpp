// core/cpu/cpu_nn.cpp — CPU kernels of the nn family (filled in by its op family).
#include "core/backend.h"

namespace engram::cpu {

void register_nn(Backend& b) { (void)b; }

}  // namespace engram::cpu
