// core/backend.cpp — the device -> kernel-table registry and the thread setting.
#include "core/backend.h"

#include <cblas.h>
#include <omp.h>

#include <cstdlib>

namespace engram {

namespace cpu {
Backend make_cpu_backend();  // core/cpu/cpu_backend.cpp
}

static Backend& table(Device d) {
  static Backend tables[2] = {cpu::make_cpu_backend(), Backend{}};
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
