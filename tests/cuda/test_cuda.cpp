// tests/cuda/test_cuda.cpp — the CUDA backend against the CPU (make test-cuda).
//
// For every op of the registry (autograd/registry.h) and every sample: the forward and the
// gradient of every input on the GPU, compared with the CPU in f64 (relative-norm tolerance 1e-10)
// and in f32 (1e-5; both devices get the same f32 bits), the worst element named on failure
// (autograd/registry_check.h, check_device), and large samples that reach the kernel paths the
// small ones cannot (chunked reductions, long rows, topk's global sort). Then every language-model
// kind the apps build (which between them hold every layer and memory module: CRSD, LSTM,
// attention, CMR, Titans, MemNet, the state-space family) forward and backward on both devices, a
// few Adam steps of crsd_tiny's model equal within tolerance, transfers, the caching allocator,
// out-of-memory errors, and checkpoints saved from and loaded onto the GPU.
//
// Without a GPU (or in a build without CUDA) every case reports itself as skipped, never passed:
// the skip decorator below is decided once, before the cases run.
//
// ENGRAM_EMULATE_CUDA_WITH_CPU=1 (make test-device-placement) registers the CPU kernel table in
// the cuda slot. The kernels are then the CPU's, so nothing here says anything about CUDA kernels;
// what it does check, on any machine, is the code above core/: that every op, module and the
// optimizer put their tensors on the device of their inputs (a stray CPU tensor mixed with a
// "cuda" one is an error there as on a real GPU) and read no device memory from the host.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "apps/common/config.h"
#include "apps/common/lm.h"
#include "apps/common/trainer.h"
#include "autograd/ops.h"
#include "autograd/registry.h"
#include "autograd/registry_check.h"
#include "autograd/tape.h"
#include "core/backend.h"
#include "core/device.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"

using namespace engram;

namespace {

bool emulation_asked() {
  const char* e = std::getenv("ENGRAM_EMULATE_CUDA_WITH_CPU");
  return e != nullptr && std::strcmp(e, "1") == 0;
}

bool g_emulated = false;  // the cuda slot holds the CPU kernels (set once, before the cases run)
bool emulated() { return g_emulated; }

// ---- the emulated device: the CPU kernels, each behind a check of where its tensors live ----
// A CPU kernel reads host memory whatever device a tensor claims, so a stray CPU tensor would go
// unnoticed; on a GPU it is an illegal address. Every kernel of the emulated table therefore first
// checks that each tensor it is handed claims Device::cuda, and fails naming the kernel.
void expect_on_device(const char* kernel, const Tensor& t) {
  ENGRAM_CHECK(!t.defined() || t.device() == Device::cuda,
               "kernel '{}' was handed a {} tensor {} on the CPU while running on the device "
               "(something above core/ made it without the input's device)",
               kernel, dtype_name(t.dtype()), shape_str(t.shape()));
}
void expect_on_device(const char* kernel, const EpisodicSlots& s) {  // each slot tensor
  for (const Tensor* t : {&s.keys, &s.values, &s.importance, &s.age, &s.filled})
    expect_on_device(kernel, *t);
}
template <class T> void expect_on_device(const char*, const T&) {}  // scalars, enums, structs

template <class Fn, int Id> struct PlacementChecked;
template <class R, class... A, int Id> struct PlacementChecked<R (*)(A...), Id> {
  static inline R (*inner)(A...) = nullptr;
  static inline const char* name = nullptr;
  static R call(A... a) {
    (expect_on_device(name, a), ...);
    return inner(a...);
  }
};
// (__COUNTER__: one wrapper per field, also for fields of the same type)
#define ENGRAM_PLACEMENT_CHECK(B, FIELD) ENGRAM_PLACEMENT_CHECK_N(B, FIELD, __COUNTER__)
#define ENGRAM_PLACEMENT_CHECK_N(B, FIELD, N)                                                     \
  if (B.FIELD) {                                                                                  \
    using Fn_ = decltype(B.FIELD);                                                                \
    PlacementChecked<Fn_, N>::inner = B.FIELD;                                                    \
    PlacementChecked<Fn_, N>::name = #FIELD;                                                      \
    B.FIELD = &PlacementChecked<Fn_, N>::call;                                                    \
  }

// Every field but upload/download (a host tensor on one side by contract) and
// hebbian_scan_backward (its `grads` is a CPU f64 tensor by contract; the forward is checked).
void add_placement_checks(Backend& b) {
  ENGRAM_PLACEMENT_CHECK(b, copy) ENGRAM_PLACEMENT_CHECK(b, fill) ENGRAM_PLACEMENT_CHECK(b, unary)
  ENGRAM_PLACEMENT_CHECK(b, unary_backward) ENGRAM_PLACEMENT_CHECK(b, binary)
  ENGRAM_PLACEMENT_CHECK(b, where) ENGRAM_PLACEMENT_CHECK(b, reduce)
  ENGRAM_PLACEMENT_CHECK(b, arg_reduce) ENGRAM_PLACEMENT_CHECK(b, cumsum)
  ENGRAM_PLACEMENT_CHECK(b, softmax) ENGRAM_PLACEMENT_CHECK(b, softmax_backward)
  ENGRAM_PLACEMENT_CHECK(b, topk) ENGRAM_PLACEMENT_CHECK(b, matmul)
  ENGRAM_PLACEMENT_CHECK(b, index_select) ENGRAM_PLACEMENT_CHECK(b, index_add)
  ENGRAM_PLACEMENT_CHECK(b, gather) ENGRAM_PLACEMENT_CHECK(b, scatter_add)
  ENGRAM_PLACEMENT_CHECK(b, layer_norm) ENGRAM_PLACEMENT_CHECK(b, layer_norm_backward)
  ENGRAM_PLACEMENT_CHECK(b, im2col) ENGRAM_PLACEMENT_CHECK(b, col2im)
  ENGRAM_PLACEMENT_CHECK(b, max_pool2d) ENGRAM_PLACEMENT_CHECK(b, max_pool2d_backward)
  ENGRAM_PLACEMENT_CHECK(b, avg_pool2d) ENGRAM_PLACEMENT_CHECK(b, avg_pool2d_backward)
  ENGRAM_PLACEMENT_CHECK(b, cross_entropy) ENGRAM_PLACEMENT_CHECK(b, rms_norm)
  ENGRAM_PLACEMENT_CHECK(b, rms_norm_backward) ENGRAM_PLACEMENT_CHECK(b, nll_loss)
  ENGRAM_PLACEMENT_CHECK(b, nll_loss_backward) ENGRAM_PLACEMENT_CHECK(b, rfft)
  ENGRAM_PLACEMENT_CHECK(b, irfft) ENGRAM_PLACEMENT_CHECK(b, linear_scan)
  ENGRAM_PLACEMENT_CHECK(b, linear_scan_reverse) ENGRAM_PLACEMENT_CHECK(b, adam_step)
  ENGRAM_PLACEMENT_CHECK(b, sgd_step) ENGRAM_PLACEMENT_CHECK(b, hebbian_scan)
  ENGRAM_PLACEMENT_CHECK(b, cmr_drift_scan) ENGRAM_PLACEMENT_CHECK(b, cmr_drift_scan_backward)
  ENGRAM_PLACEMENT_CHECK(b, titans_linear_memory)
  ENGRAM_PLACEMENT_CHECK(b, titans_linear_memory_backward)
  ENGRAM_PLACEMENT_CHECK(b, titans_mlp_memory) ENGRAM_PLACEMENT_CHECK(b, titans_mlp_memory_backward)
  ENGRAM_PLACEMENT_CHECK(b, causal_conv1d) ENGRAM_PLACEMENT_CHECK(b, causal_conv1d_backward)
  ENGRAM_PLACEMENT_CHECK(b, selective_scan) ENGRAM_PLACEMENT_CHECK(b, selective_scan_backward)
  ENGRAM_PLACEMENT_CHECK(b, linear_scan_2x2) ENGRAM_PLACEMENT_CHECK(b, linear_scan_2x2_reverse)
  ENGRAM_PLACEMENT_CHECK(b, cauchy_kernel) ENGRAM_PLACEMENT_CHECK(b, cauchy_kernel_backward)
  ENGRAM_PLACEMENT_CHECK(b, vandermonde) ENGRAM_PLACEMENT_CHECK(b, vandermonde_backward)
  ENGRAM_PLACEMENT_CHECK(b, complex_mul) ENGRAM_PLACEMENT_CHECK(b, complex_matmul)
  ENGRAM_PLACEMENT_CHECK(b, masked_softmax) ENGRAM_PLACEMENT_CHECK(b, masked_softmax_backward)
  ENGRAM_PLACEMENT_CHECK(b, lstm_cell) ENGRAM_PLACEMENT_CHECK(b, lstm_cell_backward)
  ENGRAM_PLACEMENT_CHECK(b, episodic_scan) ENGRAM_PLACEMENT_CHECK(b, episodic_scan_backward)
}

// Decided once, before any case runs: a real GPU, or the CPU-kernel emulation when asked for.
bool device_ready() {
  if (device_available(Device::cuda)) return true;  // a real GPU (also when emulation is asked)
  if (!emulation_asked()) return false;
  Backend b = backend(Device::cpu);
  add_placement_checks(b);
  b.name = "cpu-kernels-in-the-cuda-slot";
  register_backend(Device::cuda, b);
  g_emulated = true;
  return true;
}
const bool kSkip = !device_ready();

constexpr Device kDev = Device::cuda;

double rel_err(const Tensor& got, const Tensor& want) {
  std::vector<double> a = got.to_vector<double>(), b = want.to_vector<double>();
  REQUIRE(a.size() == b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double d = a[i] - b[i];
    if (std::isnan(d)) return std::numeric_limits<double>::infinity();
    num += d * d, den += b[i] * b[i];
  }
  return num == 0 ? 0 : std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
}

// Every sample of every registry op in one dtype; one failure line per failing sample.
void registry_on_device(DType dtype, double rtol) {
  int checked = 0, failed = 0;
  double worst = 0;
  std::string worst_op;
  for (const OpInfo& op : op_registry()) {
    Generator gen(1234);
    for (const OpSample& s : op.samples(gen)) {
      DeviceResult r = check_device(op, s, kDev, dtype, rtol);
      ++checked;
      if (r.worst_rel > worst) worst = r.worst_rel, worst_op = op.name + " / " + s.label;
      if (!r.ok) ++failed;
      CHECK_MESSAGE(r.ok, op.name << " [" << s.label << "] " << dtype_name(dtype) << ": "
                                  << r.message);
    }
  }
  MESSAGE(dtype_name(dtype) << ": " << checked << " samples, " << failed << " failed; worst "
                            << "relative error " << worst << " (" << worst_op << ")");
}

apps::Config lm_config(const std::string& kind, const std::string& dtype) {
  apps::Config cfg(apps::lm_schema("cuda_test"));
  for (const char* s : {"model.d_model=16", "model.layers=1", "model.d_mem=8", "model.reservoir=16",
                        "model.slots=4", "model.heads=2", "train.batch=2", "train.seq_len=16"})
    cfg.apply_override(s);
  cfg.set("model.kind", kind, "test");
  cfg.set("model.dtype", dtype, "test");
  return cfg;
}

// Moves every tensor of an LM state to the device (states are built on the CPU).
apps::LMState state_to(apps::LMState st, Device d) {
  for (auto& [name, t] : st)
    if (t.defined()) t = raw::to_device(t, d);
  return st;
}

}  // namespace

TEST_SUITE("cuda" * doctest::skip(kSkip)) {

TEST_CASE("cuda: the backend reports itself") {
  MESSAGE("device: " << (emulated() ? std::string("emulated by the CPU kernels")
                                                      : cuda_device_description()));
  CHECK(device_available(kDev));
}

TEST_CASE("cuda: transfers round-trip through strided views and dtype conversions") {
  Generator g(3);
  Tensor x = randn({3, 5, 7}, DType::f64, &g);
  Tensor d = raw::to_device(x, kDev);
  CHECK(d.device() == kDev);
  CHECK(raw::to_device(d, Device::cpu).to_vector<double>() == x.to_vector<double>());
  // a transposed device view copied back, and a host view uploaded into a strided device view
  Tensor dt = raw::transpose(d, 0, 2);
  CHECK(raw::contiguous(raw::to_device(dt, Device::cpu)).to_vector<double>() ==
        raw::contiguous(raw::transpose(x, 0, 2)).to_vector<double>());
  Tensor target = zeros({7, 5, 3}, DType::f64, kDev);
  raw::copy_(raw::transpose(target, 0, 2), x);
  CHECK(raw::to_device(raw::transpose(target, 0, 2), Device::cpu).to_vector<double>() ==
        x.to_vector<double>());
  Tensor f = raw::to_dtype(d, DType::f32);
  CHECK(raw::to_device(f, Device::cpu).to_vector<float>() == raw::to_dtype(x, DType::f32).to_vector<float>());
  Tensor filled = full({4, 4}, 2.5, DType::f32, kDev);
  CHECK(filled.to_vector<float>() == std::vector<float>(16, 2.5f));
  Tensor ids = randint(0, 9, {11}, &g);
  CHECK(raw::to_device(raw::to_device(ids, kDev), Device::cpu).to_vector<int64_t>() ==
        ids.to_vector<int64_t>());
}

TEST_CASE("cuda: every registry op matches the CPU in f64") { registry_on_device(DType::f64, 1e-10); }

TEST_CASE("cuda: every registry op matches the CPU in f32") { registry_on_device(DType::f32, 1e-5); }

// The registry's samples are small, so some kernel paths never run on them: the chunked
// two-stage reductions (few outputs over many elements), topk's global-memory sort (lines over
// 2048), long softmax/cumsum lines, and masked_softmax's rows that see only the prefix (Tq > Tk).
// These samples reach them, through the same check as the registry's (forward and gradients).
const OpInfo& op_named(const std::string& name) {
  for (const OpInfo& op : op_registry())
    if (op.name == name) return op;
  FAIL("no registry op named " << name);
  throw std::logic_error("unreachable");
}

TEST_CASE("cuda: large and edge shapes reach every reduction path and match the CPU") {
  Generator g(99);
  const std::vector<std::pair<std::string, OpSample>> cases = {
      {"sum", sample("all of 1.1M elements", {rn(g, {1100, 1000})},
                     {{"dims", Dims{}}, {"keepdim", false}})},
      {"sum", sample("dim 0 of [100000, 3]", {rn(g, {100000, 3})},
                     {{"dims", Dims{0}}, {"keepdim", false}})},
      {"sum", sample("dims [0, 2] of [64, 5, 4096]", {rn(g, {64, 5, 4096})},
                     {{"dims", Dims{0, 2}}, {"keepdim", true}})},
      {"max", sample("dim 1 of [3, 70000]", {rn(g, {3, 70000})}, {{"dim", 1}, {"keepdim", false}})},
      {"softmax", sample("dim 1 of [4, 9000]", {rn(g, {4, 9000})}, {{"dim", 1}})},
      {"softmax", sample("dim 0 of [300, 7]", {rn(g, {300, 7})}, {{"dim", 0}})},
      {"cumsum", sample("dim 0 of [20000, 2]", {rn(g, {20000, 2})}, {{"dim", 0}})},
      {"topk", sample("k=5000 of a 5000 line", {rn(g, {2, 5000})},
                      {{"k", 5000}, {"dim", 1}, {"largest", true}})},
      {"topk", sample("k=3 smallest of a 3000 line, dim 0", {rn(g, {3000, 2})},
                      {{"k", 3}, {"dim", 0}, {"largest", false}})},
      {"masked_softmax", sample("Tq 6 > Tk 4, prefix 1", {rn(g, {2, 6, 4})},
                                {{"scale", 0.5}, {"causal", true}, {"window", 0}, {"prefix", 1}})},
      {"masked_softmax",
       sample("causal 3000 x 3000 window 700", {rn(g, {1, 3000, 3000})},
              {{"scale", 0.1}, {"causal", true}, {"window", 700}, {"prefix", 0}})},
  };
  for (DType dtype : {DType::f64, DType::f32}) {
    for (const auto& [name, s] : cases) {
      DeviceResult r =
          check_device(op_named(name), s, kDev, dtype, dtype == DType::f64 ? 1e-10 : 1e-5);
      CHECK_MESSAGE(r.ok,
                    name << " [" << s.label << "] " << dtype_name(dtype) << ": " << r.message);
    }
  }
}

// One LM kind in one dtype: loss and every parameter gradient on both devices.
void lm_matches_cpu(const std::string& kind, const std::string& dtype) {
  const double tol = dtype == "f64" ? 1e-9 : 2e-4;
  Generator g1(5), g2(5), data(6);
  auto cpu = apps::make_language_model(lm_config(kind, dtype), 256, &g1);
  auto gpu = apps::make_language_model(lm_config(kind, dtype), 256, &g2);
  gpu->module().to(kDev);
  Tensor ids = randint(0, 256, {2, 16}, &data), targets = randint(0, 256, {2, 16}, &data);
  apps::LMState s_cpu = cpu->initial_state(2), s_gpu = state_to(gpu->initial_state(2), kDev);
  tape().clear();
  Tensor l_cpu = cross_entropy(reshape(cpu->forward(ids, s_cpu), {32, 256}), reshape(targets, {32}));
  backward(l_cpu);
  tape().clear();
  Tensor l_gpu = cross_entropy(reshape(gpu->forward(raw::to_device(ids, kDev), s_gpu), {32, 256}),
                               reshape(raw::to_device(targets, kDev), {32}));
  CHECK(l_gpu.device() == kDev);
  backward(l_gpu);
  tape().clear();
  CHECK(rel_err(l_gpu, l_cpu) <= tol);
  auto pc = cpu->module().named_parameters(), pg = gpu->module().named_parameters();
  REQUIRE(pc.size() == pg.size());
  for (size_t i = 0; i < pc.size(); ++i) {
    CAPTURE(pc[i].first);
    REQUIRE(pc[i].second.grad().defined() == pg[i].second.grad().defined());
    if (!pc[i].second.grad().defined()) continue;
    CHECK(pg[i].second.grad().device() == kDev);
    CHECK(rel_err(pg[i].second.grad(), pc[i].second.grad()) <= tol);
  }
  for (auto& [name, t] : s_gpu)
    if (t.defined()) CHECK_MESSAGE(t.device() == kDev, "state " << name << " left the device");
}

TEST_CASE("cuda: every language-model kind, forward and backward, matches the CPU") {
  for (const std::string kind : {"crsd", "lstm", "transformer", "local_attention", "cmr_parallel",
                                 "cmr_series", "titans_mag", "hybrid", "memnet", "s4d", "s4", "s5",
                                 "mamba", "linoss", "retnet", "samba"})
    for (const std::string dtype : {"f64", "f32"}) {
      CAPTURE(kind);
      CAPTURE(dtype);
      try {
        lm_matches_cpu(kind, dtype);
      } catch (const std::exception& e) {
        tape().clear();
        FAIL_CHECK((kind + " " + dtype + ": " + e.what()));
      }
    }
}

TEST_CASE("cuda: five Adam steps of crsd_tiny's model give the CPU's losses") {
  apps::Config cfg = lm_config("crsd", "f32");
  Generator g1(9), g2(9), data(10);
  auto cpu = apps::make_language_model(cfg, 256, &g1);
  auto gpu = apps::make_language_model(cfg, 256, &g2);
  gpu->module().to(kDev);
  nn::Adam opt_cpu(cpu->module().parameters(), {.lr = 3e-3});
  nn::Adam opt_gpu(gpu->module().parameters(), {.lr = 3e-3});
  apps::LMState s_cpu = cpu->initial_state(2), s_gpu = state_to(gpu->initial_state(2), kDev);
  for (int step = 0; step < 5; ++step) {
    CAPTURE(step);
    Tensor ids = randint(0, 256, {2, 16}, &data), targets = randint(0, 256, {2, 16}, &data);
    double losses[2];
    for (int side = 0; side < 2; ++side) {
      auto& lm = side == 0 ? cpu : gpu;
      auto& st = side == 0 ? s_cpu : s_gpu;
      nn::Optimizer& opt = side == 0 ? (nn::Optimizer&)opt_cpu : (nn::Optimizer&)opt_gpu;
      Device d = side == 0 ? Device::cpu : kDev;
      lm->module().zero_grad();
      tape().clear();
      Tensor loss = cross_entropy(reshape(lm->forward(raw::to_device(ids, d), st), {32, 256}),
                                  reshape(raw::to_device(targets, d), {32}));
      backward(loss);
      tape().clear();
      opt.step();
      lm->detach_state(st);
      losses[side] = loss.item();
    }
    CHECK(std::abs(losses[1] - losses[0]) <= 1e-4 * std::abs(losses[0]));
  }
  auto pc = cpu->module().named_parameters(), pg = gpu->module().named_parameters();
  for (size_t i = 0; i < pc.size(); ++i) {
    CAPTURE(pc[i].first);
    CHECK(rel_err(pg[i].second, pc[i].second) <= 1e-4);
  }
}

TEST_CASE("cuda: a checkpoint saved from the GPU loads onto the GPU and onto the CPU") {
  apps::Config cfg = lm_config("crsd", "f32");
  Generator g1(11), g2(12), g3(13);
  auto a = apps::make_language_model(cfg, 256, &g1);
  a->module().to(kDev);
  std::filesystem::path dir = std::filesystem::temp_directory_path() / "engram_cuda_test";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "ckpt.safetensors").string();
  nn::save_checkpoint(path, a->module());
  auto b = apps::make_language_model(cfg, 256, &g2);  // other weights until loaded
  b->module().to(kDev);
  nn::load_checkpoint(path, b->module());
  auto c = apps::make_language_model(cfg, 256, &g3);
  nn::load_checkpoint(path, c->module());
  auto pa = a->module().named_parameters(), pb = b->module().named_parameters(),
       pc = c->module().named_parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    CAPTURE(pa[i].first);
    CHECK(pb[i].second.device() == kDev);
    CHECK(pc[i].second.device() == Device::cpu);
    CHECK(pb[i].second.to_vector<float>() == pa[i].second.to_vector<float>());
    CHECK(pc[i].second.to_vector<float>() == pa[i].second.to_vector<float>());
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("cuda: the caching allocator reuses blocks; out of memory is an engram error") {
  if (emulated()) return;  // the CPU's allocator: nothing of CUDA's to check
  cuda_synchronize();
  DeviceMemoryStats before = cuda_memory_stats();
  {
    Tensor t = empty({1 << 20}, DType::f32, kDev);
    CHECK(cuda_memory_stats().in_use >= before.in_use + (size_t(4) << 20));
  }
  DeviceMemoryStats freed = cuda_memory_stats();
  CHECK(freed.in_use == before.in_use);
  CHECK(freed.cached >= size_t(4) << 20);  // kept for the next tensor of that size
  { Tensor again = empty({1 << 20}, DType::f32, kDev); CHECK(cuda_memory_stats().cached < freed.cached); }
  bool threw = false;
  try {
    Tensor huge = empty({int64_t(1) << 48}, DType::f32, kDev);  // 1 PiB
  } catch (const Error& e) {
    threw = true;
    CHECK(std::string(e.what()).find("CUDA out of memory") != std::string::npos);
  }
  CHECK(threw);
  Tensor after = full({8}, 1.0, DType::f32, kDev);  // the device still works
  CHECK(after.to_vector<float>() == std::vector<float>(8, 1.0f));
}

}  // TEST_SUITE

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  if (kSkip)
    std::cout << "[engram] test-cuda: " << (cuda_built() ? "no usable GPU (" + cuda_device_description() + ")"
                                                         : std::string("engram was built without CUDA"))
              << ": every case below is reported as skipped\n";
  else if (emulated())
    std::cout << "[engram] device-placement run: the cuda slot holds the CPU kernels (no CUDA code "
                 "is tested; what is tested is that nothing above core/ leaves the device)\n";
  return context.run();
}
