// nn/distributed.h — data-parallel training across processes with MPI (Debian's OpenMPI).
//
// N ranks each hold the whole model and train on their own rows of one global batch. Each rank's
// loss is its share of the global mean (its rows' loss sum / the global count), so the sum of
// the ranks' gradients is the gradient of the one process that trains on the combined batch:
//
//   g = d/dtheta (1/N_total) sum_rows l_row  =  sum_ranks  d/dtheta (1/N_total) sum_{its rows} l_row
//
// and after one all-reduce (sum) every rank holds the same g, so the optimizer, gradient
// clipping (the global norm is the norm of g) and the loss scaler's Inf/NaN skip agree on every
// rank without more communication. This is PyTorch DDP's and llm.c's pattern; DDP averages
// instead because each rank's loss is its local mean, which is the same thing when every rank
// has the same number of rows (and wrong when padding makes the counts differ).
//
//   dist::init()               MPI_Init_thread, once, when an app is given --distributed
//   dist::rank(), dist::size() this process and the world; 0 and 1 when init was not called
//   dist::allreduce_sum(...)   every collective is a no-op in a world of one
//   DataParallel dp(module)    broadcasts rank 0's parameters and buffers (after checking that
//                              every rank has the same names and shapes), then
//   dp.backward(loss)          runs backward and sums the gradients across ranks in buckets of
//                              contiguous memory (one flat buffer per bucket, ~bucket_bytes each),
//                              each launched (MPI_Iallreduce) as soon as the tape has produced
//                              all of its gradients, so communication overlaps the rest of
//                              backward where MPI progresses it.
//
// Failures never hang: an error on one rank while the others wait in a collective is reported by
// that rank, which then calls abort_all (MPI_Abort ends every rank); a collective that waits
// longer than ENGRAM_DIST_TIMEOUT seconds (default 600) is reported by a watchdog on the waiting
// rank, naming the collective, and the job is aborted. A build without MPI (no libopenmpi-dev
// when it was compiled) runs everything in a world of one, and dist::init says so plainly.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"
#include "nn/module.h"

namespace engram::nn::dist {

bool built_with_mpi();
// Starts MPI (threads: MPI_THREAD_MULTIPLE, for the watchdog) and, unless ENGRAM_NUM_THREADS is
// set, gives each rank its share of the cores (cores / ranks on this node, at least 1), so N ranks
// do not oversubscribe the machine. Throws when engram was built without MPI.
void init();
void finalize();  // MPI_Finalize when init ran; safe to call always
bool initialized();
int rank();
int size();
inline bool is_lead() { return rank() == 0; }  // rank 0: the one that prints and writes

// Collectives over every rank (MPI_COMM_WORLD). `what` names the call in timeout reports.
void allreduce_sum(double* values, int64_t n, const char* what);
void allreduce_sum(float* values, int64_t n, const char* what);
double allreduce_sum(double value, const char* what);
std::string broadcast_string(const std::string& lead_value, const char* what);  // rank 0's string
std::vector<std::string> allgather_string(const std::string& mine, const char* what);
void barrier(const char* what);
// Every rank's `mine` concatenated along `dim` in rank order (the other dims equal on every rank;
// the sizes along `dim` may differ, zero included): the whole batch's rows from each rank's.
Tensor allgather_cat(const Tensor& mine, int64_t dim, const char* what);

// Every rank calls it with its own verdict; when any rank's `ok` is false, every rank throws one
// engram::Error naming the first failing rank and its message, so no rank is left waiting.
void check_all(bool ok, const std::string& message, const char* what);
// Every rank holds the same `value` (a config as YAML, say) as rank 0, else an error on every rank.
void check_same_as_lead(const std::string& value, const std::string& what);
// Where this rank prints: `out` on rank 0, /dev/null on the others (only rank 0 talks).
std::FILE* lead_output(std::FILE* out);
// Ends the whole job (MPI_Abort) after this rank printed its error; exits when not distributed.
[[noreturn]] void abort_all(int code);

// For its lifetime this rank runs as a world of one (rank 0 of 1, collectives the identity):
// tests train a one-process reference inside an MPI job with it. Not for use across collectives.
class SoloScope {
 public:
  SoloScope();
  ~SoloScope();
  SoloScope(const SoloScope&) = delete;
  SoloScope& operator=(const SoloScope&) = delete;

 private:
  int rank_, size_;
};

// Rows [begin, begin + count) of a global batch of `global_rows` that this rank trains on: the
// global batch must split evenly (the same rows per rank keeps every rank in step).
struct Shard {
  int64_t begin = 0, count = 0;
};
Shard shard_rows(int64_t global_rows, const std::string& what);
// This rank's rows of n when they need not split evenly (a short last batch): rows
// [n*r/N, n*(r+1)/N), so a rank may have none.
Shard rows_of(int64_t n);

struct DataParallelOptions {
  int64_t bucket_bytes = 25 << 20;  // PyTorch DDP's default bucket_cap_mb = 25
};

class DataParallel {
 public:
  // `module`'s parameters (and buffers) are made equal to rank 0's.
  explicit DataParallel(Module& module, DataParallelOptions opt = {});
  // The same for parameters that are not in a Module (named param.0, param.1, ...).
  explicit DataParallel(std::vector<Tensor> params, DataParallelOptions opt = {});
  // backward(loss) and the gradient all-reduce (sum) in buckets; afterwards every parameter's
  // .grad is the sum over ranks (defined wherever it was defined on some rank). An undefined
  // loss (a rank with no rows in this batch) contributes nothing but takes part.
  void backward(const Tensor& loss);
  // Seconds the last backward spent inside MPI (launching, progressing and waiting on buckets).
  double last_comm_seconds() const { return comm_seconds_; }
  int64_t buckets() const { return int64_t(buckets_.size()); }
  int64_t gradient_bytes() const { return gradient_bytes_; }

 private:
  struct Bucket {
    std::vector<int64_t> params;  // indices into params_, in packing order
    int64_t elements = 0;         // gradient elements, then one defined-flag per parameter
    DType dtype = DType::f32;
  };
  DataParallel(const NamedTensors& state, std::vector<Tensor> params, DataParallelOptions opt);
  static void broadcast_state(const NamedTensors& state);
  std::vector<Tensor> params_;
  std::unordered_map<const TensorImpl*, size_t> index_;  // parameter -> its place in params_
  std::vector<Bucket> buckets_;
  std::vector<std::vector<char>> buffers_;  // one flat buffer per bucket, kept between steps
  int64_t gradient_bytes_ = 0;
  double comm_seconds_ = 0;
};

}  // namespace engram::nn::dist
