// core/device.h — what code above core/ may ask of the GPU, without including any CUDA header,
// and the CPU allocator's counterparts of its memory calls.
//
// In a build made with `make CUDA=1` these forward to cuda/ (cuda_backend.cu, cuda_alloc.cu,
// cuda_device.cu); in a plain build cuda_built() is false, cuda_available() is false, the stats
// are zero and the settings fail with a message saying the build has no CUDA backend.
#pragma once
#include <cstddef>
#include <string>

namespace engram {

bool cuda_built();      // this binary contains the CUDA backend (make CUDA=1)
bool cuda_available();  // ... and found a usable GPU (device_available(Device::cuda))
std::string cuda_device_description();  // "NVIDIA H200 (sm_90, 139.8 GiB)", or why there is none

// TF32 for f32 matrix products on the GPU: off by default so results match the CPU to f32
// rounding; ENGRAM_CUDA_TF32=1 or cuda_set_tf32(true) turns it on (about 3e-4 relative error).
void cuda_set_tf32(bool on);
bool cuda_tf32();

struct DeviceMemoryStats {
  size_t in_use = 0, cached = 0, peak = 0;  // bytes: held by tensors, kept for reuse, most in use
  size_t fresh = 0, reused = 0;  // CPU: large blocks taken from the system / from the cache
};
DeviceMemoryStats cuda_memory_stats();
void cuda_empty_cache();   // give cached blocks back to the driver
void cuda_reset_peak_memory();  // peak := what is in use now
void cuda_synchronize();   // wait for every queued kernel (timing, or surfacing async errors)

// The CPU's caching allocator (core/cpu/cpu_alloc.cpp): blocks of 256 KiB and more are kept after
// their free and reused, so a steady-state step takes no fresh pages for tensor storage.
DeviceMemoryStats cpu_memory_stats();
void cpu_empty_cache();        // give cached blocks back to the system
void cpu_reset_peak_memory();  // peak := what is in use now
bool cpu_cache_enabled();      // false with ENGRAM_CPU_NO_CACHE=1 or under AddressSanitizer

}  // namespace engram
