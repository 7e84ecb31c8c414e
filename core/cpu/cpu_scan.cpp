// core/cpu/cpu_scan.cpp — CPU kernels of the scan family (filled in by its op family).
#include "core/backend.h"

namespace engram::cpu {

void register_scan(Backend& b) { (void)b; }

}  // namespace engram::cpu
