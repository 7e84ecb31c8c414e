// apps/memory_cost/main.cpp — the per-block cost of attention, Titans' neural memory and episodic
// CMR memory: predicted by closed-form formulas and measured on engram's modules, side by side.
//
//   build/apps/memory_cost [--out DIR] [--quick] [--threads N] [--d 512] [--heads 8] [--L 128]
//                          [--M 64] [--rho 0.1] [--chunk 16] [--segment 1] [--window 32]
//                          [--call 128] [--reps 5] [--max-gb 6] [--no-sweep]
//
// Symbols: d model width, H heads, dh = d / H, L tokens in one call [1, L, d], M episodic slots,
// C the neural memory's chunk (inner gradients at the chunk's starting weights), S the episodic
// segment (one write every S tokens), W the local attention window, B bytes per value (4: f32),
// rho the neural memory's update fraction: the fraction of its P_mem = H dh^2 parameters written
// per token (engram's linear memory writes all of them: rho = 1; rho < 1 is a prediction only).
// FLOPs count adds, multiplies and subtracts (a multiply-add is 2), forward, batch 1; the
// measurement is core/flops.h's counter: matrix products + the fused memory kernels' forwards.
//
//   attention (nn::MultiHeadAttention, causal, one call):
//     F = 8 L d^2 (Q, K, V and output projections) + 4 L^2 d (Q K^T and A V over all L x L
//         scores: engram computes the masked half too; a causal kernel would need ~2 L^2 d)
//     local window W (nn::LocalSelfAttention): ideal 8 L d^2 + 4 L W d; engram 8 L d^2 + 4 L^2 d
//     state: K/V cache 2 L d B (LocalSelfAttention holds its last W - 1 inputs: (W - 1) d B)
//   neural memory (titans::NeuralMemory, per head a linear map [dh, dh]):
//     F = 2 L d (3 d) + 2 L d (3 H) + 2 L d^2                      q,k,v / gates / output
//       + L H [2 dh^2 (read M q) + rho (7 dh^2 + 3 dh) (write: M0 k, e, S, M) + 1]
//     chunking (C) moves no FLOP (every token's gradient is M0_c k_t, one dh^2 product per
//     token either way); it only sets the backward's checkpoints, 2 ceil(L / C) H dh^2 B.
//     state: memory + momentum 2 P_mem B = 2 H dh^2 B
//   episodic CMR (cmr::EpisodicCMR, one call of T tokens writing N = T / S new slots):
//     F = 8 T d^2 (context-in, features, query, output) + T H (5 dh + 8) (drift cmr_drift_scan)
//       + 4 T d (M + N) (scores and values over the M carried slots + this call's N writes:
//         the read is one masked softmax over all candidates; the ideal is 4 T d M)
//     state: keys + values 2 M d B, usage M H B, written_at 8 M H, context + segment sum 2 d B,
//     position 8
//   forward + backward as counted: 3 x the matmul terms (dA and dB of each product; x requires
//   grad, as inside a deep model) + the memory kernels' forwards (their fused backward kernels
//   are not counted).
// Per sequence = L x per token; per chunk = C x per token (the sequence's average token).
//
// Output: the formula table, the measured table (FLOPs fwd and fwd+bwd, state bytes, time per
// token: std::chrono, median of repeats, one thread by default), then sweeps over L (64..8192)
// and M (16..4096), each as CSV and gnuplot PNGs on log-log axes (predicted lines, measured
// points) under --out: cost_vs_L.csv, cost_vs_M.csv, cost_vs_L_flops.png, cost_vs_L_mixing.png
// (FLOPs beyond the projections, which all three share at ~8 d^2 per token), cost_vs_L_bytes.png,
// cost_vs_L_time.png, cost_vs_M_flops.png, cost_vs_M_bytes.png. A size whose estimated peak
// memory exceeds --max-gb is skipped with a `skip:` line. Where a measurement differs from a
// formula by more than 10% the ratio is printed (`mismatch:` lines, or `redundant:` against an
// ideal formula the code does not reach). The last line is `final: key=value ...`; errors are one
// line `error: ...` with exit code 2 (also when measurement and engram's formula disagree).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "apps/common/app_main.h"
#include "apps/common/metrics.h"
#include "autograd/ops.h"
#include "autograd/tape.h"
#include "core/backend.h"
#include "core/flops.h"
#include "memory/cmr/episodic_cmr.h"
#include "memory/titans/neural_memory.h"
#include "nn/attention.h"

using namespace engram;
namespace fs = std::filesystem;

namespace {

constexpr double kTolerance = 0.10;  // |measured / formula - 1| above this is reported
const double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Options {
  std::string out = "runs/memory_cost";
  bool quick = false, no_sweep = false;
  int threads = 1;
  int64_t d = 512, heads = 8, L = 128, M = 64, chunk = 16, segment = 1, window = 32, call = 128;
  double rho = 0.1;
  int reps = 5;
  double max_gb = 6.0;
  uint64_t seed = 0;
};

struct Sizes {
  int64_t d, H, dh, C, S, W;
  double B = 4;  // bytes per value: the modules run in f32
};

// ---------------------------------------------------------------- formulas

struct Cost {
  double flops = 0;        // forward, as engram computes it
  double flops_ideal = 0;  // forward, the textbook count (== flops unless the code does more)
  double flops_fb = 0;     // forward + backward as counted (3 x matmul + memory kernel forwards)
  double bytes = 0;        // carried state (attention: its K/V)
  double proj = 0;         // the projections' share of flops (input and output matmuls)
  double base = 0;         // the share engram and the ideal count agree on (proj, drift)
};

Cost attention_full(const Sizes& z, double L) {
  const double d = double(z.d), proj = 8 * L * d * d, scores = 4 * L * L * d;
  return {proj + scores, proj + scores, 3 * (proj + scores), 2 * L * d * z.B, proj, proj};
}

// LocalSelfAttention, one call with an empty cache (keys = the call's L tokens, no persistent).
Cost attention_local(const Sizes& z, double L) {
  const double d = double(z.d), proj = 8 * L * d * d;
  const double dense = 4 * L * L * d, ideal = 4 * L * std::min(double(z.W), L) * d;
  return {proj + dense, proj + ideal, 3 * (proj + dense),
          std::min(double(z.W - 1), L) * d * z.B, proj, proj};
}

double neural_kernel(const Sizes& z, double L, double rho) {
  const double dh = double(z.dh);
  return L * double(z.H) * (2 * dh * dh + rho * (7 * dh * dh + 3 * dh) + 1);
}
double neural_proj(const Sizes& z, double L) {
  const double d = double(z.d), w = double(z.H * z.dh), H = double(z.H);
  return 2 * L * d * 3 * w + 2 * L * d * 3 * H + 2 * L * w * d;
}
Cost neural(const Sizes& z, double L, double rho = 1.0) {
  const double proj = neural_proj(z, L), kern = neural_kernel(z, L, rho);
  const double P = double(z.H * z.dh * z.dh);
  return {proj + kern, proj + kern, 3 * proj + neural_kernel(z, L, 1.0), 2 * P * z.B, proj, proj};
}

// EpisodicCMR over L tokens in calls of `call` tokens (call >= L: one call), starting at
// position 0: each call reads over the M carried slots and its own N writes.
Cost episodic(const Sizes& z, double L, double M, int64_t call) {
  const double d = double(z.d), w = double(z.H * z.dh), H = double(z.H), dh = double(z.dh);
  Cost c;
  double matmul = 0, drift = 0, proj = 0;
  for (int64_t p0 = 0; p0 < int64_t(L); p0 += call) {
    const int64_t T = std::min<int64_t>(call, int64_t(L) - p0);
    int64_t N = 0;
    for (int64_t p = p0; p < p0 + T; ++p) N += (p + 1) % z.S == 0;
    proj += 8 * double(T) * d * w;
    matmul += 8 * double(T) * d * w + 4 * double(T) * w * (M + double(N));
    drift += double(T) * H * (5 * dh + 8);
  }
  c.flops = matmul + drift;
  c.flops_ideal = 8 * L * d * w + L * H * (5 * dh + 8) + 4 * L * w * M;
  c.flops_fb = 3 * matmul + drift;
  c.bytes = H * (2 * M * dh * z.B + M * z.B + 8 * M + 2 * dh * z.B) + 8;
  c.proj = proj, c.base = proj + drift;
  return c;
}

// Estimated peak bytes of one forward (no tape), for skipping sizes that do not fit.
double peak_attention(const Sizes& z, double L) { return 8 * double(z.H) * L * L + 12 * L * L; }
double peak_episodic(const Sizes& z, double T, double M) {
  return 20 * double(z.H) * T * (M + T / double(z.S) + 1);
}

// ---------------------------------------------------------------- measurement

struct Measured {
  double flops = kNaN, flops_fb = kNaN, bytes = kNaN, us_per_token = kNaN, us_fb_per_token = kNaN;
};

double seconds(const std::function<void()>& f) {
  auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// One counted forward (no tape), timed; then up to `reps` more timed forwards when the work is
// small enough (about 3e10 FLOPs of repeats at most). Returns the count and the median time.
std::pair<double, double> count_and_time(const std::function<void()>& fwd, double predicted,
                                         int reps) {
  NoGradGuard no_grad;
  flops::Scope scope;
  double first = seconds(fwd);
  const double counted = double(scope.elapsed());
  const int n = int(std::min(double(reps), 3e10 / std::max(predicted, 1.0)));
  if (n < 1) return {counted, first};
  std::vector<double> t;
  for (int i = 0; i < n; ++i) t.push_back(seconds(fwd));
  return {counted, median(t)};
}

// Forward + backward of sum(y) with x requiring grad: the counted FLOPs and the median time.
std::pair<double, double> count_and_time_fb(nn::Module& m,
                                            const std::function<Tensor(const Tensor&)>& fwd,
                                            const Tensor& x0, int reps) {
  auto step = [&] {
    Tensor x = detach(x0);
    x.requires_grad_(true);
    m.zero_grad();
    backward(sum(fwd(x)));
  };
  flops::Scope scope;
  double first = seconds(step);
  const double counted = double(scope.elapsed());
  std::vector<double> t{first};
  for (int i = 1; i < reps; ++i) t.push_back(seconds(step));
  return {counted, median(t)};
}

double state_bytes(std::initializer_list<const Tensor*> ts) {
  double b = 0;
  for (const Tensor* t : ts)
    if (t->defined()) b += double(t->numel()) * double(dtype_size(t->dtype()));
  return b;
}

struct Bench {
  Sizes z;
  uint64_t seed;
  int reps;

  Tensor input(int64_t L) const {
    Generator g(seed + 1);
    return randn({1, L, z.d}, DType::f32, &g);
  }

  Measured attention(int64_t L, bool fb) const {
    Generator g(seed);
    nn::MultiHeadAttention mha(z.d, z.H, true, 0.0, &g);
    nn::AttentionOptions opt;
    opt.causal = true;
    Tensor x = input(L);
    auto f = [&](const Tensor& in) { return mha.forward(in, in, in, opt).output; };
    Measured m;
    auto [n, t] = count_and_time([&] { f(x); }, attention_full(z, double(L)).flops, reps);
    m.flops = n, m.us_per_token = 1e6 * t / double(L);
    m.bytes = 2 * double(x.numel()) * double(dtype_size(x.dtype()));  // the K/V of the L tokens
    if (fb) std::tie(m.flops_fb, m.us_fb_per_token) = count_and_time_fb(mha, f, x, reps);
    if (fb) m.us_fb_per_token *= 1e6 / double(L);
    return m;
  }

  Measured local_attention(int64_t L, bool fb) const {
    Generator g(seed);
    nn::LocalSelfAttention att(z.d, z.H, z.W, 0, 0.0, &g);
    Tensor x = input(L);
    auto f = [&](const Tensor& in) {
      Tensor cache;
      return att.forward(in, cache);
    };
    Measured m;
    auto [n, t] = count_and_time([&] { f(x); }, attention_local(z, double(L)).flops, reps);
    m.flops = n, m.us_per_token = 1e6 * t / double(L);
    {
      NoGradGuard no_grad;
      Tensor cache;
      att.forward(x, cache);
      m.bytes = state_bytes({&cache});
    }
    if (fb) std::tie(m.flops_fb, m.us_fb_per_token) = count_and_time_fb(att, f, x, reps);
    if (fb) m.us_fb_per_token *= 1e6 / double(L);
    return m;
  }

  titans::NeuralMemoryConfig neural_config() const {
    titans::NeuralMemoryConfig c;
    c.d_model = z.d, c.heads = z.H, c.head_dim = z.dh, c.chunk = z.C;
    c.max_lr = std::min(c.max_lr, 1.0 / double(z.C));  // the stability bound; costs do not depend on it
    return c;
  }

  Measured neural_memory(int64_t L, bool fb) const {
    Generator g(seed);
    titans::NeuralMemory mem(neural_config(), &g);
    Tensor x = input(L);
    auto f = [&](const Tensor& in) {
      titans::NeuralMemoryState st;
      return mem.forward(in, st);
    };
    Measured m;
    auto [n, t] = count_and_time([&] { f(x); }, neural(z, double(L)).flops, reps);
    m.flops = n, m.us_per_token = 1e6 * t / double(L);
    {
      NoGradGuard no_grad;
      titans::NeuralMemoryState st;
      mem.forward(x, st);
      m.bytes = state_bytes({&st.memory, &st.momentum});
    }
    if (fb) std::tie(m.flops_fb, m.us_fb_per_token) = count_and_time_fb(mem, f, x, reps);
    if (fb) m.us_fb_per_token *= 1e6 / double(L);
    return m;
  }

  cmr::EpisodicCMRConfig episodic_config(int64_t M) const {
    cmr::EpisodicCMRConfig c;
    c.d_model = z.d, c.heads = z.H, c.head_dim = z.dh, c.slots = M, c.segment = z.S;
    return c;
  }

  // L tokens in calls of `call` tokens (call >= L: one call), the bank state carried.
  Measured episodic_memory(int64_t L, int64_t M, int64_t call, bool fb) const {
    Generator g(seed);
    cmr::EpisodicCMR mem(episodic_config(M), &g);
    Tensor x = input(L);
    cmr::CMRBankState last;
    auto f = [&](const Tensor& in) {
      cmr::CMRBankState st = cmr::initial_bank_state(mem.bank->cfg, 1, in.dtype(), in.device());
      std::vector<Tensor> ys;
      for (int64_t p0 = 0; p0 < L; p0 += call) {
        Tensor xc = slice(in, 1, p0, std::min(L, p0 + call));
        ys.push_back(mem.forward(xc, xc, st));
      }
      last = st;
      return ys.size() == 1 ? ys[0] : cat(ys, 1);
    };
    Measured m;
    auto [n, t] = count_and_time([&] { f(x); }, episodic(z, double(L), double(M), call).flops, reps);
    m.flops = n, m.us_per_token = 1e6 * t / double(L);
    m.bytes = state_bytes({&last.context, &last.keys, &last.values, &last.usage, &last.written_at,
                           &last.segment_sum, &last.position});
    if (fb) std::tie(m.flops_fb, m.us_fb_per_token) = count_and_time_fb(mem, f, x, reps);
    if (fb) m.us_fb_per_token *= 1e6 / double(L);
    return m;
  }
};

// ---------------------------------------------------------------- checks and output

struct Checker {
  double max_error = 0;
  int mismatches = 0;
  // measured against engram's formula: must agree
  void check(const std::string& what, double predicted, double measured) {
    if (!std::isfinite(measured) || predicted <= 0) return;
    const double err = std::abs(measured / predicted - 1);
    max_error = std::max(max_error, err);
    if (err > kTolerance) {
      ++mismatches;
      fmt::print("mismatch: {} measured/formula={:.4f} (measured {:.6g}, formula {:.6g})\n", what,
                 measured / predicted, measured, predicted);
    }
  }
};

// Against a textbook formula the code does not reach: only reported, for the whole forward and
// for the one term that differs (measured minus the terms both counts share).
void report_ideal(const std::string& what, const std::string& term, const Cost& c,
                  double measured, const std::string& why) {
  if (!std::isfinite(measured) || c.flops_ideal <= 0 || c.flops_ideal == c.flops) return;
  const double r = measured / c.flops_ideal, rt = (measured - c.base) / (c.flops_ideal - c.base);
  if (std::abs(rt - 1) > kTolerance)
    fmt::print("redundant: {} forward measured/ideal={:.3f}, {} term measured/ideal={:.3f} ({})\n",
               what, r, term, rt, why);
}

struct Table {
  std::vector<std::string> columns;
  std::vector<std::vector<double>> rows;
  int col(const std::string& name) const {
    auto it = std::find(columns.begin(), columns.end(), name);
    ENGRAM_CHECK(it != columns.end(), "memory_cost: no column {}", name);
    return int(it - columns.begin()) + 1;  // gnuplot counts from 1
  }
  void write_csv(const std::string& path) const {
    std::ofstream f(path);
    ENGRAM_CHECK(f.good(), "cannot write {}", path);
    for (size_t i = 0; i < columns.size(); ++i) f << (i ? "," : "") << columns[i];
    f << "\n";
    for (const auto& r : rows) {
      for (size_t i = 0; i < r.size(); ++i)
        f << (i ? "," : "") << (std::isfinite(r[i]) ? fmt::format("{:.6g}", r[i]) : "NaN");
      f << "\n";
    }
  }
};

struct Series {
  std::string column, title;
  bool points;  // measured: points; predicted: lines
  int colour;
};

// A log-log gnuplot PNG of the CSV's columns against its first column.
std::string loglog_plot(const std::string& dir, const std::string& file, const Table& t,
                        const std::string& csv, const std::string& title,
                        const std::string& xlabel, const std::string& ylabel,
                        const std::vector<Series>& series) {
  if (!apps::on_path("gnuplot")) return "(no PNG: gnuplot not installed)";
  const char* colours[] = {"#222222", "#cc3311", "#4477aa", "#228833", "#aa3377", "#ee7733"};
  std::string plots;
  for (size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    plots += fmt::format("{}'{}' using 1:{} with {} lc rgb '{}' title '{}'", i ? ", \\\n  " : "",
                         csv, t.col(s.column), s.points ? "points pt 7 ps 1.3" : "lines lw 2",
                         colours[s.colour % 6], s.title);
  }
  double xmin = INFINITY, xmax = 0;
  std::string xtics;
  for (const auto& r : t.rows) {
    xmin = std::min(xmin, r[0]), xmax = std::max(xmax, r[0]);
    xtics += fmt::format("{}{:g}", xtics.empty() ? "" : ", ", r[0]);
  }
  const std::string png = (fs::path(dir) / (file + ".png")).string();
  const std::string gp = (fs::path(dir) / (file + ".gp")).string();
  std::ofstream(gp) << fmt::format(R"(set datafile separator ','
set datafile missing 'NaN'
set terminal png size 1050,520 font ',11'
set output '{}'
set title '{}'
set xlabel '{}'
set ylabel '{}'
set logscale xy
set xrange [{}:{}]
set xtics ({})
set format y '10^{{%L}}'
set grid
set key outside right top font ',10'
plot {}
)", png, title, xlabel, ylabel, xmin / 1.25, xmax * 1.25, xtics, plots);
  const std::string cmd = fmt::format("gnuplot '{}' > '{}.log' 2>&1", gp, gp);
  if (std::system(cmd.c_str()) != 0) return fmt::format("(gnuplot failed: see {}.log)", gp);
  fs::remove(gp + ".log");
  return png;
}

std::string human_bytes(double b) {
  if (!std::isfinite(b)) return "NA";
  if (b >= 1 << 20) return fmt::format("{:.2f}MiB", b / (1 << 20));
  if (b >= 1 << 10) return fmt::format("{:.1f}KiB", b / (1 << 10));
  return fmt::format("{:.0f}B", b);
}

std::string fmt_or_na(double v, const char* spec) {
  return std::isfinite(v) ? fmt::format(fmt::runtime(spec), v) : "NA";
}

int run(Options o) {
  if (o.quick) {  // a fast small run (seconds): every code path, small sizes
    o.d = 64, o.heads = 4, o.L = 64, o.M = 16, o.call = 32, o.window = 16, o.reps = 2;
  }
  ENGRAM_CHECK(o.d > 0 && o.heads > 0 && o.d % o.heads == 0,
               "--d {} must be a positive multiple of --heads {}", o.d, o.heads);
  ENGRAM_CHECK(o.L > 0 && o.M > 0 && o.chunk > 0 && o.segment > 0 && o.window > 1 && o.call > 0,
               "--L, --M, --chunk, --segment, --call must be positive and --window > 1");
  ENGRAM_CHECK(o.rho > 0 && o.rho <= 1, "--rho must be in (0, 1], got {}", o.rho);
  ENGRAM_CHECK(o.reps >= 1 && o.threads >= 1, "--reps and --threads must be >= 1");
  set_num_threads(o.threads);
  fs::create_directories(o.out);

  Sizes z{o.d, o.heads, o.d / o.heads, o.chunk, o.segment, o.window};
  Bench bench{z, o.seed, o.reps};
  Checker chk;
  const double L = double(o.L), M = double(o.M), C = double(o.chunk);
  fmt::print("# memory_cost d={} H={} dh={} L={} M={} rho={} B={} C={} S={} W={} call={} threads={} "
             "OMP_WAIT_POLICY={}\n",
             z.d, z.H, z.dh, o.L, o.M, o.rho, z.B, o.chunk, o.segment, o.window, o.call, o.threads,
             std::getenv("OMP_WAIT_POLICY") ? std::getenv("OMP_WAIT_POLICY") : "unset");

  // ---- (a) formulas
  struct Row {
    std::string name;
    Cost c;
  };
  std::vector<Row> formula_rows = {
      {"attention_full", attention_full(z, L)},
      {fmt::format("attention_local_W{}", z.W), attention_local(z, L)},
      {"neural_memory(rho=1)", neural(z, L, 1.0)},
      {fmt::format("neural_memory(rho={:g})", o.rho), neural(z, L, o.rho)},
      {"episodic_cmr", episodic(z, L, M, o.L)},
  };
  fmt::print("\nformulas (predicted, forward FLOPs; per chunk = C={} tokens; fwd+bwd = 3 x matmul "
             "+ memory kernel forwards)\n",
             o.chunk);
  fmt::print("{:<26} {:>14} {:>14} {:>14} {:>14} {:>14} {:>12}\n", "module", "flops/token",
             "flops/seq", "flops/chunk", "ideal/token", "fwd+bwd/token", "state");
  for (const Row& r : formula_rows)
    fmt::print("{:<26} {:>14.4g} {:>14.4g} {:>14.4g} {:>14.4g} {:>14.4g} {:>12}\n", r.name,
               r.c.flops / L, r.c.flops, r.c.flops / L * C, r.c.flops_ideal / L, r.c.flops_fb / L,
               human_bytes(r.c.bytes));
  fmt::print("neural memory: chunk C moves no FLOP; the backward keeps 2 ceil(L/C) H dh^2 B = {} "
             "of checkpoints\n",
             human_bytes(2 * std::ceil(L / C) * double(z.H * z.dh * z.dh) * z.B));

  // ---- measured at the main sizes
  struct MRow {
    std::string name;
    Cost c;
    Measured m;
    std::string term, why_ideal;
  };
  std::vector<MRow> mrows;
  mrows.push_back({"attention_full", attention_full(z, L), bench.attention(o.L, true), "", ""});
  mrows.push_back({fmt::format("attention_local_W{}", z.W), attention_local(z, L),
                   bench.local_attention(o.L, true), "scores+values",
                   "dense masked scores: all L x L are computed, the window only masks them"});
  mrows.push_back({"neural_memory", neural(z, L), bench.neural_memory(o.L, true), "", ""});
  mrows.push_back({"episodic_cmr", episodic(z, L, M, o.L),
                   bench.episodic_memory(o.L, o.M, o.L, true), "read",
                   "the read scores the M slots and all of this call's L/S writes, masked"});
  fmt::print("\nmeasured (one call [1, L, d]; flops from core/flops.h; time: median, {} thread(s))\n",
             o.threads);
  fmt::print("{:<22} {:>12} {:>12} {:>7} {:>12} {:>12} {:>7} {:>11} {:>11} {:>10} {:>10} {:>8}\n",
             "module", "pred_fwd/tok", "meas_fwd/tok", "ratio", "pred_fb/tok", "meas_fb/tok",
             "ratio", "pred_state", "meas_state", "us/tok_fwd", "us/tok_fb", "GFLOP/s");
  for (const MRow& r : mrows) {
    fmt::print("{:<22} {:>12.5g} {:>12.5g} {:>7.4f} {:>12.5g} {:>12.5g} {:>7.4f} {:>11} {:>11} "
               "{:>10.2f} {:>10.2f} {:>8.2f}\n",
               r.name, r.c.flops / L, r.m.flops / L, r.m.flops / r.c.flops, r.c.flops_fb / L,
               r.m.flops_fb / L, r.m.flops_fb / r.c.flops_fb, human_bytes(r.c.bytes),
               human_bytes(r.m.bytes), r.m.us_per_token, r.m.us_fb_per_token,
               r.m.flops / L / r.m.us_per_token * 1e-3);
    chk.check(r.name + " forward flops", r.c.flops, r.m.flops);
    chk.check(r.name + " fwd+bwd flops", r.c.flops_fb, r.m.flops_fb);
    chk.check(r.name + " state bytes", r.c.bytes, r.m.bytes);
    report_ideal(r.name, r.term, r.c, r.m.flops, r.why_ideal);
  }

  // ---- (b) sweeps
  int skipped = 0;
  const double max_bytes = o.max_gb * double(1LL << 30);
  auto fits = [&](const std::string& what, double peak) {
    if (peak <= max_bytes) return true;
    ++skipped;
    fmt::print("skip: {} (estimated peak {:.1f} GiB > --max-gb {:g})\n", what, peak / (1LL << 30),
               o.max_gb);
    return false;
  };
  if (!o.no_sweep) {
    std::vector<int64_t> Ls, Ms;
    if (o.quick) Ls = {16, 32, 64, 128}, Ms = {4, 16, 64};
    else
      for (int64_t v = 64; v <= 8192; v *= 2) Ls.push_back(v);
    if (!o.quick)
      for (int64_t v = 16; v <= 4096; v *= 2) Ms.push_back(v);

    Table tl;
    tl.columns = {"L"};
    for (const char* m : {"attn", "neural", "episodic", "episodic_stream"})
      for (const char* f : {"flops_pred", "flops_meas", "bytes_pred", "bytes_meas", "us_per_token",
                            "mix_pred", "mix_meas"})
        tl.columns.push_back(fmt::format("{}_{}", m, f));
    tl.columns.push_back("episodic_flops_ideal");
    tl.columns.push_back("episodic_mix_ideal");
    fmt::print("\nsweep over L (M={}, episodic_stream: calls of {} tokens, bank carried)\n", o.M,
               o.call);
    fmt::print("{:>6} {:>12} {:>12} {:>12} {:>12} {:>9} {:>9} {:>9} {:>9}   (flops/token; us/token)\n",
               "L", "attn", "neural", "episodic", "epi_stream", "attn_us", "neur_us", "epi_us",
               "epis_us");
    for (int64_t Lv : Ls) {
      const double l = double(Lv);
      std::vector<double> row{l};
      auto add = [&](const std::string& name, const Cost& c, const Measured& m) {
        row.insert(row.end(), {c.flops / l, m.flops / l, c.bytes, m.bytes, m.us_per_token,
                               (c.flops - c.proj) / l, (m.flops - c.proj) / l});
        chk.check(fmt::format("{} L={} forward flops", name, Lv), c.flops, m.flops);
        chk.check(fmt::format("{} L={} state bytes", name, Lv), c.bytes, m.bytes);
      };
      Cost ca = attention_full(z, l), cn = neural(z, l), ce = episodic(z, l, M, Lv),
           cs = episodic(z, l, M, o.call);
      Measured ma, mn, me, ms;
      if (fits(fmt::format("attention L={}", Lv), peak_attention(z, l))) ma = bench.attention(Lv, false);
      mn = bench.neural_memory(Lv, false);
      if (fits(fmt::format("episodic (one call) L={} M={}", Lv, o.M), peak_episodic(z, l, M)))
        me = bench.episodic_memory(Lv, o.M, Lv, false);
      ms = bench.episodic_memory(Lv, o.M, o.call, false);
      add("attention", ca, ma), add("neural", cn, mn), add("episodic", ce, me),
          add("episodic_stream", cs, ms);
      row.push_back(ce.flops_ideal / l);
      row.push_back((ce.flops_ideal - ce.proj) / l);
      report_ideal(fmt::format("episodic L={}", Lv), "read", ce, me.flops, "one call");
      tl.rows.push_back(row);
      fmt::print("{:>6} {:>12} {:>12} {:>12} {:>12} {:>9} {:>9} {:>9} {:>9}\n", Lv,
                 fmt_or_na(ma.flops / l, "{:.4g}"), fmt_or_na(mn.flops / l, "{:.4g}"),
                 fmt_or_na(me.flops / l, "{:.4g}"), fmt_or_na(ms.flops / l, "{:.4g}"),
                 fmt_or_na(ma.us_per_token, "{:.2f}"), fmt_or_na(mn.us_per_token, "{:.2f}"),
                 fmt_or_na(me.us_per_token, "{:.2f}"), fmt_or_na(ms.us_per_token, "{:.2f}"));
      std::fflush(stdout);
    }
    const std::string csv_l = (fs::path(o.out) / "cost_vs_L.csv").string();
    tl.write_csv(csv_l);

    Table tm;
    tm.columns = {"M",
                  "episodic_flops_pred", "episodic_flops_meas", "episodic_flops_ideal",
                  "episodic_bytes_pred", "episodic_bytes_meas", "episodic_us_per_token",
                  "attn_flops_pred", "attn_bytes_pred", "neural_flops_pred", "neural_bytes_pred"};
    fmt::print("\nsweep over M (one call, L={})\n", o.L);
    fmt::print("{:>6} {:>12} {:>12} {:>12} {:>12} {:>9}\n", "M", "flops_pred", "flops_meas",
               "bytes_pred", "bytes_meas", "us/token");
    const Cost ca = attention_full(z, L), cn = neural(z, L);
    for (int64_t Mv : Ms) {
      const Cost ce = episodic(z, L, double(Mv), o.L);
      Measured me;
      if (fits(fmt::format("episodic L={} M={}", o.L, Mv), peak_episodic(z, L, double(Mv))))
        me = bench.episodic_memory(o.L, Mv, o.L, false);
      chk.check(fmt::format("episodic M={} forward flops", Mv), ce.flops, me.flops);
      chk.check(fmt::format("episodic M={} state bytes", Mv), ce.bytes, me.bytes);
      tm.rows.push_back({double(Mv), ce.flops / L, me.flops / L, ce.flops_ideal / L, ce.bytes,
                         me.bytes, me.us_per_token, ca.flops / L, ca.bytes, cn.flops / L, cn.bytes});
      fmt::print("{:>6} {:>12.5g} {:>12} {:>12} {:>12} {:>9}\n", Mv, ce.flops / L,
                 fmt_or_na(me.flops / L, "{:.5g}"), human_bytes(ce.bytes), human_bytes(me.bytes),
                 fmt_or_na(me.us_per_token, "{:.2f}"));
      std::fflush(stdout);
    }
    const std::string csv_m = (fs::path(o.out) / "cost_vs_M.csv").string();
    tm.write_csv(csv_m);

    const std::string cl = fmt::format("d={} H={} M={} S={}", z.d, z.H, o.M, z.S);
    std::vector<std::string> notes = {csv_l, csv_m};
    notes.push_back(loglog_plot(
        o.out, "cost_vs_L_flops", tl, csv_l, "forward FLOPs per token, one call of L tokens (" + cl + ")",
        "L (tokens)", "FLOPs per token",
        {{"attn_flops_pred", "attention (formula)", false, 1},
         {"attn_flops_meas", "attention (measured)", true, 1},
         {"neural_flops_pred", "neural memory (formula)", false, 2},
         {"neural_flops_meas", "neural memory (measured)", true, 2},
         {"episodic_flops_pred", "episodic, one call (formula)", false, 3},
         {"episodic_flops_meas", "episodic, one call (measured)", true, 3},
         {"episodic_stream_flops_pred", fmt::format("episodic, calls of {} (formula)", o.call), false, 4},
         {"episodic_stream_flops_meas", fmt::format("episodic, calls of {} (measured)", o.call), true, 4},
         {"episodic_flops_ideal", "episodic ideal 8d^2+4Md (formula)", false, 0}}));
    notes.push_back(loglog_plot(
        o.out, "cost_vs_L_mixing", tl, csv_l,
        "FLOPs per token beyond the projections (" + cl + ")", "L (tokens)", "FLOPs per token",
        {{"attn_mix_pred", "attention 4Ld (formula)", false, 1},
         {"attn_mix_meas", "attention (measured)", true, 1},
         {"neural_mix_pred", "neural memory H(9dh^2+3dh+1) (formula)", false, 2},
         {"neural_mix_meas", "neural memory (measured)", true, 2},
         {"episodic_mix_pred", "episodic, one call (formula)", false, 3},
         {"episodic_mix_meas", "episodic, one call (measured)", true, 3},
         {"episodic_stream_mix_pred", fmt::format("episodic, calls of {} (formula)", o.call), false, 4},
         {"episodic_stream_mix_meas", fmt::format("episodic, calls of {} (measured)", o.call), true, 4},
         {"episodic_mix_ideal", "episodic ideal 4Md+H(5dh+8) (formula)", false, 0}}));
    notes.push_back(loglog_plot(
        o.out, "cost_vs_L_bytes", tl, csv_l, "state carried after L tokens (" + cl + ", f32)",
        "L (tokens)", "bytes",
        {{"attn_bytes_pred", "attention K/V 2LdB (formula)", false, 1},
         {"attn_bytes_meas", "attention K/V (measured)", true, 1},
         {"neural_bytes_pred", "neural memory 2Hdh^2B (formula)", false, 2},
         {"neural_bytes_meas", "neural memory (measured)", true, 2},
         {"episodic_bytes_pred", "episodic bank (formula)", false, 3},
         {"episodic_bytes_meas", "episodic bank (measured)", true, 3}}));
    notes.push_back(loglog_plot(
        o.out, "cost_vs_L_time", tl, csv_l,
        fmt::format("forward time per token, {} thread(s) ({})", o.threads, cl), "L (tokens)",
        "microseconds per token",
        {{"attn_us_per_token", "attention", true, 1},
         {"neural_us_per_token", "neural memory", true, 2},
         {"episodic_us_per_token", "episodic, one call", true, 3},
         {"episodic_stream_us_per_token", fmt::format("episodic, calls of {}", o.call), true, 4}}));
    const std::string cm = fmt::format("d={} H={} L={} S={}", z.d, z.H, o.L, z.S);
    notes.push_back(loglog_plot(
        o.out, "cost_vs_M_flops", tm, csv_m, "forward FLOPs per token vs episodic slots (" + cm + ")",
        "M (slots)", "FLOPs per token",
        {{"episodic_flops_pred", "episodic (formula)", false, 3},
         {"episodic_flops_meas", "episodic (measured)", true, 3},
         {"episodic_flops_ideal", "episodic ideal (formula)", false, 0},
         {"attn_flops_pred", "attention, same L (formula)", false, 1},
         {"neural_flops_pred", "neural memory (formula)", false, 2}}));
    notes.push_back(loglog_plot(
        o.out, "cost_vs_M_bytes", tm, csv_m, "state bytes vs episodic slots (" + cm + ", f32)",
        "M (slots)", "bytes",
        {{"episodic_bytes_pred", "episodic bank (formula)", false, 3},
         {"episodic_bytes_meas", "episodic bank (measured)", true, 3},
         {"attn_bytes_pred", "attention K/V, same L (formula)", false, 1},
         {"neural_bytes_pred", "neural memory (formula)", false, 2}}));
    fmt::print("\nwrote:");
    for (const auto& n : notes) fmt::print(" {}", n);
    fmt::print("\n");
  }

  const MRow &a = mrows[0], &n = mrows[2], &e = mrows[3];
  fmt::print("final: attention_flops_per_token={:.6g} neural_flops_per_token={:.6g} "
             "episodic_flops_per_token={:.6g} attention_state_bytes={:.0f} "
             "neural_state_bytes={:.0f} episodic_state_bytes={:.0f} attention_us_per_token={:.3f} "
             "neural_us_per_token={:.3f} episodic_us_per_token={:.3f} max_formula_error={:.3g} "
             "mismatches={} skipped={}\n",
             a.m.flops / L, n.m.flops / L, e.m.flops / L, a.m.bytes, n.m.bytes, e.m.bytes,
             a.m.us_per_token, n.m.us_per_token, e.m.us_per_token, chk.max_error, chk.mismatches,
             skipped);
  ENGRAM_CHECK(chk.mismatches == 0, "{} measurement(s) differ from the formulas by more than {:g}%",
               chk.mismatches, 100 * kTolerance);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"memory_cost: per-block cost of attention, neural memory and episodic CMR"};
  app.add_option("--out", o.out, "output directory (CSV and PNG)");
  app.add_flag("--quick", o.quick, "small sizes and sweeps (seconds)");
  app.add_flag("--no-sweep", o.no_sweep, "only the tables at the main sizes");
  app.add_option("--threads", o.threads, "engram threads (OpenMP and OpenBLAS)");
  app.add_option("--d", o.d, "model width d");
  app.add_option("--heads", o.heads, "heads H (dh = d / H)");
  app.add_option("--L", o.L, "tokens per call L");
  app.add_option("--M", o.M, "episodic slots M");
  app.add_option("--rho", o.rho, "neural memory update fraction for the predicted row");
  app.add_option("--chunk", o.chunk, "neural memory chunk C");
  app.add_option("--segment", o.segment, "episodic segment S (one write every S tokens)");
  app.add_option("--window", o.window, "local attention window W");
  app.add_option("--call", o.call, "tokens per call of the streamed episodic sweep");
  app.add_option("--reps", o.reps, "timed repeats (fewer for large sizes)");
  app.add_option("--max-gb", o.max_gb, "skip sizes whose estimated peak memory exceeds this");
  app.add_option("--seed", o.seed, "parameter and input seed");
  return apps::parse_and_run(app, argc, argv, [&] { return run(o); });
}
