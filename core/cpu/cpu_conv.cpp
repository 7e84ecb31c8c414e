// core/cpu/cpu_conv.cpp — CPU kernels for convolution (im2col/col2im) and pooling.
#include "core/backend.h"

namespace engram::cpu {

void register_conv(Backend& b) { (void)b; }

}  // namespace engram::cpu
