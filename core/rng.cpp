// core/rng.cpp — see rng.h.
#include "core/rng.h"

#include <cmath>
#include <sstream>

#include "core/error.h"

namespace engram {

double Generator::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  // Box-Muller: two uniforms -> two independent standard normals.
  double u1 = uniform(), u2 = uniform();
  if (u1 < 1e-300) u1 = 1e-300;
  double r = std::sqrt(-2.0 * std::log(u1)), th = 2.0 * M_PI * u2;
  spare_ = r * std::sin(th);
  has_spare_ = true;
  return r * std::cos(th);
}

int64_t Generator::randint(int64_t low, int64_t high) {
  ENGRAM_CHECK(high > low, "randint: empty range [{}, {})", low, high);
  uint64_t span = (uint64_t)(high - low);
  return low + (int64_t)(next_u64() % span);
}

std::string Generator::state() const {
  std::ostringstream os;
  os << engine_ << ' ' << has_spare_ << ' ' << fmt::format("{:a}", spare_);
  return os.str();
}

void Generator::set_state(const std::string& s) {
  std::istringstream is(s);
  std::string spare;
  is >> engine_ >> has_spare_ >> spare;
  ENGRAM_CHECK(!is.fail(), "Generator::set_state: malformed RNG state string");
  spare_ = std::strtod(spare.c_str(), nullptr);
}

Generator& default_generator() {
  static Generator gen;
  return gen;
}
void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace engram
