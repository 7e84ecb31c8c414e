// tests/test_checkpoint.cpp — safetensors checkpoints: exact round trips, atomic writes, every
// kind of damaged file rejected with a clear error, strict and non-strict loads, a PyTorch state
// dict (tests/golden/optim_torch_state.safetensors, written by make_optim_golden.py) loaded by
// engram, and a training run that resumes from a checkpoint bit for bit.
#include <doctest/doctest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "autograd/golden.h"
#include "nn/checkpoint.h"
#include "tests/test_util.h"
#include "nn/layers.h"
#include "nn/schedule.h"

using namespace engram;
using namespace engram::nn;
namespace fs = std::filesystem;
using engram::testing::error_of;
using engram::testing::TempDir;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}
// A file made of a hand-written header and `data_bytes` zero bytes of data.
std::string raw_file(const std::string& header, size_t data_bytes) {
  uint64_t n = header.size();
  std::string out(reinterpret_cast<const char*>(&n), 8);
  return out + header + std::string(data_bytes, '\0');
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  Tensor ca = raw::contiguous(a), cb = raw::contiguous(b);
  return ca.dtype() == cb.dtype() && ca.shape() == cb.shape() &&
         std::memcmp(ca.raw_data(), cb.raw_data(), ca.numel() * dtype_size(ca.dtype())) == 0;
}

std::shared_ptr<Sequential> mlp(int64_t in, int64_t hidden, int64_t out, uint64_t seed) {
  Generator g(seed);
  return std::make_shared<Sequential>(std::vector<std::shared_ptr<UnaryModule>>{
      std::make_shared<Linear>(in, hidden, true, &g), ReLU(), std::make_shared<Linear>(hidden, out, true, &g)});
}


}  // namespace

TEST_CASE("checkpoint: safetensors round trip is bitwise for f32, f64, i64 and metadata") {
  TempDir dir;
  const double inf = std::numeric_limits<double>::infinity();
  Tensor f32 = from_vector(std::vector<float>{0.1f, -0.0f, 1e-42f /*denormal*/, float(inf), -3.5f, 7.0f}, {2, 3});
  Tensor f64 = from_vector(std::vector<double>{M_PI, -inf, std::nan(""), 5e-324, 1.0 / 3}, {5}, DType::f64);
  Tensor i64 = from_vector(std::vector<int64_t>{std::numeric_limits<int64_t>::min(), -1, 0,
                                                std::numeric_limits<int64_t>::max()}, {2, 1, 2});
  Tensor scalar = scalar_tensor(2.5, DType::f64);
  Tensor empty_rows = zeros({0, 3});
  Tensor transposed = raw::transpose(f32, 0, 1);  // a strided view: written in row-major order
  Metadata meta = {{"step", "1234"}, {"config", "{\"d_model\": 64, \"name\": \"t\\u00e9st\"}"},
                   {"note", "quotes \" and\nnewlines"}};
  std::string path = dir.file("round.safetensors");
  save_safetensors(path, {{"a.f32", f32}, {"b.f64", f64}, {"c.i64", i64}, {"scalar", scalar},
                          {"empty", empty_rows}, {"t", transposed}}, meta);
  std::string bytes = read_bytes(path);
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  CHECK(n % 8 == 0);  // the data area is 8-byte aligned
  CHECK(bytes[8] == '{');

  SafetensorsFile file = load_safetensors(path);
  CHECK(file.metadata == meta);
  REQUIRE(file.tensors.size() == 6);
  std::map<std::string, Tensor> got(file.tensors.begin(), file.tensors.end());
  CHECK(same_bytes(got["a.f32"], f32));
  CHECK(same_bytes(got["b.f64"], f64));
  CHECK(same_bytes(got["c.i64"], i64));
  CHECK(same_bytes(got["scalar"], scalar));
  CHECK(got["scalar"].dim() == 0);
  CHECK(got["empty"].shape() == Shape{0, 3});
  CHECK(same_bytes(got["t"], transposed));

  CHECK_THROWS_AS(save_safetensors(path, {{"x", f32}, {"x", f64}}), Error);
  CHECK_THROWS_AS(save_safetensors(path, {{"__metadata__", f32}}), Error);
  // The failed saves left the earlier file intact.
  CHECK(read_bytes(path) == bytes);
}

TEST_CASE("checkpoint: atomic write leaves no temporary file") {
  TempDir dir;
  auto model = mlp(4, 8, 2, 1);
  std::string path = dir.file("model.safetensors");
  save_checkpoint(path, *model);
  save_checkpoint(path, *model, {}, {{"step", "2"}});  // overwrite
  std::vector<std::string> names;
  for (auto& e : fs::directory_iterator(dir.path)) names.push_back(e.path().filename().string());
  CHECK(names == std::vector<std::string>{"model.safetensors"});
  CHECK(load_checkpoint(path, *model).metadata.at("step") == "2");
  // An unwritable destination fails with the path in the message and leaves nothing behind.
  std::string bad = dir.file("no/such/dir/model.safetensors");
  CHECK(error_of([&] { save_checkpoint(bad, *model); }).find("no/such/dir") != std::string::npos);
  names.clear();
  for (auto& e : fs::directory_iterator(dir.path)) names.push_back(e.path().filename().string());
  CHECK(names.size() == 1);
}

// A disk that fills up in the middle of a checkpoint, without root or a tiny tmpfs: RLIMIT_FSIZE
// caps the size of any file this process writes, and with SIGXFSZ ignored a write() past the cap
// fails with EFBIG after the bytes that fit went out, just as one fails with ENOSPC on a full disk.
// The cap is this process's own and is restored before any check can end the test.
struct FileSizeCap {
  rlimit old{};
  void (*old_handler)(int) = nullptr;
  explicit FileSizeCap(rlim_t bytes) {
    REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
    old_handler = std::signal(SIGXFSZ, SIG_IGN);  // else the signal kills the process
    rlimit cap = old;
    cap.rlim_cur = std::min(bytes, old.rlim_max);
    REQUIRE(setrlimit(RLIMIT_FSIZE, &cap) == 0);
  }
  ~FileSizeCap() {
    setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);
  }
};

TEST_CASE("checkpoint: a write that fails midway (disk full) leaves the previous checkpoint intact") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  auto small = mlp(4, 8, 2, 1);  // about 1 KB
  save_checkpoint(path, *small, {}, {{"step", "1"}});
  const std::string before = read_bytes(path);
  auto big = mlp(64, 256, 64, 2);  // about 130 KB, far past the 16 KB cap
  std::string err;
  {
    FileSizeCap cap(16384);
    err = error_of([&] { save_checkpoint(path, *big, {}, {{"step", "2"}}); });
  }
  // The error names the file, the cause, and that the last good checkpoint survived.
  CHECK(err.find("'" + path + "'") != std::string::npos);
  CHECK(err.find(std::strerror(EFBIG)) != std::string::npos);
  CHECK(err.find("the previous '" + path + "' is untouched") != std::string::npos);
  // And it did: the same bytes, loadable, and no temporary left beside it.
  CHECK(read_bytes(path) == before);
  CHECK(load_checkpoint(path, *small).metadata.at("step") == "1");
  std::vector<std::string> names;
  for (auto& e : fs::directory_iterator(dir.path)) names.push_back(e.path().filename().string());
  CHECK(names == std::vector<std::string>{"model.safetensors"});

  // A first checkpoint that fails says that nothing was written, and nothing was.
  const std::string fresh = dir.file("fresh.safetensors");
  {
    FileSizeCap cap(16384);
    err = error_of([&] { save_checkpoint(fresh, *big); });
  }
  CHECK(err.find("no '" + fresh + "' was written") != std::string::npos);
  CHECK_FALSE(fs::exists(fresh));
  // With the cap gone the same write succeeds: the failure was the disk, not the model.
  save_checkpoint(path, *big, {}, {{"step", "2"}});
  CHECK(load_checkpoint(path, *big).metadata.at("step") == "2");
}

TEST_CASE("checkpoint: truncated files give an error naming the file") {
  TempDir dir;
  auto model = mlp(4, 8, 2, 1);
  std::string good = dir.file("good.safetensors");
  save_checkpoint(good, *model);
  std::string bytes = read_bytes(good);
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  std::string path = dir.file("cut.safetensors");
  for (size_t len : {size_t(0), size_t(4), size_t(7), size_t(8), size_t(9), size_t(8 + n / 2),
                     size_t(8 + n - 1), size_t(8 + n), size_t(8 + n + 3), bytes.size() - 1}) {
    write_bytes(path, bytes.substr(0, len));
    std::string err = error_of([&] { load_checkpoint(path, *model); });
    INFO("truncated to " << len << " bytes: " << err);
    CHECK(!err.empty());
    CHECK(err.find(path) != std::string::npos);
  }
  CHECK(error_of([&] { load_safetensors(dir.file("missing.safetensors")); }).find("cannot open") !=
        std::string::npos);
}

TEST_CASE("checkpoint: corrupted headers are rejected, never read past the buffers") {
  TempDir dir;
  auto model = mlp(4, 8, 2, 1);
  std::string good = dir.file("good.safetensors");
  save_checkpoint(good, *model, {}, {{"step", "10"}});
  std::string bytes = read_bytes(good);
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  std::string path = dir.file("bad.safetensors");

  auto flipped = [&](size_t pos, unsigned char mask) {
    std::string b = bytes;
    b[pos] = char(b[pos] ^ mask);
    write_bytes(path, b);
    return error_of([&] { load_checkpoint(path, *model); });
  };
  CHECK(flipped(8, 0x01).find("not valid JSON") != std::string::npos);    // '{' -> 'z'
  CHECK(flipped(7, 0x40).find("exceeds") != std::string::npos);           // header length huge
  CHECK(flipped(0, 0x01).find("JSON") != std::string::npos);              // header length off by one
  // A bit flip at every byte of the length and header (low, middle or high bit in turn) either
  // fails cleanly or, when the JSON still parses to something valid (a changed digit that keeps
  // the sizes consistent), loads; it never crashes or reads out of bounds.
  int failures = 0;
  const unsigned char masks[] = {0x01, 0x08, 0x80};
  for (size_t pos = 0; pos < 8 + n; ++pos) {
    std::string err = flipped(pos, masks[pos % 3]);
    if (!err.empty()) {
      ++failures;
      CHECK_MESSAGE(err.find(path) != std::string::npos, err);
    }
  }
  CHECK(failures > int(n) / 2);
}

TEST_CASE("checkpoint: invalid entries are all listed in one error") {
  TempDir dir;
  std::string path = dir.file("entries.safetensors");
  std::string header = R"({"__metadata__": {"ok": "1", "bad": 3},
    "half": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},
    "short": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]},
    "past": {"dtype": "F64", "shape": [4], "data_offsets": [8, 40]},
    "negative": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]},
    "no_offsets": {"dtype": "I64", "shape": [1]},
    "huge": {"dtype": "F64", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})";
  write_bytes(path, raw_file(header, 16));
  std::string err = error_of([&] { load_safetensors(path); });
  INFO(err);
  for (const char* what : {"metadata 'bad'", "'half'", "F16", "'short'", "needs 12 bytes", "'past'",
                           "run past the data area", "'negative'", "'no_offsets'", "'huge'", path.c_str()})
    CHECK(err.find(what) != std::string::npos);

  write_bytes(path, raw_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                 "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", 12));
  CHECK(error_of([&] { load_safetensors(path); }).find("overlaps") != std::string::npos);
  write_bytes(path, raw_file("[1, 2]", 0));
  CHECK(error_of([&] { load_safetensors(path); }).find("not a JSON object") != std::string::npos);
}

TEST_CASE("checkpoint: strict load lists every mismatched name and loads nothing") {
  TempDir dir;
  std::string path = dir.file("model.safetensors");
  save_checkpoint(path, *mlp(4, 8, 2, 1));
  auto other = mlp(4, 6, 2, 2);  // hidden 6 instead of 8: 0.weight, 0.bias and 2.weight differ
  std::vector<Tensor> before;
  for (auto& [n, p] : other->named_parameters()) before.push_back(raw::clone(p));
  std::string err = error_of([&] { load_checkpoint(path, *other); });
  INFO(err);
  CHECK(err.find(path) != std::string::npos);
  CHECK(err.find("3 problems") != std::string::npos);
  CHECK(err.find("0.weight: file F32 [8, 4], expected F32 [6, 4]") != std::string::npos);
  CHECK(err.find("0.bias") != std::string::npos);
  CHECK(err.find("2.weight") != std::string::npos);
  CHECK(err.find("2.bias") == std::string::npos);  // that one matches
  size_t i = 0;
  for (auto& [n, p] : other->named_parameters()) CHECK(same_bytes(p, before[i++]));

  auto as_f64 = mlp(4, 8, 2, 3);
  as_f64->to(DType::f64);
  CHECK(error_of([&] { load_checkpoint(path, *as_f64); }).find("file F32 [8, 4], expected F64 [8, 4]") !=
        std::string::npos);
}

TEST_CASE("checkpoint: non-strict load reports missing and unexpected keys") {
  TempDir dir;
  std::string path = dir.file("partial.safetensors");
  auto src = mlp(4, 8, 2, 1);
  NamedTensors some;
  for (auto& [n, p] : src->named_parameters())
    if (n != "2.bias") some.emplace_back(n, p);
  some.emplace_back("head.extra", zeros({3}));
  save_safetensors(path, some);

  auto dst = mlp(4, 8, 2, 2);
  Tensor bias_before = raw::clone(dst->named_parameters()[3].second);
  std::string err = error_of([&] { load_checkpoint(path, *dst); });
  CHECK(err.find("missing: 2.bias") != std::string::npos);
  CHECK(err.find("unexpected: head.extra") != std::string::npos);

  LoadReport r = load_checkpoint(path, *dst, {}, /*strict=*/false);
  CHECK(r.missing_keys == std::vector<std::string>{"2.bias"});
  CHECK(r.unexpected_keys == std::vector<std::string>{"head.extra"});
  CHECK(r.mismatched_keys.empty());
  CHECK(!r.ok());
  auto s = src->named_parameters(), d = dst->named_parameters();
  for (size_t k = 0; k < 3; ++k) CHECK(same_bytes(s[k].second, d[k].second));
  CHECK(same_bytes(d[3].second, bias_before));  // the missing one is left as it was
}

TEST_CASE("checkpoint: a PyTorch state dict written in Python loads into engram") {
  fs::path path = golden::find_file("optim_torch_state.safetensors");
  std::ifstream f(golden::find_file("optim_mlp.json"));
  nlohmann::json golden = nlohmann::json::parse(f);
  Sequential model({std::make_shared<Linear>(8, 16), Tanh(), std::make_shared<Linear>(16, 4)});
  LoadReport r = load_checkpoint(path.string(), model, {}, /*strict=*/false);
  CHECK(r.missing_keys.empty());
  CHECK(r.unexpected_keys == std::vector<std::string>{"extra.f64", "extra.i64", "extra.scalar"});
  CHECK(r.metadata.at("step") == "7");
  CHECK(r.metadata.at("format") == "pt");
  for (auto& [name, p] : model.named_parameters()) {
    const auto& g = golden.at("params").at(name);
    Tensor want = from_vector(g.at("values").get<std::vector<double>>(), g.at("shape").get<Shape>(), DType::f32);
    CHECK_MESSAGE(same_bytes(p, want), name);
  }
  SafetensorsFile file = load_safetensors(path.string());
  std::map<std::string, Tensor> t(file.tensors.begin(), file.tensors.end());
  std::vector<double> sevenths;
  for (int k = 0; k < 6; ++k) sevenths.push_back(k / 7.0);
  CHECK(same_bytes(t["extra.f64"], from_vector(sevenths, {2, 3}, DType::f64)));
  CHECK(t["extra.i64"].to_vector<int64_t>() ==
        std::vector<int64_t>{-3, 0, int64_t(1) << 40, -(int64_t(1) << 62)});
  CHECK(t["extra.scalar"].dim() == 0);
  CHECK(t["extra.scalar"].to_vector<float>()[0] == 0.1f);
}

// ---------------------------------------------------------------- resume exactness

namespace {

struct Run {
  std::shared_ptr<Sequential> model;
  std::unique_ptr<Adam> opt;
  DynamicLossScaler scaler{LossScalerOptions{.init_scale = 1024, .growth_interval = 3}};
  Generator batches;
  LRSchedule schedule = LRSchedule::warmup_cosine(2, 10, 1e-4);
  Run(uint64_t seed) : model(mlp(6, 12, 3, seed)), batches(seed + 100) {
    opt = std::make_unique<Adam>(model->parameters(), AdamOptions{.lr = 0.05, .weight_decay = 1e-3, .amsgrad = true});
  }
  TrainingState state() { return {opt.get(), &scaler, &batches}; }
  // One step on a minibatch of 8 rows drawn with the run's generator; returns the loss.
  float step(int64_t s, const Tensor& x, const Tensor& y) {
    schedule.apply(*opt, s);
    Tensor idx = randint(0, x.size(0), {8}, &batches);
    opt->zero_grad();
    Tensor loss = cross_entropy((*model)(index_select(x, 0, idx)), index_select(y, 0, idx));
    backward(scaler.scale_loss(loss));
    scaler.step(*opt);
    scaler.update();
    return loss.to_vector<float>()[0];
  }
};

}  // namespace

TEST_CASE("checkpoint: resumed training is bitwise identical to an uninterrupted run") {
  TempDir dir;
  Generator data(7);
  Tensor x = randn({40, 6}, DType::f32, &data);
  Tensor y = randint(0, 3, {40}, &data);

  Run straight(1);
  std::vector<float> losses;
  for (int64_t s = 0; s < 10; ++s) losses.push_back(straight.step(s, x, y));

  Run first(1);
  for (int64_t s = 0; s < 5; ++s) CHECK(first.step(s, x, y) == losses[s]);
  std::string path = dir.file("resume.safetensors");
  save_checkpoint(path, *first.model, first.state(), {{"step", "5"}});

  Run resumed(99);  // different initial weights and generator: everything must come from the file
  LoadReport r = load_checkpoint(path, *resumed.model, resumed.state());
  CHECK(r.ok());
  int64_t start = std::stoll(r.metadata.at("step"));
  CHECK(resumed.scaler.scale() == first.scaler.scale());
  CHECK(resumed.opt->state(0, 0).steps() == 5);
  for (int64_t s = start; s < 10; ++s) {
    float loss = resumed.step(s, x, y);
    CHECK_MESSAGE(loss == losses[s], "step " << s << ": resumed " << loss << " vs " << losses[s]);
  }
  auto a = straight.model->named_parameters(), b = resumed.model->named_parameters();
  for (size_t k = 0; k < a.size(); ++k) CHECK_MESSAGE(same_bytes(a[k].second, b[k].second), a[k].first);
  CHECK(straight.scaler.scale() == resumed.scaler.scale());

  // The same training checkpoint loads strictly into a bare module (for inference).
  auto bare = mlp(6, 12, 3, 5);
  CHECK(load_checkpoint(path, *bare).ok());
  CHECK(error_of([&] { save_checkpoint(path, *bare, {}, {{"engram.rng", "x"}}); }).find("reserved") !=
        std::string::npos);
}
