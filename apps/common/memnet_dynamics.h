// apps/common/memnet_dynamics.h — what a trained MemNet does with its slots over a stream
// (experiment 3 of the MemNet research, "learned forgetting dynamics"): lifetimes of what each
// write stored, slot survival curves, write frequency per slot, and heatmaps of reads and writes.
//
// Lifetimes. A trace (memory/memnet/memnet.h MemNetTrace) holds, per closed segment s, the write
// weight ww_s [N] (summed over write heads) and the stream position p_s where it closed. Segment
// s stored its content mainly in slot i* = argmax_i ww_s[i]. Later writes erase that slot in
// proportion to their weight on it (S <- S o (1 - ww e^T), e <= 1), so at most
//     kept(s, t) = prod_{s < s' <= t} (1 - min(1, ww_s'[i*]))
// of it is left after segment t. The content dies at the first t with kept < threshold (0.5:
// less than half of it is left); its lifetime is p_t - p_s tokens. Contents still alive at the
// end of the trace are censored at p_end - p_s.
// Survival curve: the Kaplan-Meier estimate S(a) = prod_{death ages t <= a} (1 - d_t / n_t), d_t
// the contents dying at age t and n_t those still at risk (alive and observed up to t), the
// standard estimator when some lifetimes are censored. "The fraction of slot contents that
// survives past age a", for all writes and split by kind: a write is a `binding` when its segment
// holds the bound value of a key-value binding ("K=v": the byte after '='), else `filler`.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "memory/memnet/memnet.h"

namespace engram::apps {

struct WriteLifetime {
  int64_t position = 0;  // where the segment closed
  int64_t slot = 0;      // i*
  double lifetime = 0;   // tokens (died) or tokens observed (censored)
  bool died = false;
  bool binding = false;
};

// One entry per traced segment; `text` is the stream the trace ran over (position p = byte p),
// `segment` the model's memnet_segment.
std::vector<WriteLifetime> write_lifetimes(const memnet::MemNetTrace& trace, std::string_view text,
                                           int64_t segment, double threshold = 0.5);

enum class WriteKind { all, binding, filler };
// S(a) at each age in `ages` over the lifetimes of the given kind (NaN when there are none).
std::vector<double> kaplan_meier(const std::vector<WriteLifetime>& lifetimes,
                                 const std::vector<double>& ages, WriteKind kind = WriteKind::all);
// The age where S first falls to 0.5 or below (NaN if it never does within the trace).
double median_lifetime(const std::vector<WriteLifetime>& lifetimes, WriteKind kind = WriteKind::all);

// <dir>/<base>.csv (one row per entry of `rows`, one column per slot) and <dir>/<base>.png, a
// gnuplot heatmap (x: slot, y: row index); returns the PNG path or why there is none.
std::string write_heatmap(const std::string& dir, const std::string& base,
                          const std::vector<std::vector<float>>& rows, const std::string& title,
                          const std::string& ylabel);

}  // namespace engram::apps
