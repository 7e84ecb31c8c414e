// memory/cmr/context.cpp — see context.h.
#include "memory/cmr/context.h"

#include <cmath>

#include "autograd/ops.h"

namespace engram::cmr {

Tensor drift(const Tensor& c, const Tensor& c_in, const Tensor& beta) {
  ENGRAM_CHECK(c.shape() == c_in.shape(), "cmr::drift: context {} and input {} differ in shape",
               shape_str(c.shape()), shape_str(c_in.shape()));
  Tensor dot = sum(mul(c, c_in), {-1}, true);                        // [..., 1]
  Tensor b2 = mul(beta, beta);
  Tensor rho = sub(sqrt(add(mul(b2, mul(dot, dot) - 1.0), 1.0)), mul(beta, dot));
  return add(mul(rho, c), mul(beta, c_in));
}

void drift(std::vector<double>& c, const std::vector<double>& c_in, double beta) {
  ENGRAM_CHECK(c.size() == c_in.size(), "cmr::drift: context has {} units, input {}", c.size(),
               c_in.size());
  double dot = 0;
  for (size_t k = 0; k < c.size(); ++k) dot += c[k] * c_in[k];
  const double rho = std::sqrt(1 + beta * beta * (dot * dot - 1)) - beta * dot;
  for (size_t k = 0; k < c.size(); ++k) c[k] = rho * c[k] + beta * c_in[k];
}

}  // namespace engram::cmr
