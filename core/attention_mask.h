// core/attention_mask.h — the keys one query row of a causal/window/prefix attention mask sees,
// as index ranges, shared by the CPU and CUDA masked_softmax kernels (core/backend.h) so the two
// cannot disagree with each other or with nn/attention.h's rule.
//
// Row i of scores [..., Tq, Tk], diagonal d = i + (Tk - Tq) (aligned bottom-right). Key j is
// visible iff j < prefix or (j <= d and (window == 0 or j > d - window)). That set is at most two
// ranges, [0, a) (the prefix, merged with the band when they touch) and [b0, b1) (the band), so a
// kernel reads and exps only those and writes zeros elsewhere, with no mask tensor anywhere.
#pragma once
#include <cstdint>

#include "core/host_device.h"

namespace engram {

struct VisibleKeys {
  int64_t a, b0, b1;  // visible keys: [0, a) and [b0, b1), with a <= b0 <= b1 <= Tk
  ENGRAM_HOST_DEVICE int64_t count() const { return a + (b1 - b0); }
};

ENGRAM_HOST_DEVICE inline int64_t clamp_i64(int64_t v, int64_t lo, int64_t hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

// Not causal: every key. window/prefix must be >= 0 (callers check).
ENGRAM_HOST_DEVICE inline VisibleKeys visible_keys(int64_t i, int64_t Tq, int64_t Tk, bool causal,
                                                   int64_t window, int64_t prefix) {
  if (!causal) return {Tk, Tk, Tk};
  const int64_t diag = i + (Tk - Tq);
  const int64_t hi = clamp_i64(diag + 1, 0, Tk);                             // band is [lo, hi)
  const int64_t lo = window > 0 ? clamp_i64(diag - window + 1, 0, hi) : 0;
  const int64_t p = prefix < Tk ? prefix : Tk;
  if (lo <= p) return {p > hi ? p : hi, Tk, Tk};  // the prefix reaches the band: one range
  return {p, lo, hi};
}

}  // namespace engram
