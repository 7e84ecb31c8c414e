// memory/cmr/context.h — temporal context drift (TCM: Howard & Kahana 2002; CMR: Polyn, Norman &
// Kahana 2009), the one place engram computes it (classic CMR here, episodic CMR heads later).
//
// Given the current context c (unit length) and an input c_IN (unit length), the new context is
//     rho  = sqrt(1 + beta^2 ((c . c_IN)^2 - 1)) - beta (c . c_IN)
//     c'   = rho c + beta c_IN
// with beta in [0, 1] the drift rate. rho is chosen so that ||c'|| = 1: expanding
// ||rho c + beta c_IN||^2 = rho^2 + 2 rho beta d + beta^2 (d = c . c_IN) and setting it to 1 gives
// the quadratic whose positive root is the rho above. beta = 0 leaves c unchanged; beta = 1 with
// c . c_IN = 0 replaces it by c_IN.
// Code checked against: cymr operations.pyx (calc_rho, integrate_context), cmr-matlab
// CMRLCA/context_update.m (advance_context).
#pragma once
#include <vector>

#include "core/tensor.h"

namespace engram::cmr {

// Differentiable, batched: c, c_in [..., D] (unit rows), beta broadcastable to [..., 1] (a 0-d
// tensor for one rate, or [..., 1] per row). Returns c' [..., D].
Tensor drift(const Tensor& c, const Tensor& c_in, const Tensor& beta);

// The same update on plain vectors, in place (the simulation and the reference likelihood).
void drift(std::vector<double>& c, const std::vector<double>& c_in, double beta);

}  // namespace engram::cmr
