// apps/fashion_mlp/main.cpp — a 784-256-128-10 ReLU MLP trained with Adam on Fashion-MNIST.
//
// The smallest end-to-end run of engram: IDX files (apps/common/idx.h) -> minibatches shuffled
// by the seeded generator -> Linear/ReLU layers -> cross-entropy -> backward on the tape -> Adam,
// its lr decayed along a half cosine to 0 over the run (so the last epoch settles rather than
// bouncing between minima).
// One progress line per epoch (train loss and accuracy over the epoch, test accuracy after it,
// seconds), then `test_acc=<fraction>`, and the trained model is written as a safetensors file
// (loadable into the equivalent torch.nn.Sequential by name: 0.weight, 0.bias, 2.weight, ...).
//
//   build/apps/fashion_mlp [--out DIR] [--epochs N] [--seed S] [--data DIR] [--batch B] [--lr LR]
//                          [--max-steps N] [--dtype f32|f64] [--distributed]
//
// Data parallel (mpirun -np N build/apps/fashion_mlp --distributed, nn/distributed.h): --batch
// is the global batch; each batch's rows are split over the ranks as evenly as they go (a rank
// may get none of a short last batch), each rank's loss is weighted by its share of the rows and
// the gradients are summed, so N ranks take the steps of one process; the test set is split over
// the ranks and the counts reduced; rank 0 prints and saves.
//
// The data is Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist/*.gz).
#include <CLI/CLI.hpp>

#include "apps/common/app_main.h"
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "apps/common/idx.h"
#include "nn/checkpoint.h"
#include "nn/distributed.h"
#include "nn/layers.h"
#include "nn/optim.h"
#include "nn/schedule.h"

using namespace engram;

namespace {

struct Options {
  std::string out = "runs/fashion_mlp";
  std::string data = "/usr/share/datasets/fashion-mnist";
  int64_t epochs = 10;
  uint64_t seed = 0;
  int64_t batch = 128;
  double lr = 1e-3;
  int64_t max_steps = 0;  // 0 = every step of every epoch
  std::string dtype = "f32";
  bool distributed = false;
};

constexpr int64_t kPixels = 28 * 28, kClasses = 10;

// Rows `order[begin, end)` of images [N, 784] and labels [N], copied into a fresh batch.
struct Batch {
  Tensor x, y;
};
Batch gather_batch(const Tensor& images, const Tensor& labels, const std::vector<int64_t>& order,
                   int64_t begin, int64_t end) {
  int64_t B = end - begin;
  Batch b{empty({B, kPixels}, images.dtype()), empty({B}, DType::i64)};
  const size_t row = size_t(kPixels) * dtype_size(images.dtype());  // f32, or f64 (--dtype)
  const char* src = static_cast<const char*>(images.raw_data());
  char* dst = static_cast<char*>(b.x.raw_data());
  for (int64_t i = 0; i < B; ++i) {
    std::memcpy(dst + size_t(i) * row, src + size_t(order[begin + i]) * row, row);
    b.y.data<int64_t>()[i] = labels.data<int64_t>()[order[begin + i]];
  }
  return b;
}

// How many rows of logits [B, C] have their largest entry at the label.
int64_t count_correct(const Tensor& logits, const Tensor& labels) {
  std::vector<int64_t> pred = argmax(logits, 1).to_vector<int64_t>();
  const int64_t* y = labels.data<int64_t>();
  int64_t correct = 0;
  for (size_t i = 0; i < pred.size(); ++i) correct += pred[i] == y[i];
  return correct;
}

// Test accuracy; with ranks, each counts its share of the images and the counts are summed.
double evaluate(nn::Sequential& model, const Tensor& images, const Tensor& labels) {
  NoGradGuard no_grad;
  model.eval();
  std::vector<int64_t> order(labels.numel());
  std::iota(order.begin(), order.end(), 0);
  const int64_t N = labels.numel();
  const nn::dist::Shard mine = nn::dist::rows_of(N);
  const int64_t lo = mine.begin, hi = mine.begin + mine.count;
  double correct = 0;
  for (int64_t begin = lo; begin < hi; begin += 1000) {
    Batch b = gather_batch(images, labels, order, begin, std::min(hi, begin + 1000));
    correct += double(count_correct(model(b.x), b.y));
  }
  correct = nn::dist::allreduce_sum(correct, "fashion_mlp: test accuracy");
  model.train();
  return correct / double(N);
}

// Fisher-Yates with the seeded generator: the same seed gives the same batches.
void shuffle(std::vector<int64_t>& order, Generator& gen) {
  for (int64_t i = int64_t(order.size()) - 1; i > 0; --i)
    std::swap(order[i], order[gen.randint(0, i + 1)]);
}

int run(const Options& opt) {
  ENGRAM_CHECK(opt.epochs >= 1, "--epochs must be at least 1, got {}", opt.epochs);
  ENGRAM_CHECK(opt.batch >= 1, "--batch must be at least 1, got {}", opt.batch);
  ENGRAM_CHECK(opt.lr > 0, "--lr must be positive, got {}", opt.lr);
  ENGRAM_CHECK(opt.max_steps >= 0, "--max-steps must be at least 0, got {}", opt.max_steps);
  ENGRAM_CHECK(opt.dtype == "f32" || opt.dtype == "f64", "--dtype must be f32 or f64, got '{}'", opt.dtype);
  const DType dtype = opt.dtype == "f64" ? DType::f64 : DType::f32;
  const bool lead = nn::dist::is_lead();
  ENGRAM_CHECK(std::filesystem::is_directory(opt.data),
               "Fashion-MNIST directory {} not found: install the Debian package "
               "dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist) or pass "
               "--data DIR", opt.data);
  apps::ImageDataset train = apps::load_mnist_split(opt.data, /*train=*/true);
  apps::ImageDataset test = apps::load_mnist_split(opt.data, /*train=*/false);
  ENGRAM_CHECK(train.images.size(1) * train.images.size(2) == kPixels,
               "{}: expected 28x28 images, got {}", opt.data, shape_str(train.images.shape()));
  Tensor train_x = raw::reshape(train.images, {-1, kPixels});
  Tensor test_x = raw::reshape(test.images, {-1, kPixels});
  if (dtype == DType::f64) train_x = to_dtype(train_x, dtype), test_x = to_dtype(test_x, dtype);

  Generator gen(opt.seed);
  nn::Sequential model({std::make_shared<nn::Linear>(kPixels, 256, true, &gen), nn::ReLU(),
                        std::make_shared<nn::Linear>(256, 128, true, &gen), nn::ReLU(),
                        std::make_shared<nn::Linear>(128, kClasses, true, &gen)});
  model.to(dtype);
  std::unique_ptr<nn::dist::DataParallel> dp;
  if (nn::dist::size() > 1) dp = std::make_unique<nn::dist::DataParallel>(model);
  nn::AdamOptions adam;
  adam.lr = opt.lr;
  nn::Adam optimizer(model.parameters(), adam);
  const int64_t steps_per_epoch = (train.size() + opt.batch - 1) / opt.batch;
  nn::LRSchedule schedule = nn::LRSchedule::warmup_cosine(0, opt.epochs * steps_per_epoch);
  // num_threads() applies ENGRAM_NUM_THREADS (else the core count) to OpenMP and OpenBLAS.
  if (lead)
    fmt::print("fashion_mlp: {} train / {} test images, MLP 784-256-128-10 ({} parameters, {}), "
               "Adam lr={} {}, batch={}, seed={}, threads={}{}\n",
               train.size(), test.size(), model.num_parameters(), opt.dtype, opt.lr, schedule.str(),
               opt.batch, opt.seed, num_threads(),
               dp ? fmt::format(" per rank, {} ranks (data parallel)", nn::dist::size()) : "");

  std::vector<int64_t> order(train.size());
  std::iota(order.begin(), order.end(), 0);
  double test_acc = 0;
  int64_t step = 0;
  for (int64_t epoch = 1; epoch <= opt.epochs; ++epoch) {
    auto start = std::chrono::steady_clock::now();
    shuffle(order, gen);
    double sums[2] = {0, 0};  // loss * rows and correct rows, over the epoch's rows seen
    int64_t seen = 0;
    const int64_t N = train.size();
    for (int64_t begin = 0; begin < N; begin += opt.batch) {
      if (opt.max_steps > 0 && step == opt.max_steps) break;
      const int64_t end = std::min(N, begin + opt.batch), n = end - begin;
      const nn::dist::Shard mine = nn::dist::rows_of(n);  // all n without ranks
      const int64_t lo = mine.begin, hi = mine.begin + mine.count;
      schedule.apply(optimizer, step++);
      optimizer.zero_grad();
      Tensor loss;  // this rank's share of the batch's mean loss (undefined: no rows here)
      if (hi > lo) {
        Batch b = gather_batch(train_x, train.labels, order, begin + lo, begin + hi);
        Tensor logits = model(b.x);
        loss = cross_entropy(logits, b.y);
        if (dp) loss = mul(loss, double(hi - lo) / double(n));
        sums[0] += loss.item() * double(n);  // the share's part of the batch's loss sum
        sums[1] += double(count_correct(logits, b.y));
      }
      if (dp) dp->backward(loss);
      else backward(loss);
      optimizer.step();
      seen += n;
    }
    if (dp) nn::dist::allreduce_sum(sums, 2, "fashion_mlp: epoch totals");
    test_acc = evaluate(model, test_x, test.labels);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (lead)
      fmt::print("epoch {:3d}/{}  train_loss {:.4f}  train_acc {:.4f}  test_acc {:.4f}  {:.1f}s\n",
                 epoch, opt.epochs, sums[0] / double(seen), sums[1] / double(seen), test_acc, seconds);
    std::fflush(stdout);
    if (opt.max_steps > 0 && step == opt.max_steps) break;
  }
  if (!lead) return 0;
  fmt::print("test_acc={:.4f}\n", test_acc);

  std::filesystem::create_directories(opt.out);
  std::string path = (std::filesystem::path(opt.out) / "fashion_mlp.safetensors").string();
  nn::save_checkpoint(path, model, {},
                      {{"app", "fashion_mlp"}, {"epochs", std::to_string(opt.epochs)},
                       {"seed", std::to_string(opt.seed)}, {"test_acc", fmt::format("{:.4f}", test_acc)}});
  fmt::print("saved {}\n", path);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"Train a 784-256-128-10 ReLU MLP with Adam on Fashion-MNIST"};
  app.add_option("--out", opt.out, "directory for fashion_mlp.safetensors")->capture_default_str();
  app.add_option("--epochs", opt.epochs, "passes over the training set")->capture_default_str();
  app.add_option("--seed", opt.seed, "seed for initialisation and shuffling")->capture_default_str();
  app.add_option("--data", opt.data, "directory with the (gzipped) IDX files")->capture_default_str();
  app.add_option("--batch", opt.batch, "minibatch size")->capture_default_str();
  app.add_option("--lr", opt.lr, "Adam learning rate")->capture_default_str();
  app.add_option("--max-steps", opt.max_steps, "stop after N steps (0 = run every epoch out)")->capture_default_str();
  app.add_option("--dtype", opt.dtype, "f32, or f64 for exact comparisons")->capture_default_str();
  app.add_flag("--distributed", opt.distributed, "data-parallel over the ranks of mpirun -np N "
               "(--batch is the global batch)");
  return engram::apps::parse_and_run(app, argc, argv, [&] {
    return engram::apps::run_maybe_distributed(opt.distributed, [&] { return run(opt); });
  });
}
