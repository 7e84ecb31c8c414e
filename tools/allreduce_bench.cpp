// tools/allreduce_bench.cpp — the time of one gradient all-reduce (sum of f32 buffers, as
// nn::dist::DataParallel issues it) against its size, to fit the cost model of
// docs/distributed.md: t(bytes) = alpha + bytes / beta (latency alpha, bus bandwidth beta).
//
//   mpirun -np 2 build/tools/allreduce_bench        one line per size: median of 30 all-reduces
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "nn/distributed.h"

using namespace engram::nn;

int main() {
  try {
    dist::init();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  if (dist::is_lead())
    std::printf("allreduce_bench: %d ranks, f32 sum, median of 30 after 5 warm-ups\n%12s %12s %12s\n",
                dist::size(), "bytes", "us", "GB/s");
  for (int64_t bytes = 4 << 10; bytes <= (64 << 20); bytes *= 4) {
    std::vector<float> buf(size_t(bytes / 4), 1.0f);
    std::vector<double> us;
    for (int rep = 0; rep < 35; ++rep) {
      dist::barrier("allreduce_bench: start");
      auto t0 = std::chrono::steady_clock::now();
      dist::allreduce_sum(buf.data(), int64_t(buf.size()), "allreduce_bench");
      auto t1 = std::chrono::steady_clock::now();
      if (rep >= 5) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
    std::sort(us.begin(), us.end());
    double med = us[us.size() / 2];
    const double mean_us = dist::allreduce_sum(med, "allreduce_bench: median") / dist::size();  // over ranks
    if (dist::is_lead()) std::printf("%12lld %12.1f %12.3f\n", (long long)bytes, mean_us, double(bytes) / mean_us / 1e3);
  }
  dist::finalize();
  return 0;
}
