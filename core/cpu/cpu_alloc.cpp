// core/cpu/cpu_alloc.cpp — the caching allocator for CPU storage (as PyTorch's CUDA allocator
// does for the GPU, and cuda/cuda_alloc.cu here).
//
// A training step allocates and frees the same activation sizes every step. Straight from the
// system, a large block (glibc mmaps it, or trims it back after the free) comes back as fresh
// pages, and the kernel zeroes each 4 KiB page on first touch: `clear_page` and `exc_page_fault`
// were 2-5% of most workloads' profiles and 23% of s4d's (docs/benchmarks.md). So blocks of
// kCacheMin bytes and more are kept after their free in lists keyed by a size class and handed
// out again; their pages stay mapped and touched, so a steady-state step takes no page fault for
// tensor storage. Smaller blocks go to malloc, whose own bins already serve them well.
//   - size classes: the size rounded up to 1/8 of its power of two (at most 12.5% unused tail,
//     never touched, so it costs address space, not resident memory);
//   - every block carries a 64-byte header with its class, so free needs no lookup table;
//   - the cache holds at most ENGRAM_CPU_CACHE_MB (default 4096) MiB; a block freed beyond that
//     goes back to the system. ENGRAM_CPU_NO_CACHE=1 turns caching off, and so does a build with
//     AddressSanitizer (make sanitize, the fuzz targets), so it sees every free.
// cpu_memory_stats() (core/device.h) reports bytes in use, cached and the peak, and how many
// large blocks were fresh from the system and how many reused.
#include <algorithm>
#include <bit>
#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/backend.h"
#include "core/device.h"

namespace engram::cpu {

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitizer = true;
#else
constexpr bool kSanitizer = false;
#endif
#else
constexpr bool kSanitizer = false;
#endif

constexpr size_t kHeader = 64;  // keeps the payload 64-byte aligned (SIMD, BLAS panels)
constexpr size_t kCacheMin = size_t(256) << 10;

struct Header {
  size_t size;  // the payload's rounded size (its class when cached)
};

size_t size_class(size_t n) {
  const size_t step = std::max<size_t>(std::bit_ceil(n) / 8, 4096);
  return (n + step - 1) / step * step;
}

size_t cache_limit() {
  const char* mb = std::getenv("ENGRAM_CPU_CACHE_MB");
  if (mb == nullptr || *mb == '\0') return size_t(4096) << 20;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(mb, &end, 10);
  ENGRAM_CHECK(end != mb && *end == '\0', "ENGRAM_CPU_CACHE_MB must be a whole number of MiB, got '{}'",
               mb);
  return size_t(v) << 20;
}

struct CachingAllocator {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;  // class -> headers of free blocks
  DeviceMemoryStats stats;
  const size_t limit = cache_limit();
  const bool caching = std::getenv("ENGRAM_CPU_NO_CACHE") == nullptr && !kSanitizer;

  static void* system_alloc(size_t size) {
    void* base = std::aligned_alloc(64, kHeader + size);
    ENGRAM_CHECK(base != nullptr, "out of memory allocating {} bytes on cpu", size);
    static_cast<Header*>(base)->size = size;
    return base;
  }

  void* alloc(size_t nbytes) {
    const size_t rounded = (nbytes + 63) / 64 * 64;
    if (rounded < kCacheMin || !caching) {
      void* base = system_alloc(rounded);
      std::lock_guard<std::mutex> lock(mu);
      if (rounded >= kCacheMin) ++stats.fresh;  // large, but caching is off
      stats.in_use += rounded;
      stats.peak = std::max(stats.peak, stats.in_use);
      return static_cast<char*>(base) + kHeader;
    }
    const size_t size = size_class(rounded);
    void* base = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = free_blocks.find(size);
      if (it != free_blocks.end() && !it->second.empty()) {
        base = it->second.back();
        it->second.pop_back();
        stats.cached -= size;
        ++stats.reused;
      } else {
        ++stats.fresh;
      }
      stats.in_use += size;
      stats.peak = std::max(stats.peak, stats.in_use);
    }
    if (base == nullptr) base = system_alloc(size);
    return static_cast<char*>(base) + kHeader;
  }

  void free(void* p) {
    if (p == nullptr) return;
    void* base = static_cast<char*>(p) - kHeader;
    const size_t size = static_cast<Header*>(base)->size;
    {
      std::lock_guard<std::mutex> lock(mu);
      stats.in_use -= size;
      if (caching && size >= kCacheMin && stats.cached + size <= limit) {
        free_blocks[size].push_back(base);
        stats.cached += size;
        return;
      }
    }
    std::free(base);
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [size, blocks] : free_blocks)
      for (void* base : blocks) std::free(base);
    free_blocks.clear();
    stats.cached = 0;
  }
};

// Never destroyed: tensors in static storage may be freed after main returns.
CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator();
  return *a;
}

}  // namespace

void* cached_alloc(size_t nbytes) { return allocator().alloc(nbytes); }
void cached_free(void* p) { allocator().free(p); }

}  // namespace engram::cpu

namespace engram {

DeviceMemoryStats cpu_memory_stats() {
  auto& a = cpu::allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  return a.stats;
}
void cpu_empty_cache() { cpu::allocator().empty_cache(); }
bool cpu_cache_enabled() { return cpu::allocator().caching; }
void cpu_reset_peak_memory() {
  auto& a = cpu::allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  a.stats.peak = a.stats.in_use;
}

}  // namespace engram
