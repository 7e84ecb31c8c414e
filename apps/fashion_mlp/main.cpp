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
};

constexpr int64_t kPixels = 28 * 28, kClasses = 10;

// Rows `order[begin, end)` of images [N, 784] and labels [N], copied into a fresh batch.
struct Batch {
  Tensor x, y;
};
Batch gather_batch(const Tensor& images, const Tensor& labels, const std::vector<int64_t>& order,
                   int64_t begin, int64_t end) {
  int64_t B = end - begin;
  Batch b{empty({B, kPixels}), empty({B}, DType::i64)};
  const float* src = images.data<float>();
  float* dst = b.x.data<float>();
  for (int64_t i = 0; i < B; ++i) {
    std::memcpy(dst + i * kPixels, src + order[begin + i] * kPixels, kPixels * sizeof(float));
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

double evaluate(nn::Sequential& model, const Tensor& images, const Tensor& labels) {
  NoGradGuard no_grad;
  model.eval();
  std::vector<int64_t> order(labels.numel());
  std::iota(order.begin(), order.end(), 0);
  int64_t correct = 0, N = labels.numel();
  for (int64_t begin = 0; begin < N; begin += 1000) {
    Batch b = gather_batch(images, labels, order, begin, std::min(N, begin + 1000));
    correct += count_correct(model(b.x), b.y);
  }
  model.train();
  return double(correct) / double(N);
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

  Generator gen(opt.seed);
  nn::Sequential model({std::make_shared<nn::Linear>(kPixels, 256, true, &gen), nn::ReLU(),
                        std::make_shared<nn::Linear>(256, 128, true, &gen), nn::ReLU(),
                        std::make_shared<nn::Linear>(128, kClasses, true, &gen)});
  nn::AdamOptions adam;
  adam.lr = opt.lr;
  nn::Adam optimizer(model.parameters(), adam);
  const int64_t steps_per_epoch = (train.size() + opt.batch - 1) / opt.batch;
  nn::LRSchedule schedule = nn::LRSchedule::warmup_cosine(0, opt.epochs * steps_per_epoch);
  // num_threads() applies ENGRAM_NUM_THREADS (else the core count) to OpenMP and OpenBLAS.
  fmt::print("fashion_mlp: {} train / {} test images, MLP 784-256-128-10 ({} parameters), "
             "Adam lr={} {}, batch={}, seed={}, threads={}\n",
             train.size(), test.size(), model.num_parameters(), opt.lr, schedule.str(), opt.batch,
             opt.seed, num_threads());

  std::vector<int64_t> order(train.size());
  std::iota(order.begin(), order.end(), 0);
  double test_acc = 0;
  int64_t step = 0;
  for (int64_t epoch = 1; epoch <= opt.epochs; ++epoch) {
    auto start = std::chrono::steady_clock::now();
    shuffle(order, gen);
    double loss_sum = 0;
    int64_t correct = 0, N = train.size();
    for (int64_t begin = 0; begin < N; begin += opt.batch) {
      Batch b = gather_batch(train_x, train.labels, order, begin, std::min(N, begin + opt.batch));
      schedule.apply(optimizer, step++);
      Tensor logits = model(b.x);
      Tensor loss = cross_entropy(logits, b.y);
      optimizer.zero_grad();
      backward(loss);
      optimizer.step();
      loss_sum += loss.item() * double(b.y.numel());
      correct += count_correct(logits, b.y);
    }
    test_acc = evaluate(model, test_x, test.labels);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    fmt::print("epoch {:3d}/{}  train_loss {:.4f}  train_acc {:.4f}  test_acc {:.4f}  {:.1f}s\n",
               epoch, opt.epochs, loss_sum / double(N), double(correct) / double(N), test_acc,
               seconds);
    std::fflush(stdout);
  }
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
  return engram::apps::parse_and_run(app, argc, argv, [&] { return run(opt); });
}
