// cuda/cuda_alloc.cu — the caching allocator for GPU storage (PyTorch's CUDA allocator, simply).
//
// cudaMalloc and cudaFree are slow (cudaFree also synchronises the device), and a training step
// allocates and frees the same sizes every time. So freed blocks are kept in free lists keyed by
// their rounded size and handed out again:
//   - sizes are rounded up to 512 bytes below 1 MiB and to 2 MiB above, so near sizes share lists;
//   - a block freed on the host may be reused at once: every kernel runs on the backend's single
//     stream (cuda/common.cuh), so the next user's kernels are ordered after the last use;
//   - when cudaMalloc fails, every cached block is released and the call retried once; if it
//     still fails the error says how much was asked, in use and cached (never an abort).
// ENGRAM_CUDA_NO_CACHE=1 turns caching off (every free is a cudaFree), for memory checkers.
#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "cuda/common.cuh"

namespace engram::cuda {

namespace {

struct CachingAllocator {
  std::mutex mu;
  std::map<size_t, std::vector<void*>> free_blocks;  // rounded size -> blocks
  std::unordered_map<void*, size_t> live;            // block -> rounded size
  size_t in_use = 0, cached = 0, peak = 0;
  bool caching = std::getenv("ENGRAM_CUDA_NO_CACHE") == nullptr;

  static size_t round(size_t n) {
    constexpr size_t kSmall = 512, kLarge = size_t(2) << 20;
    return n < (size_t(1) << 20) ? (n + kSmall - 1) / kSmall * kSmall
                                 : (n + kLarge - 1) / kLarge * kLarge;
  }

  void release_cache() {  // caller holds mu
    for (auto& [size, blocks] : free_blocks)
      for (void* p : blocks) cudaFree(p);
    free_blocks.clear();
    cached = 0;
  }

  void* alloc(size_t nbytes) {
    std::lock_guard<std::mutex> lock(mu);
    size_t size = round(nbytes);
    void* p = nullptr;
    auto it = free_blocks.find(size);
    if (it != free_blocks.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      cached -= size;
    } else {
      cudaError_t err = cudaMalloc(&p, size);
      if (err != cudaSuccess) {
        cudaGetLastError();  // clear the sticky-free error state of a failed cudaMalloc
        release_cache();
        err = cudaMalloc(&p, size);
      }
      if (err != cudaSuccess) {
        cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        ENGRAM_FAIL("CUDA out of memory: asked for {} bytes ({:.1f} MiB); engram holds {:.1f} MiB "
                    "in tensors, the device has {:.1f} MiB free of {:.1f} MiB ({})",
                    nbytes, size / 1048576.0, in_use / 1048576.0, free_b / 1048576.0,
                    total_b / 1048576.0, cudaGetErrorString(err));
      }
    }
    live[p] = size;
    in_use += size;
    if (in_use > peak) peak = in_use;
    return p;
  }

  void free(void* p) {
    if (p == nullptr) return;
    std::lock_guard<std::mutex> lock(mu);
    auto it = live.find(p);
    if (it == live.end()) return;  // not ours (cannot happen through Storage): ignore, never abort
    size_t size = it->second;
    live.erase(it);
    in_use -= size;
    if (caching) {
      free_blocks[size].push_back(p);
      cached += size;
    } else {
      cudaFree(p);
    }
  }
};

CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator();  // never destroyed: storages outlive statics
  return *a;
}

}  // namespace

void* device_alloc(size_t nbytes) { return allocator().alloc(nbytes); }
void device_free(void* p) { allocator().free(p); }

DeviceMemoryStats memory_stats() {
  CachingAllocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  return DeviceMemoryStats{a.in_use, a.cached, a.peak};
}
void reset_peak_memory() {
  CachingAllocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  a.peak = a.in_use;
}
void empty_cache() {
  CachingAllocator& a = allocator();
  synchronize("empty_cache");
  std::lock_guard<std::mutex> lock(a.mu);
  a.release_cache();
}

}  // namespace engram::cuda
