// nn/distributed.cpp — see distributed.h. The only file that includes <mpi.h>; built with
// -DENGRAM_MPI=1 when the Makefile finds OpenMPI (pkg-config ompi-c), else every collective is
// the identity of a world of one.
#include "nn/distributed.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <type_traits>
#include <unordered_map>

#include "autograd/ops.h"
#include "autograd/tape.h"
#include "core/backend.h"

#ifndef ENGRAM_MPI
#define ENGRAM_MPI 0
#endif
#if ENGRAM_MPI
#define OMPI_SKIP_MPICXX 1  // the C API only (its C++ bindings do not build with -Wextra)
#include <mpi.h>
#endif

namespace engram::nn::dist {

namespace {

bool g_initialized = false;
int g_rank = 0, g_size = 1;

#if ENGRAM_MPI
// The watchdog: the collective in flight (its name and start), checked once a second by a
// thread. A collective waits forever when another rank died or took another path; MPI has no
// timeout of its own, so the waiting rank reports it and ends the job.
std::atomic<const char*> g_inflight_what{nullptr};
std::atomic<int64_t> g_inflight_since_ms{0};
std::atomic<bool> g_watchdog_stop{false};
std::thread g_watchdog;
double g_timeout_s = 600;

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

struct InFlight {  // marks one collective as in flight for the watchdog
  explicit InFlight(const char* what) {
    g_inflight_since_ms = now_ms();
    g_inflight_what = what;
  }
  ~InFlight() { g_inflight_what = nullptr; }
};

void watchdog_loop() {
  while (!g_watchdog_stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const char* what = g_inflight_what.load();
    if (what && double(now_ms() - g_inflight_since_ms.load()) > g_timeout_s * 1000) {
      std::fprintf(stderr, "error: rank %d of %d: the collective '%s' waited more than %g s for the "
                   "other ranks (a rank died, hangs, or took another path; ENGRAM_DIST_TIMEOUT "
                   "sets the limit); ending the job\n", g_rank, g_size, what, g_timeout_s);
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, 3);
    }
  }
}

void check_mpi(int rc, const char* call, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  ENGRAM_FAIL("rank {}: {} ({}) failed: {}", g_rank, call, what, std::string(msg, size_t(len)));
}
#endif

}  // namespace

bool built_with_mpi() { return ENGRAM_MPI != 0; }
bool initialized() { return g_initialized; }
int rank() { return g_rank; }
int size() { return g_size; }

void init() {
#if ENGRAM_MPI
  if (g_initialized) return;
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);  // errors become engram errors
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  g_initialized = true;
  if (const char* t = std::getenv("ENGRAM_DIST_TIMEOUT")) {
    char* end = nullptr;
    g_timeout_s = std::strtod(t, &end);
    ENGRAM_CHECK(end && *end == 0 && g_timeout_s > 0, "ENGRAM_DIST_TIMEOUT='{}': expected seconds > 0", t);
  }
  // Ranks on this node share its cores (OpenMPI says how many ranks the node runs).
  if (!std::getenv("ENGRAM_NUM_THREADS")) {
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node);
    int local = 1;
    MPI_Comm_size(node, &local);
    MPI_Comm_free(&node);
    const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
    set_num_threads(std::max(1, cores / local));
  }
  if (provided == MPI_THREAD_MULTIPLE) g_watchdog = std::thread(watchdog_loop);
  std::atexit(finalize);
#else
  ENGRAM_FAIL("--distributed: engram was built without MPI (OpenMPI's libopenmpi-dev was not "
              "found when it was compiled): install it (ENGRAM_WITH_MPI=1 bash "
              "scripts/install-deps.sh), rebuild with `make clean && make`, and launch with "
              "mpirun -np N");
#endif
}

void finalize() {
#if ENGRAM_MPI
  if (!g_initialized) return;
  g_watchdog_stop = true;
  if (g_watchdog.joinable()) g_watchdog.join();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
  g_initialized = false;
#endif
}

namespace {
template <typename T>
void allreduce_in_place(T* values, int64_t n, const char* what) {
  if (g_size == 1) return;
#if ENGRAM_MPI
  InFlight f(what);
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, values, int(n), std::is_same_v<T, double> ? MPI_DOUBLE : MPI_FLOAT,
                          MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce", what);
#else
  (void)values, (void)n, (void)what;
#endif
}
}  // namespace

void allreduce_sum(double* values, int64_t n, const char* what) { allreduce_in_place(values, n, what); }
void allreduce_sum(float* values, int64_t n, const char* what) { allreduce_in_place(values, n, what); }

double allreduce_sum(double value, const char* what) {
  allreduce_sum(&value, 1, what);
  return value;
}

std::string broadcast_string(const std::string& lead_value, const char* what) {
  if (g_size == 1) return lead_value;
#if ENGRAM_MPI
  InFlight f(what);
  int64_t n = int64_t(lead_value.size());
  check_mpi(MPI_Bcast(&n, 1, MPI_INT64_T, 0, MPI_COMM_WORLD), "MPI_Bcast", what);
  std::string s = g_rank == 0 ? lead_value : std::string(size_t(n), '\0');
  check_mpi(MPI_Bcast(s.data(), int(n), MPI_CHAR, 0, MPI_COMM_WORLD), "MPI_Bcast", what);
  return s;
#else
  (void)what;
  return lead_value;
#endif
}

std::vector<std::string> allgather_string(const std::string& mine, const char* what) {
  if (g_size == 1) return {mine};
#if ENGRAM_MPI
  InFlight f(what);
  int n = int(mine.size());
  std::vector<int> sizes(static_cast<size_t>(g_size)), offsets(static_cast<size_t>(g_size));
  check_mpi(MPI_Allgather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, MPI_COMM_WORLD), "MPI_Allgather", what);
  int total = 0;
  for (int r = 0; r < g_size; ++r) offsets[size_t(r)] = total, total += sizes[size_t(r)];
  std::string all(size_t(total), '\0');
  check_mpi(MPI_Allgatherv(mine.data(), n, MPI_CHAR, all.data(), sizes.data(), offsets.data(),
                           MPI_CHAR, MPI_COMM_WORLD), "MPI_Allgatherv", what);
  std::vector<std::string> out;
  for (int r = 0; r < g_size; ++r) out.push_back(all.substr(size_t(offsets[size_t(r)]), size_t(sizes[size_t(r)])));
  return out;
#else
  (void)what;
  return {mine};
#endif
}

Tensor allgather_cat(const Tensor& mine, int64_t dim, const char* what) {
  if (g_size == 1) return mine;
  NoGradGuard no_grad;
  Tensor c = contiguous(detach(mine));
  const size_t elem = dtype_size(c.dtype());
  const std::string bytes(static_cast<const char*>(c.raw_data()), size_t(c.numel()) * elem);
  int64_t slice = 1;  // elements per index along dim
  for (int64_t d = 0; d < c.dim(); ++d)
    if (d != dim) slice *= c.size(d);
  std::vector<Tensor> parts;
  for (const std::string& b : allgather_string(bytes, what)) {
    Shape shape = c.shape();
    shape[size_t(dim)] = slice > 0 ? int64_t(b.size() / elem) / slice : 0;
    Tensor part = empty(shape, c.dtype());
    if (!b.empty()) std::memcpy(part.raw_data(), b.data(), b.size());
    parts.push_back(part);
  }
  return cat(parts, dim);
}

void barrier(const char* what) {
  if (g_size == 1) return;
#if ENGRAM_MPI
  InFlight f(what);
  check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier", what);
#else
  (void)what;
#endif
}

void check_all(bool ok, const std::string& message, const char* what) {
  if (g_size == 1) {
    ENGRAM_CHECK(ok, "{}", message);
    return;
  }
  std::vector<std::string> verdicts = allgather_string(ok ? std::string() : "!" + message, what);
  for (int r = 0; r < g_size; ++r)
    if (!verdicts[size_t(r)].empty())
      ENGRAM_FAIL("{}{}", r == g_rank ? std::string() : fmt::format("rank {} of {}: ", r, g_size),
                  verdicts[size_t(r)].substr(1));
}

void check_same_as_lead(const std::string& value, const std::string& what) {
  if (g_size == 1) return;
  const std::string lead = broadcast_string(value, what.c_str());
  check_all(value == lead, fmt::format("the {} differs from rank 0's (every rank must be started "
                                       "with the same arguments and files)", what), what.c_str());
}

std::FILE* lead_output(std::FILE* out) {
  if (g_rank == 0) return out;
  static std::FILE* null = std::fopen("/dev/null", "w");
  return null ? null : stderr;
}

void abort_all(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
#if ENGRAM_MPI
  if (g_initialized && g_size > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

SoloScope::SoloScope() : rank_(g_rank), size_(g_size) { g_rank = 0, g_size = 1; }
SoloScope::~SoloScope() { g_rank = rank_, g_size = size_; }

Shard shard_rows(int64_t global_rows, const std::string& what) {
  ENGRAM_CHECK(global_rows % g_size == 0, "{} = {} does not split evenly over {} ranks: make it a "
               "multiple of {}", what, global_rows, g_size, g_size);
  const int64_t per = global_rows / g_size;
  return {per * g_rank, per};
}

Shard rows_of(int64_t n) {
  const int64_t lo = n * g_rank / g_size, hi = n * (g_rank + 1) / g_size;
  return {lo, hi - lo};
}

// ------------------------------------------------------------------------------- DataParallel

namespace {

// "name shape dtype" of every parameter and buffer, one per line: what must agree across ranks.
std::string state_signature(const NamedTensors& tensors) {
  std::string s;
  for (auto& [name, t] : tensors)
    s += fmt::format("{} {} {}\n", name, t.defined() ? shape_str(t.shape()) : "undefined",
                     t.defined() ? dtype_name(t.dtype()) : "-");
  return s;
}

// The first line where two signatures differ, for the mismatch error.
std::string first_difference(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    size_t ie = a.find('\n', i), je = b.find('\n', j);
    std::string la = i < a.size() ? a.substr(i, ie - i) : "(nothing)";
    std::string lb = j < b.size() ? b.substr(j, je - j) : "(nothing)";
    if (la != lb) return fmt::format("rank 0 has '{}', this rank '{}'", la, lb);
    i = ie == std::string::npos ? a.size() : ie + 1;
    j = je == std::string::npos ? b.size() : je + 1;
  }
  return "";
}

void broadcast_tensor(const Tensor& t, const char* what) {
#if ENGRAM_MPI
  ENGRAM_CHECK(t.is_contiguous(), "DataParallel: '{}' is not contiguous", what);
  InFlight f(what);
  check_mpi(MPI_Bcast(t.raw_data(), int(t.numel() * int64_t(dtype_size(t.dtype()))), MPI_BYTE, 0,
                      MPI_COMM_WORLD), "MPI_Bcast", what);
#else
  (void)t, (void)what;
#endif
}

}  // namespace

namespace {
NamedTensors parameters_and_buffers(const Module& module) {
  NamedTensors all = module.named_parameters();
  for (auto& b : module.named_buffers()) all.push_back(b);
  return all;
}
NamedTensors numbered(const std::vector<Tensor>& params) {
  NamedTensors all;
  for (size_t i = 0; i < params.size(); ++i) all.emplace_back(fmt::format("param.{}", i), params[i]);
  return all;
}
}  // namespace

DataParallel::DataParallel(Module& module, DataParallelOptions opt)
    : DataParallel(parameters_and_buffers(module), module.parameters(), opt) {}

DataParallel::DataParallel(std::vector<Tensor> params, DataParallelOptions opt)
    : DataParallel(numbered(params), params, opt) {}

DataParallel::DataParallel(const NamedTensors& state, std::vector<Tensor> params, DataParallelOptions opt)
    : params_(std::move(params)) {
  broadcast_state(state);
  for (size_t i = 0; i < params_.size(); ++i) index_[params_[i].impl()] = i;
  // Buckets in reverse registration order (the last layers' gradients are ready first), each
  // of one dtype and about opt.bucket_bytes.
  for (int64_t i = int64_t(params_.size()) - 1; i >= 0; --i) {
    const Tensor& p = params_[size_t(i)];
    const int64_t bytes = p.numel() * int64_t(dtype_size(p.dtype()));
    gradient_bytes_ += bytes;
    if (buckets_.empty() || buckets_.back().dtype != p.dtype() ||
        (buckets_.back().elements * int64_t(dtype_size(p.dtype())) + bytes > opt.bucket_bytes &&
         !buckets_.back().params.empty()))
      buckets_.push_back({{}, 0, p.dtype()});
    buckets_.back().params.push_back(i);
    buckets_.back().elements += p.numel();
  }
}

void DataParallel::broadcast_state(const NamedTensors& all) {
  if (g_size == 1) return;
  const std::string mine = state_signature(all);
  const std::string lead = broadcast_string(mine, "DataParallel: parameter signature");
  check_all(mine == lead, "DataParallel: the ranks' models differ: " + first_difference(lead, mine),
            "DataParallel: signature check");
  NoGradGuard no_grad;
  for (auto& [name, t] : all)
    if (t.defined()) broadcast_tensor(t, "DataParallel: broadcast of rank 0's parameters");
}

namespace {

template <typename T>
void pack(const std::vector<Tensor>& params, const std::vector<int64_t>& order, T* buf) {
  int64_t at = 0;
  const int64_t flags = [&] {
    int64_t n = 0;
    for (int64_t i : order) n += params[size_t(i)].numel();
    return n;
  }();
  for (size_t k = 0; k < order.size(); ++k) {
    const Tensor& p = params[size_t(order[k])];
    Tensor g = p.grad();
    const int64_t n = p.numel();
    if (g.defined()) {
      ENGRAM_CHECK(g.is_contiguous() && g.numel() == n, "DataParallel: the gradient of a {} "
                   "parameter is not a contiguous {} tensor", shape_str(p.shape()), shape_str(p.shape()));
      std::memcpy(buf + at, g.data<T>(), size_t(n) * sizeof(T));
    } else {
      std::fill(buf + at, buf + at + n, T(0));
    }
    buf[flags + int64_t(k)] = g.defined() ? T(1) : T(0);
    at += n;
  }
}

template <typename T>
void unpack(const std::vector<Tensor>& params, const std::vector<int64_t>& order, const T* buf) {
  int64_t at = 0, flags = 0;
  for (int64_t i : order) flags += params[size_t(i)].numel();
  for (size_t k = 0; k < order.size(); ++k) {
    const Tensor& p = params[size_t(order[k])];
    const int64_t n = p.numel();
    if (buf[flags + int64_t(k)] > T(0)) {  // some rank had a gradient for it
      Tensor g = p.grad();
      if (!g.defined()) {
        g = zeros(p.shape(), p.dtype(), p.device());
        Tensor(p).set_grad(g);  // a handle: the parameter itself gets the gradient
      }
      std::memcpy(g.data<T>(), buf + at, size_t(n) * sizeof(T));
    }
    at += n;
  }
}

}  // namespace

void DataParallel::backward(const Tensor& loss) {
  comm_seconds_ = 0;
  if (g_size == 1) {
    if (loss.defined()) engram::backward(loss);
    return;
  }
#if ENGRAM_MPI
  using clock = std::chrono::steady_clock;
  // A parameter's gradient is final once the first tape node that reads it has run.
  std::vector<int64_t> first_use(params_.size(), -1);
  const std::vector<Node>& nodes = tape().nodes;  // (none read when there is no loss)
  for (int64_t n = int64_t(nodes.size()) - 1; n >= 0; --n)
    for (const Node::Input& in : nodes[size_t(n)].inputs)
      if (in.leaf.defined())  // parameters are leaves that require grad: held by the node
        if (auto it = index_.find(in.leaf.impl()); it != index_.end()) first_use[it->second] = n;
  // A bucket is complete once every node at index >= ready_at has run: its parameters' earliest
  // first use (a parameter no node reads is complete from the start).
  std::vector<int64_t> ready_at(buckets_.size(), INT64_MAX);
  for (size_t b = 0; b < buckets_.size(); ++b)
    for (int64_t i : buckets_[b].params)
      if (first_use[size_t(i)] >= 0) ready_at[b] = std::min(ready_at[b], first_use[size_t(i)]);
  std::vector<std::vector<char>>& buffers = buffers_;
  buffers.resize(buckets_.size());
  std::vector<MPI_Request> requests(buckets_.size(), MPI_REQUEST_NULL);
  size_t launched = 0;  // buckets go out in a fixed order, the same on every rank
  auto launch_ready = [&](int64_t done_from) {
    auto t0 = clock::now();
    while (launched < buckets_.size() && ready_at[launched] >= done_from) {
      const Bucket& bk = buckets_[launched];
      const int64_t count = bk.elements + int64_t(bk.params.size());
      std::vector<char>& buf = buffers[launched];
      buf.resize(size_t(count) * dtype_size(bk.dtype));
      MPI_Datatype type = bk.dtype == DType::f64 ? MPI_DOUBLE : MPI_FLOAT;
      if (bk.dtype == DType::f64) pack(params_, bk.params, reinterpret_cast<double*>(buf.data()));
      else pack(params_, bk.params, reinterpret_cast<float*>(buf.data()));
      check_mpi(MPI_Iallreduce(MPI_IN_PLACE, buf.data(), int(count), type, MPI_SUM, MPI_COMM_WORLD,
                               &requests[launched]), "MPI_Iallreduce", "DataParallel: gradient bucket");
      ++launched;
    }
    if (launched > 0) {  // let MPI progress what is in flight (OpenMPI progresses inside calls)
      int flag = 0;
      MPI_Testall(int(launched), requests.data(), &flag, MPI_STATUSES_IGNORE);
    }
    comm_seconds_ += std::chrono::duration<double>(clock::now() - t0).count();
  };
  for (const Bucket& bk : buckets_)
    ENGRAM_CHECK(bk.dtype == DType::f32 || bk.dtype == DType::f64, "DataParallel: gradients of "
                 "dtype {} cannot be all-reduced (f32 and f64 only)", dtype_name(bk.dtype));
  if (loss.defined()) engram::backward(loss, Tensor(), false, launch_ready);
  launch_ready(-1);  // everything (unused parameters included) is final now
  auto t0 = clock::now();
  {
    InFlight f("DataParallel: gradient all-reduce");
    check_mpi(MPI_Waitall(int(requests.size()), requests.data(), MPI_STATUSES_IGNORE),
              "MPI_Waitall", "DataParallel: gradient all-reduce");
  }
  comm_seconds_ += std::chrono::duration<double>(clock::now() - t0).count();
  for (size_t b = 0; b < buckets_.size(); ++b) {
    if (buckets_[b].dtype == DType::f64)
      unpack(params_, buckets_[b].params, reinterpret_cast<const double*>(buffers[b].data()));
    else
      unpack(params_, buckets_[b].params, reinterpret_cast<const float*>(buffers[b].data()));
  }
#endif
}

}  // namespace engram::nn::dist
