// autograd/opinfo_nn.cpp — registry entries (sample inputs) for the nn op family.
#include "autograd/registry.h"

namespace engram {

void register_nn_ops(std::vector<OpInfo>& r) { (void)r; }

}  // namespace engram
