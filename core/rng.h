// core/rng.h — the seeded random generator.
//
// One 64-bit Mersenne Twister per Generator; normals by Box-Muller in double precision. Random
// tensors are always generated on the CPU in element order and then copied, so the same seed gives
// the same numbers bit for bit on any device. The state can be saved into checkpoints.
#pragma once
#include <cstdint>
#include <random>
#include <string>

namespace engram {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) { manual_seed(seed); }
  void manual_seed(uint64_t seed) { engine_.seed(seed); has_spare_ = false; }
  uint64_t next_u64() { return engine_(); }
  double uniform() { return (engine_() >> 11) * 0x1.0p-53; }  // [0, 1)
  double normal();
  int64_t randint(int64_t low, int64_t high);  // [low, high)
  std::string state() const;                   // serialised state, for checkpoints
  void set_state(const std::string& s);

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0;
};

Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace engram
