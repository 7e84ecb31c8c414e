// tests/test_continual.cpp — the continual-learning harness (apps/common/continual*.h): task
// splits and their errors, per-task index subsets, the task-IL logit masks and accuracy, the
// reservoir and class-balanced replay buffers, the accuracy-matrix metrics on a hand-worked 3x3
// matrix, and the CSV / JSON / heatmap writers. None needs a dataset file; the last test checks the
// standard 5x2 split on Debian's Fashion-MNIST when that package is installed.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "apps/common/continual.h"
#include "apps/common/metrics.h"
#include "autograd/ops.h"
#include "autograd/tape.h"
#include "tests/test_util.h"

using namespace engram;
using namespace engram::apps;
using engram::testing::contains;
using engram::testing::error_of;

namespace {

using Tasks = std::vector<std::vector<int64_t>>;

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Labels 0..n_classes-1, `per_class` of each, interleaved: 0,1,..,9,0,1,...
Tensor cyclic_labels(int64_t n_classes, int64_t per_class) {
  std::vector<int64_t> y;
  for (int64_t r = 0; r < per_class; ++r)
    for (int64_t c = 0; c < n_classes; ++c) y.push_back(c);
  return from_vector(y, {(int64_t)y.size()});
}

}  // namespace

TEST_CASE("continual: split presets and parsing") {
  CHECK(parse_split("notebook").tasks == Tasks{{0, 1, 2, 3, 4}, {5, 6, 7, 8, 9}});
  CHECK(parse_split("2x5").tasks == notebook_split().tasks);
  CHECK(parse_split("standard").tasks == Tasks{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}});
  CHECK(parse_split("5x2").tasks == standard_split().tasks);
  CHECK(parse_split("0,1|2,3|4,5").tasks == Tasks{{0, 1}, {2, 3}, {4, 5}});
  CHECK(parse_split(" 9, 8 | 7 ,6|5").tasks == Tasks{{9, 8}, {7, 6}, {5}});
  CHECK(parse_split("0-4|5-9").tasks == notebook_split().tasks);
  CHECK(parse_split("3-4,0|1").tasks == Tasks{{3, 4, 0}, {1}});
  const TaskSplit s = parse_split("4,5|0,1|2,3");
  CHECK(s.str() == "4,5|0,1|2,3");
  CHECK(parse_split(s.str()).tasks == s.tasks);  // str() round-trips
  CHECK(s.num_tasks() == 3);
  CHECK(s.classes_up_to(1) == std::vector<int64_t>{4, 5, 0, 1});
  CHECK(s.all_classes() == std::vector<int64_t>{4, 5, 0, 1, 2, 3});
  CHECK(s.task_of(0) == 1);
  CHECK(s.task_of(9) == -1);
  CHECK(make_split({{0}, {1}}).tasks == Tasks{{0}, {1}});
  CHECK(parse_split("0|11", "data.split", 12).tasks == Tasks{{0}, {11}});  // other class counts
}

TEST_CASE("continual: split errors are one line naming the key and value") {
  auto err = [](const std::string& spec) { return error_of([&] { parse_split(spec, "data.split"); }); };
  std::string e = err("0,1|1,2");
  CHECK(contains(e, "data.split: class 1 is in task 1 and task 2"));
  CHECK(contains(e, "\"0,1|1,2\""));
  CHECK(contains(err("0,0|1"), "data.split: class 0 appears twice in task 1"));
  CHECK(contains(err("0,1|2,10"), "data.split: class 10 is outside 0..9"));
  CHECK(contains(err("0,1|-1"), "data.split: class -1 is outside 0..9"));
  CHECK(contains(err("0,1||2,3"), "data.split: task 2 is empty"));
  CHECK(contains(err("0,1|"), "data.split: task 2 is empty"));
  CHECK(contains(err("0,1,2"), "data.split: a split needs at least 2 tasks, got 1"));
  CHECK(contains(err(""), "data.split: empty split"));
  CHECK(contains(err("0,x|1"), "data.split: \"x\" is not a class id"));
  CHECK(contains(err("5-3|1"), "data.split: range \"5-3\" is backwards"));
  CHECK(contains(error_of([] { make_split({{0, 1}}, "split"); }), "split: a split needs at least 2 tasks"));
  CHECK(contains(error_of([] { make_split({{0, 1}, {}}, "split"); }), "split: task 2 is empty"));
  for (const char* spec : {"0,1|1,2", "0,1||2", "0,12|1", "0"})
    CHECK(err(spec).find('\n') == std::string::npos);
}

TEST_CASE("continual: per-task index subsets, class-balanced") {
  // labels 0..9 repeated 4 times: positions of class c are c, c+10, c+20, c+30
  const Tensor y = cyclic_labels(10, 4);
  CHECK(indices_of_classes(y, {2, 3}) == std::vector<int64_t>{2, 3, 12, 13, 22, 23, 32, 33});
  CHECK(balanced_indices(y, {2, 3}, 2) == std::vector<int64_t>{2, 3, 12, 13});  // first two each
  CHECK(balanced_indices(y, {2, 3}, -1) == indices_of_classes(y, {2, 3}));
  CHECK(contains(error_of([&] { balanced_indices(y, {1}, 5, nullptr, true); }),
                 "class 1 has 4 samples, fewer than the 5"));
  Generator g1(3), g2(3);
  const auto r1 = balanced_indices(y, {0, 1, 2}, 3, &g1);
  CHECK(r1 == balanced_indices(y, {0, 1, 2}, 3, &g2));  // same seed, same subset
  CHECK(r1.size() == 9);
  CHECK(std::is_sorted(r1.begin(), r1.end()));
  CHECK(class_counts(y, r1) == std::vector<int64_t>{3, 3, 3, 0, 0, 0, 0, 0, 0, 0});
  const auto per_task = task_indices(y, standard_split(), 3);
  REQUIRE(per_task.size() == 5);
  for (size_t t = 0; t < 5; ++t) {
    const auto counts = class_counts(y, per_task[t]);
    for (int64_t c = 0; c < 10; ++c) CHECK(counts[(size_t)c] == (c / 2 == (int64_t)t ? 3 : 0));
  }
  CHECK(class_counts(y) == std::vector<int64_t>(10, 4));

  // gather copies rows and labels
  ImageDataset d{from_vector(std::vector<float>{0, 1, 2, 3, 4, 5}, {3, 2}),
                 from_vector(std::vector<int64_t>{7, 8, 9}, {3})};
  ImageDataset b = gather(d, {2, 0});
  CHECK(b.images.shape() == Shape{2, 2});
  CHECK(b.images.to_vector<float>() == std::vector<float>{4, 5, 0, 1});
  CHECK(b.labels.to_vector<int64_t>() == std::vector<int64_t>{9, 7});
  CHECK(contains(error_of([&] { gather(d, {3}); }), "gather: index 3 outside 0..2"));
  Generator g(1);
  auto sh = shuffled({0, 1, 2, 3, 4, 5}, g);
  std::sort(sh.begin(), sh.end());
  CHECK(sh == std::vector<int64_t>{0, 1, 2, 3, 4, 5});
}

TEST_CASE("continual: scenarios, task-IL logit masks and accuracy") {
  CHECK(parse_scenario("task-il") == Scenario::task_il);
  CHECK(parse_scenario("task") == Scenario::task_il);
  CHECK(parse_scenario("class_il") == Scenario::class_il);
  CHECK(std::string(scenario_name(Scenario::class_il)) == "class-il");
  CHECK(contains(error_of([] { parse_scenario("domain", "data.scenario"); }),
                 "data.scenario: unknown scenario \"domain\""));

  const Tensor m = task_logit_mask({2, 3}, 5);
  CHECK(m.shape() == Shape{5});
  const auto mv = m.to_vector<float>();
  CHECK(std::isinf(mv[0]));
  CHECK(mv[0] < 0);
  CHECK(std::isinf(mv[1]));
  CHECK(mv[2] == 0);
  CHECK(mv[3] == 0);
  CHECK(std::isinf(mv[4]));
  CHECK(contains(error_of([] { task_logit_mask({5}, 5); }), "class 5 outside 0..4"));

  const TaskSplit split = parse_split("0,1|2,3|4");
  CHECK_FALSE(scenario_mask(Scenario::class_il, split, 1, 5).defined());
  CHECK(scenario_mask(Scenario::task_il, split, 1, 5).to_vector<float>() == mv);

  // row 0: argmax 4 overall, 3 within {2, 3}; row 1: argmax 2 everywhere; row 2: 0 overall, 2 in task
  Tensor logits = from_vector(std::vector<float>{0, 0, 1, 2, 5,   //
                                                 0, 0, 3, 1, 0,   //
                                                 9, 0, 1, 1, 0},  // a tie 2/3: the lower wins
                              {3, 5});
  const Tensor labels = from_vector(std::vector<int64_t>{3, 2, 2}, {3});
  CHECK(accuracy(logits, labels, nullptr) == doctest::Approx(1.0 / 3));
  CHECK(accuracy(logits, labels, &m) == doctest::Approx(1.0));
  CHECK(count_correct(logits, labels, &m) == 3);
  const Tensor none;
  CHECK(accuracy(logits, labels, &none) == doctest::Approx(1.0 / 3));  // undefined mask = none
  CHECK(std::isnan(accuracy(zeros({0, 5}), from_vector(std::vector<int64_t>{}, {0}), nullptr)));

  // per-sample masks (replay in task-IL): each row masked to its own label's task
  const Tensor pm = task_mask_for_labels(from_vector(std::vector<int64_t>{0, 3, 4}, {3}), split, 5);
  CHECK(pm.shape() == Shape{3, 5});
  const auto pv = pm.to_vector<float>();
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t k = 0; k < 5; ++k) {
      const bool open = split.task_of(k) == split.task_of(std::vector<int64_t>{0, 3, 4}[(size_t)b]);
      CHECK((pv[(size_t)(b * 5 + k)] == 0) == open);
    }
  CHECK(accuracy(logits, from_vector(std::vector<int64_t>{0, 2, 4}, {3}), &pm) == doctest::Approx(1.0));

  // the masked loss is finite and sends no gradient to the masked logits
  Tensor x = from_vector(std::vector<double>{0.5, -1, 2, 0.3, 4, 1, 1, -2, 0.1, 3}, {2, 5});
  x.requires_grad_();
  const Tensor masked = apply_logit_mask(x, m);
  CHECK(apply_logit_mask(x, Tensor()).same(x));
  Tensor loss = cross_entropy(masked, from_vector(std::vector<int64_t>{2, 3}, {2}));
  CHECK(std::isfinite(loss.item()));
  // by hand: row 0 over {2, 0.3}: -log softmax_0; row 1 over {-2, 0.1}: -log softmax_1
  const double l0 = std::log(std::exp(2.0) + std::exp(0.3)) - 2.0;
  const double l1 = std::log(std::exp(-2.0) + std::exp(0.1)) - 0.1;
  CHECK(loss.item() == doctest::Approx((l0 + l1) / 2));
  backward(loss);
  const auto gx = x.grad().to_vector<double>();
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t k : {0, 1, 4}) CHECK(gx[(size_t)(b * 5 + k)] == 0.0);
  for (double v : gx) CHECK(std::isfinite(v));
  CHECK(contains(error_of([&] { apply_logit_mask(x, task_logit_mask({0}, 4)); }), "does not fit"));
}

TEST_CASE("continual: reservoir buffer keeps what Algorithm R keeps") {
  // capacity 3, items 100..109 (labels 0..9) offered in order with Generator(1). Items 0..2 fill
  // the slots; item n >= 3 draws j = randint(0, n + 1) from the same generator and replaces slot
  // j when j < 3. Generator(1) draws, for n = 3..9: j = 0, 2, 0, 5, 0, 6, 8 (checked with a
  // replica below), so by hand:
  //   [100 101 102] -n=3,j=0-> [103 101 102] -n=4,j=2-> [103 101 104] -n=5,j=0-> [105 101 104]
  //   -n=6,j=5: skip- -n=7,j=0-> [107 101 104] -n=8,j=6: skip- -n=9,j=8: skip-  = [107 101 104]
  Generator gen(1), replica(1);
  std::vector<int64_t> draws;
  for (int64_t n = 3; n < 10; ++n) draws.push_back(replica.randint(0, n + 1));
  REQUIRE(draws == std::vector<int64_t>{0, 2, 0, 5, 0, 6, 8});
  ReservoirBuffer buf(3);
  std::vector<int64_t> kept;
  for (int64_t n = 0; n < 10; ++n)
    if (buf.add(100 + n, n, gen)) kept.push_back(n);
  CHECK(kept == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 7});
  const std::vector<int64_t> expect = {107, 101, 104};
  CHECK(buf.indices() == expect);
  CHECK(buf.labels() == std::vector<int64_t>{7, 1, 4});
  CHECK(buf.size() == 3);
  CHECK(buf.num_seen() == 10);
  CHECK(buf.kind() == "reservoir");

  // the state round-trips and the sampler is deterministic, distinct and within the buffer
  ReservoirBuffer copy(3);
  copy.load_state(buf.state());
  CHECK(copy.indices() == buf.indices());
  CHECK(copy.num_seen() == 10);
  Generator s1(5), s2(5);
  const auto a = buf.sample(2, s1);
  CHECK(a == buf.sample(2, s2));
  CHECK(a.size() == 2);
  CHECK(a[0] != a[1]);
  for (int64_t i : a) CHECK(std::count(expect.begin(), expect.end(), i) == 1);
  CHECK(buf.sample(10, s1).size() == 3);  // capped at size()
  CHECK(ReservoirBuffer(3).sample(4, s1).empty());
  CHECK(contains(error_of([] { ReservoirBuffer b(0); }), "capacity must be at least 1"));
  CHECK(contains(error_of([&] { copy.load_state({4, 0, 0}); }), "bad state"));
}

TEST_CASE("continual: reservoir buffer is uniform over what it saw") {
  // capacity 3 of 10 items: each is kept with probability 3/10. 4000 seeds: sd of a count is
  // sqrt(4000 * 0.3 * 0.7) = 29, so +-0.035 (about 4.8 sd) on the frequency.
  const int seeds = 4000;
  std::vector<int> kept(10, 0);
  for (int s = 0; s < seeds; ++s) {
    Generator g((uint64_t)s);
    ReservoirBuffer buf(3);
    for (int64_t n = 0; n < 10; ++n) buf.add(n, n % 2, g);
    REQUIRE(buf.size() == 3);
    for (int64_t i : buf.indices()) ++kept[(size_t)i];
  }
  for (int i = 0; i < 10; ++i) {
    INFO("item " << i);
    CHECK(std::abs(kept[(size_t)i] / double(seeds) - 0.3) < 0.035);
  }
}

TEST_CASE("continual: class-balanced buffer occupancy after 1, 2, 3 tasks") {
  // capacity 10, tasks {0,1}, {2,3}, {4,5}, 50 samples of each class (interleaved), index = 100*c + k.
  // shares: 2 classes -> 5, 5; 4 classes -> 10/4 = 2 rem 2 -> 3, 3, 2, 2;
  //         6 classes -> 10/6 = 1 rem 4 -> 2, 2, 2, 2, 1, 1 (remainder to the classes seen first).
  Generator gen(7);
  ClassBalancedBuffer buf(10);
  auto offer_task = [&](int64_t c0, int64_t c1) {
    for (int64_t k = 0; k < 50; ++k)
      for (int64_t c : {c0, c1}) buf.add(100 * c + k, c, gen);
  };
  auto check_contents = [&] {
    const auto idx = buf.indices(), lab = buf.labels();
    REQUIRE(idx.size() == lab.size());
    CHECK(std::set<int64_t>(idx.begin(), idx.end()).size() == idx.size());  // distinct
    for (size_t i = 0; i < idx.size(); ++i) CHECK(idx[i] / 100 == lab[i]);  // right class
  };
  offer_task(0, 1);
  CHECK(buf.occupancy(10) == std::vector<int64_t>{5, 5, 0, 0, 0, 0, 0, 0, 0, 0});
  CHECK(buf.class_capacities() == std::vector<int64_t>{5, 5});
  check_contents();
  offer_task(2, 3);
  CHECK(buf.occupancy(10) == std::vector<int64_t>{3, 3, 2, 2, 0, 0, 0, 0, 0, 0});
  check_contents();
  offer_task(4, 5);
  CHECK(buf.occupancy(10) == std::vector<int64_t>{2, 2, 2, 2, 1, 1, 0, 0, 0, 0});
  CHECK(buf.classes() == std::vector<int64_t>{0, 1, 2, 3, 4, 5});
  CHECK(buf.size() == 10);
  CHECK(buf.num_seen() == 300);
  check_contents();
  CHECK(buf.kind() == "class_balanced");

  // deterministic given the seed; the state round-trips
  Generator gen2(7);
  ClassBalancedBuffer again(10);
  for (auto [c0, c1] : std::vector<std::pair<int64_t, int64_t>>{{0, 1}, {2, 3}, {4, 5}})
    for (int64_t k = 0; k < 50; ++k)
      for (int64_t c : {c0, c1}) again.add(100 * c + k, c, gen2);
  CHECK(again.indices() == buf.indices());
  ClassBalancedBuffer copy(10);
  copy.load_state(buf.state());
  CHECK(copy.indices() == buf.indices());
  CHECK(copy.labels() == buf.labels());
  CHECK(copy.class_capacities() == buf.class_capacities());
  CHECK(contains(error_of([&] { copy.load_state({10, 1, 0, 1, 0, 5}); }), "bad state"));

  // within a class it is a reservoir: class 0 alone, capacity 3, each of 10 samples kept ~3/10
  std::vector<int> kept(10, 0);
  for (int s = 0; s < 3000; ++s) {
    Generator g((uint64_t)s);
    ClassBalancedBuffer b(3);
    for (int64_t k = 0; k < 10; ++k) b.add(k, 0, g);
    for (int64_t i : b.indices()) ++kept[(size_t)i];
  }
  for (int i = 0; i < 10; ++i) CHECK(std::abs(kept[(size_t)i] / 3000.0 - 0.3) < 0.04);

  // the factory
  CHECK(make_replay_buffer("reservoir", 5)->kind() == "reservoir");
  CHECK(make_replay_buffer("class_balanced", 5)->capacity() == 5);
  CHECK(contains(error_of([] { make_replay_buffer("fifo", 5); }),
                 "replay.buffer: unknown buffer \"fifo\""));
  CHECK(contains(error_of([] { make_replay_buffer("reservoir", 0, "memory.capacity"); }),
                 "memory.capacity: capacity must be at least 1"));
}

TEST_CASE("continual: metrics of a hand-made 3x3 accuracy matrix") {
  // R[i][j] = accuracy on task j after training task i
  //            task 1  task 2  task 3
  //   after 1   0.90    0.10    0.00
  //   after 2   0.95    0.80    0.20
  //   after 3   0.50    0.70    0.95
  const AccuracyMatrix R = {{0.90, 0.10, 0.00}, {0.95, 0.80, 0.20}, {0.50, 0.70, 0.95}};
  // ACC = (0.50 + 0.70 + 0.95) / 3 = 2.15 / 3 = 0.716667
  CHECK(average_accuracy(R) == doctest::Approx(2.15 / 3));
  // BWT = ((0.50 - 0.90) + (0.70 - 0.80)) / 2 = (-0.40 - 0.10) / 2 = -0.25
  //   (GEM code's mean over all 3 tasks would give -0.50 / 3 = -0.1667: not that)
  CHECK(backward_transfer(R) == doctest::Approx(-0.25));
  // forgetting: task 1: max(0.90, 0.95) - 0.50 = 0.45; task 2: max(0.10, 0.80) - 0.70 = 0.10;
  //   F = (0.45 + 0.10) / 2 = 0.275 (not -BWT: task 1 peaked after task 2)
  CHECK(forgetting(R) == doctest::Approx(0.275));
  // ACC after 1 = 0.90; after 2 = (0.95 + 0.80) / 2 = 0.875; after 3 = 0.716667;
  //   average incremental accuracy = (0.90 + 0.875 + 0.716667) / 3 = 0.830556
  CHECK(average_incremental_accuracy(R) == doctest::Approx((0.90 + 0.875 + 2.15 / 3) / 3));
  // after task 2: BWT = 0.95 - 0.90 = 0.05, F = 0.90 - 0.95 = -0.05, ACC = 0.875
  CHECK(backward_transfer(R, 1) == doctest::Approx(0.05));
  CHECK(forgetting(R, 1) == doctest::Approx(-0.05));
  CHECK(average_accuracy(R, 1) == doctest::Approx(0.875));
  // after task 1: only ACC is defined
  CHECK(average_accuracy(R, 0) == doctest::Approx(0.90));
  CHECK(std::isnan(backward_transfer(R, 0)));
  CHECK(std::isnan(forgetting(R, 0)));
  const ContinualSummary s = summarize(R);
  CHECK(s.tasks == 3);
  CHECK(s.avg_acc == doctest::Approx(2.15 / 3));
  CHECK(s.bwt == doctest::Approx(-0.25));
  CHECK(s.forgetting == doctest::Approx(0.275));

  // only the lower triangle measured (no evaluation of future tasks): the same numbers
  AccuracyMatrix L = make_accuracy_matrix(3);
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j <= i; ++j) L[(size_t)i][(size_t)j] = R[(size_t)i][(size_t)j];
  CHECK(std::isnan(L[0][1]));
  CHECK(average_accuracy(L) == doctest::Approx(2.15 / 3));
  CHECK(backward_transfer(L) == doctest::Approx(-0.25));
  CHECK(forgetting(L) == doctest::Approx(0.275));
  CHECK(average_incremental_accuracy(L) == doctest::Approx((0.90 + 0.875 + 2.15 / 3) / 3));

  // a needed entry not measured, or a matrix that is not square, is an error
  L[1][1] = NAN;
  CHECK(contains(error_of([&] { backward_transfer(L); }), "R[1][1] (task 2 tested after training task 2) was not measured"));
  CHECK(contains(error_of([] { average_accuracy({{1, 2}, {3}}); }), "not square"));
  CHECK(contains(error_of([&] { average_accuracy(R, 3); }), "task 3 outside 0..2"));
}

TEST_CASE("continual: accuracy matrix CSV, JSON and heatmap") {
  engram::testing::TempDir tmp;
  const std::string dir = tmp.file("run");
  AccuracyMatrix R = {{0.90, 0.10, 0.00}, {0.95, 0.80, 0.20}, {0.50, 0.70, 0.95}};
  const std::string csv = write_accuracy_csv(dir, R);
  CHECK(csv == dir + "/accuracy_matrix.csv");
  CHECK(read_text(csv) ==
        "trained,task_1,task_2,task_3\n1,0.9,0.1,0\n2,0.95,0.8,0.2\n3,0.5,0.7,0.95\n");
  const std::string js = read_text(write_accuracy_json(dir, R, "acc", {"\"method\": \"replay\""}));
  CHECK(contains(js, "\"tasks\": 3"));
  CHECK(contains(js, "\"R\": [[0.9, 0.1, 0],"));
  CHECK(contains(js, "\"bwt\": -0.25"));
  CHECK(contains(js, "\"forgetting\": 0.275"));
  CHECK(contains(js, "\"method\": \"replay\""));

  // a run stopped after task 2: NaN -> empty CSV field / JSON null, summary over 2 tasks
  AccuracyMatrix P = make_accuracy_matrix(3);
  P[0] = {0.9, NAN, NAN};
  P[1] = {0.6, 0.8, NAN};
  CHECK(contains(read_text(write_accuracy_csv(dir, P, "partial")), "2,0.6,0.8,\n3,,,\n"));
  const std::string pj = read_text(write_accuracy_json(dir, P, "partial"));
  CHECK(contains(pj, "\"tasks_trained\": 2"));
  CHECK(contains(pj, "[0.9, null, null]"));
  CHECK(contains(pj, "\"bwt\": -0.3"));

  const std::string note = write_accuracy_heatmap(dir, R, "accuracy_matrix", "it's R");
  CHECK(std::filesystem::exists(dir + "/accuracy_matrix_heatmap.dat"));
  if (on_path("gnuplot")) {
    INFO(note);
    CHECK(note == dir + "/accuracy_matrix.png");
    CHECK(std::filesystem::exists(note));
    CHECK(std::filesystem::file_size(note) > 1000);
    CHECK(std::filesystem::exists(write_accuracy_heatmap(dir, P, "partial")));  // NaN cells
    CHECK(read_text(dir + "/partial_heatmap.gp.log").empty());  // no gnuplot warnings
  } else {
    CHECK(contains(note, "gnuplot not installed"));
  }
}

TEST_CASE("continual: the standard split on Fashion-MNIST (when installed)") {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(dir)) {
    MESSAGE("skipped: " << dir << " not found (Debian package dataset-fashion-mnist)");
    return;
  }
  const ImageDataset train = load_mnist_split(dir, true), test = load_mnist_split(dir, false);
  const TaskSplit split = standard_split();
  const auto tr = task_indices(train.labels, split), te = task_indices(test.labels, split);
  REQUIRE(tr.size() == 5);
  for (size_t t = 0; t < 5; ++t) {
    INFO("task " << t + 1);
    CHECK(tr[t].size() == 12000);
    CHECK(te[t].size() == 2000);
  }
  const ImageDataset b = gather(test, {te[4][0], te[4][1]});
  CHECK(b.images.shape() == Shape{2, 28, 28});
  for (int64_t y : b.labels.to_vector<int64_t>()) CHECK(split.task_of(y) == 4);
}
