// tests/test_distributed.cpp — the parts of data parallelism that one process can check (the
// 2-rank equality tests are tests/mpi/, run by make test-mpi): a world of one, the tape's
// nodes_done hook that launches gradient buckets, and the text batcher's rows of one rank.
#include <doctest/doctest.h>

#include "apps/common/text_data.h"
#include "autograd/ops.h"
#include "autograd/tape.h"
#include "nn/distributed.h"
#include "nn/layers.h"

using namespace engram;
namespace dist = engram::nn::dist;

TEST_CASE("distributed: without init, a world of one whose collectives are the identity") {
  REQUIRE_FALSE(dist::initialized());
  CHECK(dist::rank() == 0);
  CHECK(dist::size() == 1);
  CHECK(dist::is_lead());
  double v[2] = {1.5, -2.0};
  dist::allreduce_sum(v, 2, "test");
  CHECK(v[0] == 1.5);
  CHECK(v[1] == -2.0);
  CHECK(dist::broadcast_string("x", "test") == "x");
  CHECK(dist::allgather_string("y", "test") == std::vector<std::string>{"y"});
  dist::check_all(true, "fine", "test");
  try {
    dist::check_all(false, "the message", "test");
    FAIL("check_all(false) did not throw");
  } catch (const Error& e) {
    CHECK(std::string(e.what()) == "the message");
  }
  dist::Shard s = dist::shard_rows(16, "train.batch");
  CHECK(s.begin == 0);
  CHECK(s.count == 16);
  if (!dist::built_with_mpi()) {  // the message a build without OpenMPI gives for --distributed
    try {
      dist::init();
      FAIL("init did not throw without MPI");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find("built without MPI") != std::string::npos);
    }
  }
}

TEST_CASE("distributed: backward's nodes_done falls from the root's node to 0") {
  Tensor w = from_vector<float>({1, 2, 3}, {3}).requires_grad_();
  Tensor b = from_vector<float>({0.5f}, {1}).requires_grad_();
  Tensor y = sum(mul(add(w, b), w));  // nodes: add 0, mul 1, sum 2
  const int64_t root = int64_t(tape().nodes.size()) - 1;
  std::vector<int64_t> seen;
  std::vector<bool> b_done_at;  // b's gradient is final once node 0 (its only use) has run
  backward(y, Tensor(), false, [&](int64_t i) {
    seen.push_back(i);
    b_done_at.push_back(b.grad().defined());
  });
  REQUIRE(!seen.empty());
  CHECK(seen.back() == 0);
  for (size_t k = 1; k < seen.size(); ++k) CHECK(seen[k] < seen[k - 1]);
  CHECK(seen.front() == root);
  CHECK(b_done_at.back());
  CHECK(b.grad().item() == doctest::Approx(1 + 2 + 3));  // d/db sum((w + b) w) = sum w
}

TEST_CASE("distributed: DataParallel in a world of one is plain backward") {
  Generator g(3);
  nn::Linear lin(4, 2, true, &g);
  dist::DataParallel dp(lin);
  CHECK(dp.buckets() == 1);
  CHECK(dp.gradient_bytes() == (4 * 2 + 2) * 4);
  Tensor x = randn({3, 4}, DType::f32, &g);
  dp.backward(sum(lin(x)));
  std::vector<float> a = lin.weight.grad().to_vector<float>();
  zero_grad(lin.parameters());
  backward(sum(lin(x)));
  CHECK(a == lin.weight.grad().to_vector<float>());
  dp.backward(Tensor());  // a rank without rows: no error, nothing changes
  CHECK(a == lin.weight.grad().to_vector<float>());
}

TEST_CASE("distributed: a batcher's rows of one rank are those rows of the whole batch") {
  apps::TokenSplit split;
  split.name = "train";
  for (int i = 0; i < 1000; ++i) split.ids.push_back(i % 97);
  split.chars = 1000;
  apps::StreamBatcher whole(split, 8, 10), part(split, 8, 10);
  part.set_rows(4, 2);
  CHECK(part.batch() == 2);
  CHECK(part.global_batch() == 8);
  CHECK(part.batches_per_epoch() == whole.batches_per_epoch());
  for (int64_t k : {int64_t(0), whole.batches_per_epoch() - 1}) {  // the padded last one too
    apps::Batch a = whole.get(k), b = part.get(k);
    CHECK(b.inputs.shape() == Shape{2, 10});
    CHECK(b.inputs.to_vector<int64_t>() == contiguous(raw::narrow(a.inputs, 0, 4, 2)).to_vector<int64_t>());
    CHECK(b.targets.to_vector<int64_t>() == contiguous(raw::narrow(a.targets, 0, 4, 2)).to_vector<int64_t>());
    CHECK(b.global_real_targets == a.real_targets);
    CHECK(b.real_targets * 4 == a.real_targets);
  }
  CHECK_THROWS_WITH_AS(part.set_rows(7, 2), doctest::Contains("not inside its 8 streams"), Error);
}
