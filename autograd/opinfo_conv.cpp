// autograd/opinfo_conv.cpp — registry entries (sample inputs) for the conv op family.
#include "autograd/registry.h"

namespace engram {

void register_conv_ops(std::vector<OpInfo>& r) { (void)r; }

}  // namespace engram
