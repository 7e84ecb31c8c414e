// core/backend.cpp — the device -> kernel-table registry and the thread setting.
#include "core/backend.h"

#include <cblas.h>
#include <fcntl.h>
#include <omp.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace engram {

// Passive OpenMP waiting by default. Spinning OpenMP workers steal the cores that OpenBLAS's own
// thread pool needs: a plain 2-thread crsd_tiny run did 4300 tok/s on an idle 2-core machine
// against 12200 with OMP_WAIT_POLICY=PASSIVE (docs/benchmarks.md). libgomp reads the variable
// once, when it is loaded, before any code of ours runs, so setting it later does nothing: a
// program started without it sets it and executes itself again, the same arguments and process
// id, before main. OMP_WAIT_POLICY=active (or any value) set by the user is kept as it is.
__attribute__((constructor)) static void passive_openmp_wait_by_default() {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  // argv from /proc/self/cmdline with plain POSIX reads: C++ streams may not exist yet here
  int fd = ::open("/proc/self/cmdline", O_RDONLY);
  if (fd < 0) return;
  std::string cmdline;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) cmdline.append(buf, size_t(n));
  ::close(fd);
  std::vector<char*> argv;
  for (size_t at = 0; at < cmdline.size(); at = cmdline.find('\0', at) + 1) {
    argv.push_back(&cmdline[at]);
    if (cmdline.find('\0', at) == std::string::npos) break;
  }
  if (argv.empty()) return;
  argv.push_back(nullptr);
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  ::execv("/proc/self/exe", argv.data());  // returns only on failure: carry on as started
}

namespace cpu {
Backend make_cpu_backend();  // core/cpu/cpu_backend.cpp
}
#ifdef ENGRAM_CUDA
namespace cuda {
Backend make_cuda_backend();  // cuda/cuda_backend.cu: empty when no GPU is present
}
static Backend cuda_table() { return cuda::make_cuda_backend(); }
#else
static Backend cuda_table() { return Backend{}; }  // built without CUDA: Device::cuda unavailable
#endif

static Backend& table(Device d) {
  static Backend tables[2] = {cpu::make_cpu_backend(), cuda_table()};
  static const int threads_applied = num_threads();  // apply ENGRAM_NUM_THREADS before any kernel
  (void)threads_applied;
  return tables[(int)d];
}

const Backend& backend(Device d) {
  const Backend& b = table(d);
  ENGRAM_CHECK(b.alloc != nullptr, "device {} is not available in this build or machine",
               device_name(d));
  return b;
}
void register_backend(Device d, const Backend& b) { table(d) = b; }
bool device_available(Device d) { return table(d).alloc != nullptr; }

static int& thread_setting() {
  static int n = [] {
    const char* env = std::getenv("ENGRAM_NUM_THREADS");
    int v = env ? std::atoi(env) : 0;
    if (v <= 0) v = omp_get_num_procs();
    omp_set_num_threads(v);
    openblas_set_num_threads(v);
    return v;
  }();
  return n;
}
int num_threads() { return thread_setting(); }
void set_num_threads(int n) {
  ENGRAM_CHECK(n > 0, "set_num_threads: need a positive count, got {}", n);
  thread_setting() = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

}  // namespace engram
