// core/device.cpp — core/device.h: forwards to cuda/ in CUDA builds, plain answers otherwise.
#include "core/device.h"

#include "core/backend.h"
#include "core/error.h"

#ifdef ENGRAM_CUDA
namespace engram::cuda {  // cuda/*.cu (declared here so no CUDA header is needed)
std::string device_description();
void set_tf32(bool on);
bool tf32_enabled();
DeviceMemoryStats memory_stats();
void empty_cache();
void reset_peak_memory();
void synchronize(const char* op);
}  // namespace engram::cuda
#endif

namespace engram {

#ifdef ENGRAM_CUDA
bool cuda_built() { return true; }
bool cuda_available() { return device_available(Device::cuda); }
std::string cuda_device_description() { return cuda::device_description(); }
void cuda_set_tf32(bool on) { cuda::set_tf32(on); }
bool cuda_tf32() { return cuda::tf32_enabled(); }
DeviceMemoryStats cuda_memory_stats() { return cuda::memory_stats(); }
void cuda_empty_cache() { cuda::empty_cache(); }
void cuda_reset_peak_memory() { cuda::reset_peak_memory(); }
void cuda_synchronize() {
  if (cuda_available()) cuda::synchronize("cuda_synchronize");
}
#else
bool cuda_built() { return false; }
bool cuda_available() { return false; }
std::string cuda_device_description() { return "none (engram was built without CUDA: make CUDA=1)"; }
void cuda_set_tf32(bool) {
  ENGRAM_FAIL("cuda_set_tf32: engram was built without the CUDA backend (build with make CUDA=1)");
}
bool cuda_tf32() { return false; }
DeviceMemoryStats cuda_memory_stats() { return {}; }
void cuda_empty_cache() {}
void cuda_reset_peak_memory() {}
void cuda_synchronize() {}
#endif

}  // namespace engram
