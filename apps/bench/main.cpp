// apps/bench/main.cpp — training-step benchmarks of engram against PyTorch, side by side.
//
//   build/apps/bench [--workload NAME]... [--steps N] [--warmup W] [--threads T] [--no-torch]
//                    [--check] [--peak] [--list] [--seed S] [--python PATH] [--torch-ref PATH]
//
// For every workload (apps/bench/workloads.h; all by default) one step is a full training step:
// forward, loss, backward, Adam update (nn::Adam; torch.optim.Adam on the other side). Both sides
// train the same model on the same weights and batch: engram builds it from a fixed seed and
// exports weights and batch to a safetensors file that apps/bench/torch_ref.py loads. The PyTorch
// side runs as one child process on a pipe (torch_server.h), and the timed steps alternate in
// blocks, engram then torch, so both see the same machine. Output, one line per workload:
//
//   workload=mlp engram_ms=<median> torch_ms=<median> ratio=<torch/engram> threads=<n> [gflop=<per step>]
//       engram_peak_mb=<MiB> torch_peak_mb=<MiB> mem_ratio=<torch/engram>
//       fresh_blocks=<large CPU blocks engram took from the system in the timed steps> (one line)
//
// ratio > 1 means engram is faster. gflop (dense workloads only) is the matmul/conv work of one
// step; with `--peak`'s sgemm figure it gives the fraction of the machine's peak each side reaches.
// Two "# ..." lines come first: the torch side (version, threads and hwm_reset, or why it is
// missing) and the run's settings with the load average and OMP_WAIT_POLICY, the two things
// besides the code that move the figures most, and engram's hwm_reset. Without PyTorch (or with
// --no-torch) the torch fields are NA.
//
// Peak memory, measured the same way in both processes (Linux's /proc/self/status): just before a
// workload's model, optimizer and batch are built, read VmRSS (the baseline) and write "5" to
// /proc/self/clear_refs, which restarts the peak resident set VmHWM from the current RSS; after
// the warm-up and timed steps read VmHWM. peak_mb = (VmHWM - baseline) / 2^20 is the extra
// resident memory the workload needed at its worst moment: model, optimizer state, batch,
// activations and whatever the allocator kept. Subtracting the baseline keeps the torch process's
// few hundred MB of shared libraries (and engram's code) out of it. The torch side frees the
// previous workload and runs gc.collect() before its baseline; engram frees it by scope. Both
// sides also count the transfer of the weights (engram writes the safetensors file, torch reads
// it). mem_ratio > 1 means engram needed less (NA where either side grew by under 1 MiB). The
// baseline holds the heap that earlier workloads freed but the allocator kept, and a workload
// that reuses it does not grow, so for figures that do not depend on the order run one
// --workload per process. hwm_reset=no in a header line means clear_refs could not be written:
// that side's VmHWM is then its peak since the process started, so its peak_mb is an upper bound
// (and NA where /proc/self/status cannot be read at all).
// docs/benchmarks.md has the workloads, the method, results and where engram's time goes.
//
//   --check  runs two training steps on each side instead of timing, and prints both sides' loss
//            before each (the first: same weights, same batch; the second: after one Adam step),
//            so "same shapes, different model" mistakes show up. Exits 1 when they disagree.
//   --peak   measures single-thread and all-core sgemm GFLOP/s with a large cblas_sgemm; with
//            --device cuda, the GPU's f32 matmul TFLOP/s through engram's cuBLAS matmul.
//   --device cuda  both sides on the GPU: engram's CUDA backend (make CUDA=1) and PyTorch CUDA
//            eager; peak_mb is then device memory (engram: its caching allocator's peak; torch:
//            torch.cuda.max_memory_allocated), and dense workloads also print engram_tflops.
//
// Threads: --threads (default: ENGRAM_NUM_THREADS, else the core count) is applied to engram
// (OpenMP and OpenBLAS) and passed to the torch process (torch.set_num_threads and the
// OMP/OpenBLAS/MKL variables). Timings are wall-clock medians over the timed steps.
#include <cblas.h>

#include <CLI/CLI.hpp>

#include "apps/common/app_main.h"
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>

#include "apps/bench/torch_server.h"
#include "apps/bench/workloads.h"
#include "core/device.h"
#include "nn/optim.h"

using namespace engram;
namespace fs = std::filesystem;

namespace {

struct Options {
  std::vector<std::string> workloads;  // empty = all
  int64_t steps = 10, warmup = 2;
  int threads = 0;  // 0 = num_threads()
  bool no_torch = false, check = false, peak = false, list = false;
  uint64_t seed = 0;
  std::string python, torch_ref;  // empty = found automatically
  std::string device = "cpu";     // cpu | cuda: where engram and torch both run
};

// Timed steps alternate between the two sides in this many blocks (fewer when steps is smaller).
constexpr int64_t kAlternations = 5;
// --check: the losses must agree to this relative difference. float32 sums in another order
// differ by ~1e-7; crsd_tiny's episodic buffer may also break a tie between slots differently
// (layer 0's keys depend only on the token, so a repeated byte gives novelty 0, or 1e-16, for
// several slots), which moves its loss by ~1e-6. A different model differs in the first digits.
constexpr double kLossTolerance = 1e-4;
// A workload may ask for a tighter one (meta "check_tolerance"): the hybrid's memories barely move
// its loss at initialisation, so a twin with the wrong slot count or window still agrees to ~4e-5
// while the right twin agrees to ~1e-9 (8.5e-8 with 2 threads); the closest wrong twin measured,
// Titans chunk 1 instead of 8, differs by 2e-6. memnet likewise: the right twin is 1 float32 ulp
// away (8e-8), while no STDP, no dream or torch.topk's tie order move the loss by only 2e-6 to
// 4e-5 (docs/benchmarks.md, memnet).
double check_tolerance(const bench::Workload& w) {
  auto it = w.meta.find("check_tolerance");
  return it == w.meta.end() ? kLossTolerance : std::stod(it->second);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double milliseconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// One training step on the engram side; returns the loss before the update.
double train_step(bench::Workload& w, nn::Optimizer& opt) {
  opt.zero_grad();
  Tensor loss = w.loss();
  backward(loss);
  opt.step();
  return loss.item();
}

// ---------------------------------------------------------------- --peak --device cuda
// The GPU's f32 matrix-product rate through engram's own matmul (cuBLAS, TF32 as set: off by
// default), n = 8192, best of 5 after a warm-up: the ceiling the GPU workloads' TFLOP/s are read
// against.
int run_peak_cuda() {
  const int64_t n = 8192;
  Generator gen(1);
  NoGradGuard no_grad;
  Tensor a = raw::to_device(randn({n, n}, DType::f32, &gen), Device::cuda);
  Tensor b = raw::to_device(randn({n, n}, DType::f32, &gen), Device::cuda);
  Tensor c = matmul(a, b);  // warm-up: cuBLAS handle and workspace
  cuda_synchronize();
  double best = INFINITY;
  for (int rep = 0; rep < 5; ++rep) {
    auto start = std::chrono::steady_clock::now();
    c = matmul(a, b);
    cuda_synchronize();
    best = std::min(best, milliseconds_since(start));
  }
  fmt::print("peak device=cuda gpu=\"{}\" n={} tf32={} sgemm_tflops={:.1f}\n",
             cuda_device_description(), n, cuda_tf32() ? "on" : "off",
             2.0 * n * n * n / (best * 1e-3) / 1e12);
  return 0;
}

// ---------------------------------------------------------------- --peak
// C = A B for n x n float matrices, best of a few runs, as GFLOP/s (2 n^3 FLOPs per product).
double sgemm_gflops(int threads, int64_t n) {
  set_num_threads(threads);
  std::vector<float> a(size_t(n * n)), b(size_t(n * n)), c(size_t(n * n));
  Generator gen(1);
  for (auto& x : a) x = float(gen.uniform() - 0.5);
  for (auto& x : b) x = float(gen.uniform() - 0.5);
  auto product = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(n), int(n), 1.0f, a.data(),
                int(n), b.data(), int(n), 0.0f, c.data(), int(n));
  };
  product();  // warm-up: thread start, page faults
  double best = INFINITY;
  for (int rep = 0; rep < 5; ++rep) {
    auto start = std::chrono::steady_clock::now();
    product();
    best = std::min(best, milliseconds_since(start));
  }
  return 2.0 * double(n) * double(n) * double(n) / (best * 1e-3) / 1e9;
}

int run_peak() {
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  const int64_t n = 2048;
  for (int threads : {1, cores}) {
    fmt::print("peak threads={} n={} sgemm_gflops={:.1f}\n", threads, n, sgemm_gflops(threads, n));
    std::fflush(stdout);
    if (cores == 1) break;
  }
  return 0;
}

// The 1-minute load average from /proc/loadavg ("?" where there is none): a busy machine makes
// every timing, multi-threaded ones above all, meaningless.
std::string load_average() {
  std::FILE* f = std::fopen("/proc/loadavg", "r");
  if (!f) return "?";
  char buf[32] = {0};
  int n = std::fscanf(f, "%31s", buf);
  std::fclose(f);
  return n == 1 ? std::string(buf) : "?";
}

// ---------------------------------------------------------------- peak memory
// A "VmRSS:   1234 kB" style field of /proc/self/status, in bytes; nullopt where there is none
// (not Linux).
std::optional<double> status_bytes(const std::string& field) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return std::nullopt;
  std::optional<double> out;
  char line[256];
  while (!out && std::fgets(line, sizeof line, f)) {
    long long kb = 0;
    if (std::string(line).rfind(field + ":", 0) == 0 &&
        std::sscanf(line + field.size() + 1, "%lld", &kb) == 1)
      out = double(kb) * 1024.0;
  }
  std::fclose(f);
  return out;
}

// Restarts VmHWM from the current RSS (Linux >= 4.0); false where clear_refs cannot be written.
bool reset_peak_rss() {
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  const bool ok = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && ok;  // the kernel reports a refused write at the flush
}

constexpr double kMiB = 1024.0 * 1024.0;

// ---------------------------------------------------------------- locating the PyTorch side
std::string find_python(const Options& o) {
  if (!o.python.empty()) return o.python;
  return fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";  // Debian's python3-torch
}

// torch_ref.py from the working directory (the repository root, as `make bench` runs it), else
// next to the sources relative to the executable (build/apps/bench -> apps/bench/torch_ref.py).
std::optional<std::string> find_torch_ref(const Options& o) {
  if (!o.torch_ref.empty()) return fs::exists(o.torch_ref) ? std::optional(o.torch_ref) : std::nullopt;
  std::vector<fs::path> candidates = {"apps/bench/torch_ref.py"};
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) candidates.push_back(exe.parent_path() / "../../apps/bench/torch_ref.py");
  for (const fs::path& p : candidates)
    if (fs::exists(p)) return fs::weakly_canonical(p).string();
  return std::nullopt;
}

// A scratch folder for the exported weights, removed when the bench ends.
struct ScratchDir {
  fs::path path;
  ScratchDir() {
    path = fs::temp_directory_path() / fmt::format("engram-bench-{}", getpid());
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// ---------------------------------------------------------------- one workload
// --check: two training steps on each side from the same weights and batch. True when they agree.
bool check_workload(bench::Workload& w, nn::Optimizer& opt, bench::TorchServer& torch) {
  std::vector<double> ours = {train_step(w, opt), train_step(w, opt)};
  std::vector<double> theirs = torch.request_numbers("losses 2", "losses");
  ENGRAM_CHECK(theirs.size() == 2, "torch server: expected 2 losses, got {}", theirs.size());
  auto rel = [](double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-12); };
  const double rel1 = rel(ours[0], theirs[0]), rel2 = rel(ours[1], theirs[1]);
  const double tol = check_tolerance(w);
  const bool ok = rel1 <= tol && rel2 <= tol;
  fmt::print("check workload={} engram_loss1={:.7g} torch_loss1={:.7g} rel1={:.1e} "
             "engram_loss2={:.7g} torch_loss2={:.7g} rel2={:.1e} {}\n",
             w.name, ours[0], theirs[0], rel1, ours[1], theirs[1], rel2, ok ? "ok" : "MISMATCH");
  return ok;
}

// `baseline` is engram's VmRSS before the workload was built (nullopt: not measurable).
void time_workload(bench::Workload& w, nn::Optimizer& opt, bench::TorchServer* torch,
                   const Options& o, int threads, std::optional<double> baseline, bool on_gpu) {
  for (int64_t i = 0; i < o.warmup; ++i) train_step(w, opt);
  if (torch && o.warmup > 0) torch->time(o.warmup);

  std::vector<double> ours, theirs;
  const size_t fresh_before = cpu_memory_stats().fresh;  // large blocks the system had to give
  double torch_peak_bytes = 0;  // from the last 'time' reply: the torch side's peak so far
  const int64_t block = std::max<int64_t>(1, (o.steps + kAlternations - 1) / kAlternations);
  for (int64_t done = 0; done < o.steps; done += block) {
    const int64_t n = std::min(block, o.steps - done);
    for (int64_t i = 0; i < n; ++i) {
      auto start = std::chrono::steady_clock::now();
      train_step(w, opt);
      ours.push_back(milliseconds_since(start));
    }
    if (torch) {
      bench::TorchServer::Timing t = torch->time(n);
      theirs.insert(theirs.end(), t.ms.begin(), t.ms.end());
      torch_peak_bytes = t.peak_bytes;
    }
  }
  // Read right after the last step, before anything here allocates, so the peak is the workload's.
  std::optional<double> hwm =
      on_gpu ? std::optional<double>(double(cuda_memory_stats().peak)) : status_bytes("VmHWM");
  const size_t fresh_blocks = cpu_memory_stats().fresh - fresh_before;
  const double engram_ms = median(ours);
  std::string torch_ms = "NA", ratio = "NA";
  if (torch) {
    const double t = median(theirs);
    torch_ms = fmt::format("{:.3f}", t);
    ratio = fmt::format("{:.2f}", t / engram_ms);
  }
  std::string extra = w.flop_per_step > 0 ? fmt::format(" gflop={:.3f}", w.flop_per_step / 1e9) : "";
  if (on_gpu) {
    extra += " device=cuda";
    if (w.flop_per_step > 0) extra += fmt::format(" engram_tflops={:.2f}", w.flop_per_step / (engram_ms * 1e9));
  }
  std::string engram_peak = "NA", torch_peak = "NA", mem_ratio = "NA";
  if (hwm && baseline) engram_peak = fmt::format("{:.1f}", (*hwm - *baseline) / kMiB);
  if (torch) torch_peak = fmt::format("{:.1f}", torch_peak_bytes / kMiB);
  // No ratio when either side grew by less than 1 MiB: a workload that fits in heap pages the one
  // before it freed (the allocator keeps them resident) grows by ~0, and the kernel's RSS counters
  // are only synced in batches, so such growths are noise (even -0.1 MiB) and a ratio of them
  // says nothing.
  if (hwm && baseline && torch && *hwm - *baseline >= kMiB && torch_peak_bytes >= kMiB)
    mem_ratio = fmt::format("{:.2f}", torch_peak_bytes / (*hwm - *baseline));
  // fresh_blocks: large CPU blocks (>= 256 KiB) allocated from the system during the timed
  // steps, i.e. not served by the caching allocator; 0 in a steady state.
  fmt::print("workload={} engram_ms={:.3f} torch_ms={} ratio={} threads={}{} engram_peak_mb={} "
             "torch_peak_mb={} mem_ratio={} fresh_blocks={}\n",
             w.name, engram_ms, torch_ms, ratio, threads, extra, engram_peak, torch_peak, mem_ratio,
             fresh_blocks);
}

int run(const Options& o) {
  if (o.list) {
    for (const std::string& name : bench::workload_names()) fmt::print("{}\n", name);
    return 0;
  }
  ENGRAM_CHECK(o.device == "cpu" || o.device == "cuda", "--device must be cpu or cuda, got '{}'",
               o.device);
  const bool on_gpu = o.device == "cuda";
  ENGRAM_CHECK(!on_gpu || cuda_available(), "--device cuda: no usable GPU: {}",
               cuda_device_description());
  if (o.peak) return on_gpu ? run_peak_cuda() : run_peak();
  ENGRAM_CHECK(o.steps >= 1, "--steps must be at least 1, got {}", o.steps);
  ENGRAM_CHECK(o.warmup >= 0, "--warmup must be >= 0, got {}", o.warmup);
  ENGRAM_CHECK(o.threads >= 0, "--threads must be positive, got {}", o.threads);
  ENGRAM_CHECK(!(o.check && o.no_torch), "--check compares with PyTorch and cannot run with --no-torch");
  std::vector<std::string> names = o.workloads.empty() ? bench::workload_names() : o.workloads;
  for (const std::string& name : names) {
    const auto& known = bench::workload_names();
    ENGRAM_CHECK(std::find(known.begin(), known.end(), name) != known.end(),
                 "unknown workload '{}' (known: {})", name, fmt::join(known, ", "));
  }

  const int threads = o.threads > 0 ? o.threads : num_threads();
  set_num_threads(threads);

  std::unique_ptr<bench::TorchServer> torch;
  std::string missing;
  if (o.no_torch) {
    missing = "--no-torch given";
  } else if (std::optional<std::string> script = find_torch_ref(o)) {
    torch = std::make_unique<bench::TorchServer>(find_python(o), *script, threads, o.device);
    if (!torch->available()) missing = torch->unavailable_reason(), torch.reset();
  } else {
    missing = o.torch_ref.empty() ? "apps/bench/torch_ref.py not found (run from the repository "
                                    "root or pass --torch-ref PATH)"
                                  : fmt::format("--torch-ref {} does not exist", o.torch_ref);
  }
  ENGRAM_CHECK(!o.check || torch, "--check needs PyTorch, which is unavailable: {}", missing);
  if (torch) fmt::print("# torch: {}\n", torch->description());
  else fmt::print("# torch: unavailable, torch_ms=NA: {}\n", missing);
  // What makes timings move besides the code: the machine's load, and whether OpenMP threads spin
  // (the default) or sleep while they wait (OMP_WAIT_POLICY=passive; both sides inherit it).
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  // Whether VmHWM can be reset here: without it every workload's peak_mb is measured from the
  // process's peak so far (an upper bound), and the reader must know.
  const bool hwm_reset = reset_peak_rss();
  fmt::print("# engram threads={} steps={} warmup={} seed={} loadavg={} OMP_WAIT_POLICY={} "
             "hwm_reset={}\n",
             threads, o.steps, o.warmup, o.seed, load_average(), wait_policy ? wait_policy : "(unset)",
             hwm_reset ? "yes" : "no (peak_mb = VmHWM since start - VmRSS before the workload)");
  std::fflush(stdout);

  ScratchDir scratch;
  bool all_agree = true;
  for (const std::string& name : names) {
    // The memory baseline: the previous workload was freed at the end of the last iteration, and
    // the CPU allocator's cache is emptied (as the torch side runs gc.collect()), so its blocks
    // do not sit in this workload's baseline. On the GPU the figure is device memory: the
    // caching allocator's peak over what was in use.
    cpu_empty_cache();
    const std::optional<double> baseline =
        on_gpu ? std::optional<double>(double(cuda_memory_stats().in_use)) : status_bytes("VmRSS");
    reset_peak_rss();
    if (on_gpu) cuda_reset_peak_memory();
    bench::Workload w = bench::make_workload(name, o.seed);
    if (torch) {
      std::string path = (scratch.path / (name + ".safetensors")).string();
      bench::export_workload(w, path);
      torch->request(fmt::format("setup {} {}", name, path), "ok");
    }
    if (on_gpu) {  // in place, so the loss closures' handles to the batch see the moved tensors
      w.model->to(Device::cuda);
      for (auto& [key, t] : w.data) nn::convert_in_place(t, Device::cuda);
    }
    nn::Adam opt(w.model->parameters());  // lr 1e-3, betas (0.9, 0.999), eps 1e-8: torch's defaults
    if (o.check) all_agree &= check_workload(w, opt, *torch);
    else time_workload(w, opt, torch.get(), o, threads, baseline, on_gpu);
    std::fflush(stdout);
  }
  return all_agree ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"Training-step benchmarks of engram against PyTorch (forward + backward + Adam)"};
  app.add_option("--workload", opt.workloads,
                 fmt::format("workload to run, repeatable (default: all): {}",
                             fmt::join(bench::workload_names(), ", ")));
  app.add_option("--steps", opt.steps, "timed training steps per side")->capture_default_str();
  app.add_option("--warmup", opt.warmup, "untimed warm-up steps per side")->capture_default_str();
  app.add_option("--threads", opt.threads, "threads for both sides (default: ENGRAM_NUM_THREADS, "
                                           "else the core count)");
  app.add_flag("--no-torch", opt.no_torch, "engram only (torch_ms=NA)");
  app.add_flag("--check", opt.check, "compare the first two losses with PyTorch instead of timing");
  app.add_flag("--peak", opt.peak, "measure 1-thread and all-core sgemm GFLOP/s and exit");
  app.add_flag("--list", opt.list, "list the workloads and exit");
  app.add_option("--device", opt.device, "cpu or cuda: both sides run there (torch: CUDA eager)")
      ->capture_default_str();
  app.add_option("--seed", opt.seed, "seed for weights and batches")->capture_default_str();
  app.add_option("--python", opt.python, "python interpreter with torch (default /usr/bin/python3)");
  app.add_option("--torch-ref", opt.torch_ref, "path of torch_ref.py (default: found from the "
                                                "working directory or the executable)");
  return engram::apps::parse_and_run(app, argc, argv, [&] { return run(opt); });
}
