// core/cpu/cpu_fft.cpp — CPU kernels of the fft family (filled in by its op family).
#include "core/backend.h"

namespace engram::cpu {

void register_fft(Backend& b) { (void)b; }

}  // namespace engram::cpu
