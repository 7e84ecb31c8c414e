// apps/common/epinet_train.cpp — see epinet_train.h; the methods and scenarios are described in
// apps/epinet_split/README.md.
//
// Data parallel (--distributed, nn/distributed.h): every rank keeps the whole run's bookkeeping —
// the batch order, the replay buffer, the generator and the episodic memory — identical, and runs
// forward and backward on its own rows of each batch (and of each replay batch), its loss its
// share of the batch mean; the gradients are summed across ranks. The latents and per-sample
// losses of every rank's rows are gathered before memorize(), so every rank writes the whole
// batch into its memory exactly as one process would. Testing is split across ranks and reduced;
// rank 0 prints and writes the run directory.
#include "apps/common/epinet_train.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "apps/common/continual.h"
#include "apps/common/curve_plot.h"
#include "apps/common/idx.h"
#include "autograd/ops.h"
#include "memory/epinet/model.h"
#include "nn/checkpoint.h"
#include "nn/distributed.h"
#include "nn/optim.h"

namespace engram::apps {

namespace fs = std::filesystem;

namespace {


std::shared_ptr<const Schema> make_schema() {
  std::vector<FieldSpec> f = {
      string_field("data.path", "/usr/share/datasets/fashion-mnist", "folder of the IDX files"),
      string_field("data.split", "standard", "standard (0/1|2/3|...), notebook (0-4|5-9), or '0,1|2,3|...'"),
      int_field("data.train_per_class", 500, 0, 1000000, "training images per class (0 = all)"),
      int_field("data.test_per_class", 200, 0, 1000000, "test images per class (0 = all)"),
      choice_field("run.method", "epinet", {"finetune", "replay", "epinet-recall", "epinet", "joint"},
                   "what to train"),
      choice_field("run.scenario", "class-il", {"class-il", "task-il"}, "continual-learning scenario"),
      int_field("run.seed", 1, 0, int64_t(1) << 53, "seed of initialisation, batches and memory"),
      string_field("run.out", "runs/epinet_split", "run directory"),
      bool_field("run.plots", true, "draw PNGs with gnuplot when installed"),
      int_field("train.epochs", 3, 1, 1000, "epochs per task"),
      int_field("train.batch", 64, 1, 100000, "current-task batch size"),
      real_field("train.lr", 1e-3, 1e-8, 10, "Adam learning rate"),
      int_field("model.d", 128, 1, 4096, "latent size"),
      int_field("model.experts", 4, 1, 64, "decoder experts"),
      int_field("model.expert_hidden", 128, 1, 4096, "hidden units per expert"),
      int_field("memory.capacity", 1000, 1, 1000000, "traces in the episodic memory / replay buffer"),
      real_field("memory.alpha", 0.001, 0, 10, "salience decay per training step"),
      int_field("memory.top_k", 8, 1, 1000000, "traces recalled per query"),
      choice_field("memory.recall", "hard", {"hard", "soft"}, "recall weights: salience, or softmax"),
      real_field("memory.temperature", 0.1, 1e-6, 100, "soft recall temperature"),
      choice_field("memory.salience", "loss", {"loss", "constant", "novelty"}, "salience of a new trace"),
      real_field("replay.beta", 0.5, 0, 100, "weight of the replay loss"),
      int_field("replay.batch", 64, 1, 100000, "replay batch size"),
      choice_field("replay.buffer", "reservoir", {"reservoir", "class_balanced"}, "the replay baseline's buffer"),
  };
  return std::make_shared<const Schema>("epinet_split", std::move(f));
}

epinet::EpiNetConfig model_config(const Config& cfg, const std::string& method) {
  epinet::EpiNetConfig m;
  m.d = cfg.get_int("model.d"), m.experts = cfg.get_int("model.experts");
  m.expert_hidden = cfg.get_int("model.expert_hidden"), m.capacity = cfg.get_int("memory.capacity");
  m.alpha = cfg.get_real("memory.alpha");
  m.recall.top_k = cfg.get_int("memory.top_k");
  m.recall.mode = cfg.get_string("memory.recall") == "soft" ? epinet::RecallMode::soft : epinet::RecallMode::hard;
  m.recall.temperature = cfg.get_real("memory.temperature");
  const std::string s = cfg.get_string("memory.salience");
  m.salience = s == "loss" ? epinet::SalienceKind::loss
                           : s == "constant" ? epinet::SalienceKind::constant : epinet::SalienceKind::novelty;
  m.use_recall = method == "epinet" || method == "epinet-recall";
  ENGRAM_CHECK(m.recall.top_k <= m.capacity, "memory.top_k = {} exceeds memory.capacity = {}",
               m.recall.top_k, m.capacity);
  m.validate();
  return m;
}

Tensor images_of(const ImageDataset& batch) {
  return raw::reshape(batch.images, {batch.size(), 1, 28, 28});
}

// Test accuracy on one task's test images, with the scenario's mask for that task.
double evaluate(epinet::EpiNetModel& model, const ImageDataset& test, const std::vector<int64_t>& idx,
                const Tensor& mask) {
  NoGradGuard ng;
  const nn::dist::Shard mine = nn::dist::rows_of(int64_t(idx.size()));  // all of it without ranks
  double correct = 0;
  for (int64_t b = mine.begin; b < mine.begin + mine.count; b += 500) {
    std::vector<int64_t> part(idx.begin() + b, idx.begin() + std::min(mine.begin + mine.count, b + 500));
    ImageDataset batch = gather(test, part);
    Tensor logits = model.forward(images_of(batch)).logits;
    correct += double(count_correct(logits, batch.labels, mask.defined() ? &mask : nullptr));
  }
  return nn::dist::allreduce_sum(correct, "epinet_split: test accuracy") / double(idx.size());
}

// The IDX files decoded once per process (a resumed run in the same process, as in the tests,
// does not decode 60,000 images again). The tensors are never written.
const ImageDataset& cached_split(const std::string& dir, bool train) {
  static std::map<std::pair<std::string, bool>, ImageDataset> cache;
  auto key = std::make_pair(dir, train);
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, load_mnist_split(dir, train)).first;
  return it->second;
}

// The run's position and results so far, as checkpoint metadata.
nn::Metadata progress_metadata(const Config& cfg, int64_t next_task, int64_t step,
                               const std::vector<double>& losses, const AccuracyMatrix& R,
                               const ReplayBuffer* buffer,
                               const std::vector<std::vector<int64_t>>& occupancy) {
  nlohmann::json r = nlohmann::json::array();
  for (const auto& row : R) {
    nlohmann::json jr = nlohmann::json::array();
    for (double v : row) jr.push_back(std::isfinite(v) ? nlohmann::json(v) : nlohmann::json());
    r.push_back(jr);
  }
  nn::Metadata m = {{"app", "epinet_split"}, {"config", cfg.to_yaml()},
                    {"next_task", std::to_string(next_task)}, {"step", std::to_string(step)},
                    {"losses", nlohmann::json(losses).dump()}, {"R", r.dump()},
                    {"occupancy", nlohmann::json(occupancy).dump()}};
  if (buffer) m["replay_buffer"] = nlohmann::json(buffer->state()).dump();
  return m;
}

}  // namespace

std::shared_ptr<const Schema> epinet_split_schema() { return make_schema(); }

namespace {
// Rows [s.begin, s.begin + s.count) of a batch.
ImageDataset rows(const ImageDataset& batch, nn::dist::Shard s) {
  ImageDataset r;
  r.images = contiguous(raw::narrow(batch.images, 0, s.begin, s.count));
  r.labels = contiguous(raw::narrow(batch.labels, 0, s.begin, s.count));
  return r;
}
}  // namespace

EpinetRun train_epinet_split(const Config& cfg, const std::string& resume, std::FILE* out) {
  auto t0 = std::chrono::steady_clock::now();
  const bool lead = nn::dist::is_lead();  // rank 0 of a distributed run (or the only one) talks
  out = nn::dist::lead_output(out);
  const std::string method = cfg.get_string("run.method"), dir = cfg.get_string("run.out");
  const Scenario scenario = parse_scenario(cfg.get_string("run.scenario"), "run.scenario");
  const TaskSplit split = parse_split(cfg.get_string("data.split"), "data.split");
  epinet::EpiNetConfig mcfg = model_config(cfg, method);
  const std::string data_dir = cfg.get_string("data.path");
  ENGRAM_CHECK(fs::is_directory(data_dir), "data.path '{}' is not a folder: install Debian's "
               "dataset-fashion-mnist or pass --set data.path=DIR", data_dir);
  const ImageDataset& train = cached_split(data_dir, true);
  const ImageDataset& test = cached_split(data_dir, false);
  Generator gen((uint64_t)cfg.get_int("run.seed"));
  const int64_t tpc = cfg.get_int("data.train_per_class"), epc = cfg.get_int("data.test_per_class");
  std::vector<std::vector<int64_t>> train_idx = task_indices(train.labels, split, tpc > 0 ? tpc : -1, &gen);
  std::vector<std::vector<int64_t>> test_idx = task_indices(test.labels, split, epc > 0 ? epc : -1, &gen);
  const int64_t T = split.num_tasks(), K = 10, B = cfg.get_int("train.batch");
  const int64_t epochs = cfg.get_int("train.epochs"), RB = cfg.get_int("replay.batch");
  const double beta = cfg.get_real("replay.beta");

  epinet::EpiNetModel model(mcfg, &gen);
  nn::AdamOptions ao;
  ao.lr = cfg.get_real("train.lr");
  nn::Adam opt(model.parameters(), ao);
  std::unique_ptr<ReplayBuffer> buffer;
  if (method == "replay")
    buffer = make_replay_buffer(cfg.get_string("replay.buffer"), mcfg.capacity, "replay.buffer");
  nn::dist::check_same_as_lead(cfg.to_yaml(), "config");  // every rank trains the same run
  if (lead) {
    fs::create_directories(dir);
    std::ofstream(fs::path(dir) / "config.yaml") << cfg.to_yaml();
  }
  fmt::print(out, "epinet_split: {} on {} | split {} ({} tasks), {} | {} train / task, {} parameters, "
             "memory {} traces\n", method, data_dir, split.str(), T, scenario_name(scenario),
             train_idx[0].size(), model.num_parameters(), mcfg.capacity);

  // joint: one phase over every task's data, as many steps as the sequential runs take in all
  std::vector<std::vector<int64_t>> phases = train_idx;
  if (method == "joint") {
    std::vector<int64_t> all;
    for (auto& t : train_idx) all.insert(all.end(), t.begin(), t.end());
    phases = {all};
  }
  AccuracyMatrix R = make_accuracy_matrix(T);
  std::vector<double> losses;
  std::vector<std::vector<int64_t>> occupancy;  // stored traces per class after each task
  int64_t step = 0;
  size_t first_phase = 0;
  if (!resume.empty()) {
    nn::LoadReport rep = nn::load_checkpoint(resume, model, {&opt, nullptr, &gen});
    const nn::Metadata& m = rep.metadata;
    auto meta = [&](const std::string& k) {
      auto it = m.find(k);
      ENGRAM_CHECK(it != m.end(), "--resume '{}': not an epinet_split checkpoint (no '{}')", resume, k);
      return it->second;
    };
    ENGRAM_CHECK(meta("app") == "epinet_split", "--resume '{}': written by '{}', not epinet_split",
                 resume, meta("app"));
    Config saved(cfg.schema_ptr());
    saved.merge_yaml(meta("config"), resume);
    std::vector<std::string> changed = saved.diff(cfg);
    ENGRAM_CHECK(changed.empty() || (changed.size() == 1 && changed[0] == "run.out"),
                 "--resume '{}': the config differs from the checkpoint's in '{}'", resume,
                 changed.empty() ? "" : changed[0] == "run.out" ? changed[1] : changed[0]);
    first_phase = std::stoul(meta("next_task"));
    step = std::stoll(meta("step"));
    losses = nlohmann::json::parse(meta("losses")).get<std::vector<double>>();
    occupancy = nlohmann::json::parse(meta("occupancy")).get<std::vector<std::vector<int64_t>>>();
    nlohmann::json r = nlohmann::json::parse(meta("R"));
    for (size_t i = 0; i < r.size() && i < R.size(); ++i)
      for (size_t j = 0; j < r[i].size() && j < R[i].size(); ++j)
        R[i][j] = r[i][j].is_null() ? NAN : r[i][j].get<double>();
    nn::SafetensorsFile mem = nn::load_safetensors(resume + ".memory");
    model.memory.load_state(mem.tensors, mem.metadata);
    if (buffer) buffer->load_state(nlohmann::json::parse(meta("replay_buffer")).get<std::vector<int64_t>>());
    fmt::print(out, "resumed from {} before task {} (step {})\n", resume, first_phase + 1, step);
  }
  std::unique_ptr<nn::dist::DataParallel> dp;  // rank 0's parameters on every rank
  if (nn::dist::size() > 1) dp = std::make_unique<nn::dist::DataParallel>(model);
  for (size_t phase = first_phase; phase < phases.size(); ++phase) {
    const int64_t task = method == "joint" ? T - 1 : (int64_t)phase;
    Tensor mask = method == "joint" ? Tensor() : scenario_mask(scenario, split, task, K);
    double phase_loss = 0;
    int64_t phase_steps = 0;
    for (int64_t e = 0; e < epochs; ++e) {
      std::vector<int64_t> order = shuffled(phases[phase], gen);
      for (size_t b = 0; b < order.size(); b += B) {
        std::vector<int64_t> part(order.begin() + b, order.begin() + std::min(order.size(), b + B));
        ImageDataset batch = gather(train, part);
        Tensor x = images_of(batch);
        // this rank's rows (all of them without ranks); its loss is its share of the batch mean
        const nn::dist::Shard mine = nn::dist::rows_of(int64_t(part.size()));
        ImageDataset my_batch = dp ? rows(batch, mine) : batch;
        Tensor z_mine, per_sample, loss;
        if (mine.count > 0) {
          epinet::EpiNetOutput fwd = model.forward(dp ? images_of(my_batch) : x);
          Tensor logits = method == "joint" && scenario == Scenario::task_il
                              ? apply_logit_mask(fwd.logits, task_mask_for_labels(my_batch.labels, split, K))
                              : apply_logit_mask(fwd.logits, mask);
          per_sample = cross_entropy(logits, my_batch.labels, -100, 0.0, Reduction::none);
          loss = dp ? mul(sum(per_sample), 1.0 / double(part.size())) : mean(per_sample);
          z_mine = fwd.z;
        }
        // replay: a batch from the buffer (replay) or from the episodic memory (epinet), each
        // sample masked to its own task under task-IL
        ImageDataset old;
        if (buffer && buffer->size() > 0) old = gather(train, buffer->sample(RB, gen));
        if (method == "epinet" && model.memory.size() > 0) {
          const int64_t n = std::min<int64_t>(RB, model.memory.size());
          std::vector<int64_t> pick = shuffled([&] {
            std::vector<int64_t> v(model.memory.size());
            for (size_t i = 0; i < v.size(); ++i) v[i] = (int64_t)i;
            return v;
          }(), gen);
          pick.resize(n);
          Tensor idx = from_vector(pick, {n});
          old.images = raw::reshape(index_select(model.memory.inputs(), 0, idx), {n, 28, 28});
          old.labels = index_select(model.memory.labels(), 0, idx);
        }
        if (old.images.defined()) {
          const int64_t n_old = old.labels.numel();
          const nn::dist::Shard mine_old = nn::dist::rows_of(n_old);
          if (mine_old.count > 0) {
            ImageDataset o = dp ? rows(old, mine_old) : old;
            Tensor ol = model.forward(images_of(o)).logits;
            if (scenario == Scenario::task_il) ol = apply_logit_mask(ol, task_mask_for_labels(o.labels, split, K));
            Tensor replay = dp ? mul(cross_entropy(ol, o.labels, -100, 0.0, Reduction::sum), 1.0 / double(n_old))
                               : cross_entropy(ol, o.labels);
            replay = mul(replay, beta);
            loss = loss.defined() ? add(loss, replay) : replay;
          }
        }
        opt.zero_grad();
        if (dp) dp->backward(loss);
        else backward(loss);
        opt.step();
        ++step;
        const double l = dp ? nn::dist::allreduce_sum(loss.defined() ? loss.item() : 0.0, "epinet_split: loss")
                            : loss.item();
        losses.push_back(l);
        phase_loss += l, ++phase_steps;
        if (buffer) buffer->add_batch(part, batch.labels.to_vector<int64_t>(), gen);
        if (method == "epinet" || method == "epinet-recall") {
          // every rank writes the whole batch: its rows' latents and losses gathered in row order
          Tensor z = z_mine, losses_per_sample = per_sample;
          if (dp) {
            if (!z.defined()) z = zeros({0, mcfg.d}), losses_per_sample = zeros({0});
            z = nn::dist::allgather_cat(z, 0, "epinet_split: latents to memorize");
            losses_per_sample = nn::dist::allgather_cat(losses_per_sample, 0, "epinet_split: per-sample losses");
          }
          model.memorize(x, z, batch.labels, model.salience_of(z, losses_per_sample));
        }
        model.memory.tick();
      }
    }
    // test on every task
    for (int64_t j = 0; j < T; ++j)
      R[task][j] = evaluate(model, test, test_idx[j], scenario_mask(scenario, split, j, K));
    std::string occ;
    occupancy.push_back(buffer ? buffer->occupancy(K) : model.memory.class_counts(K));
    if (method == "epinet" || method == "epinet-recall") {
      std::vector<int64_t> c = model.memory.class_counts(K);
      Tensor s = model.memory.saliences();
      occ = fmt::format(" | memory {} traces, per class [{}], mean salience {:.3g}, evictions {}",
                        model.memory.size(), fmt::join(c, " "), s.numel() ? mean(s).item() : 0.0,
                        model.memory.evictions());
    } else if (buffer) {
      occ = fmt::format(" | buffer per class [{}]", fmt::join(buffer->occupancy(K), " "));
    }
    fmt::print(out, "after task {} ({} steps, mean loss {:.4f}): acc per task [{}]{}\n", task + 1,
               phase_steps, phase_loss / double(std::max<int64_t>(phase_steps, 1)),
               fmt::join(R[task], " "), occ);
    std::fflush(out);
    // checkpoint: the memory first, then the main file (which names the phase to run next)
    const std::string ckpt = (fs::path(dir) / "checkpoints" / fmt::format("task_{}.safetensors", phase + 1)).string();
    if (lead) {  // the other ranks hold the same model, optimizer, generator and memory
      fs::create_directories(fs::path(dir) / "checkpoints");
      nn::save_safetensors(ckpt + ".memory", model.memory.state_tensors(), model.memory.state_metadata());
      nn::save_checkpoint(ckpt, model, {&opt, nullptr, &gen},
                          progress_metadata(cfg, (int64_t)phase + 1, step, losses, R, buffer.get(), occupancy));
    }
  }
  const int64_t last = T - 1;
  // joint trains once on everything: only its last row exists, so transfer and forgetting are
  // undefined (NaN) and the average accuracy is that row's mean
  ContinualSummary sum;
  if (method == "joint") {
    sum.tasks = T, sum.bwt = sum.forgetting = sum.avg_incremental_acc = NAN;
    for (double a : R[last]) sum.avg_acc += a / double(T);
  } else {
    sum = summarize(R, last);
  }
  std::vector<std::string> extra = {fmt::format("\"method\": \"{}\"", method),
                                    fmt::format("\"scenario\": \"{}\"", scenario_name(scenario)),
                                    fmt::format("\"seed\": {}", cfg.get_int("run.seed"))};
  if (lead) {
    write_accuracy_csv(dir, R);
    write_accuracy_json(dir, R, "accuracy_matrix", extra);
  }
  if (lead && cfg.get_bool("run.plots")) {
    fmt::print(out, "plot: {}\n", write_accuracy_heatmap(dir, R, "accuracy_matrix",
                                                    fmt::format("{} ({})", method, scenario_name(scenario))));
    CurvePlot p{"loss", fmt::format("training loss ({})", method), "step", "loss", {}, {{"loss", losses}}};
    for (size_t i = 0; i < losses.size(); ++i) p.x.push_back(double(i + 1));
    p.ymax = *std::max_element(losses.begin(), losses.end());
    fmt::print(out, "plot: {}\n", write_curve_plot(dir, p));
    // each task's test accuracy as the tasks go by (NaN before it was measured)
    CurvePlot acc{"task_accuracy", fmt::format("accuracy per task over training ({}, {})", method,
                                               scenario_name(scenario)),
                  "tasks trained", "test accuracy", {}, {}};
    for (int64_t i = 0; i < T; ++i) acc.x.push_back(double(i + 1));
    for (int64_t j = 0; j < T; ++j) {
      CurveSeries sj{fmt::format("task {}", j + 1), {}};
      for (int64_t i = 0; i < T; ++i) sj.y.push_back(R[i][j]);
      acc.series.push_back(sj);
    }
    fmt::print(out, "plot: {}\n", write_curve_plot(dir, acc));
    // what the memory (or replay buffer) holds, per class, after each task
    if (!occupancy.empty() && method != "finetune" && method != "joint") {
      CurvePlot occ{"occupancy", fmt::format("stored traces per class ({})", method), "tasks trained",
                    "traces", {}, {}};
      for (size_t i = 0; i < occupancy.size(); ++i) occ.x.push_back(double(i + 1));
      double most = 1;
      for (int64_t c = 0; c < K; ++c) {
        CurveSeries sc{fmt::format("class {}", c), {}};
        for (const auto& row : occupancy) sc.y.push_back(double(row[c])), most = std::max(most, double(row[c]));
        occ.series.push_back(sc);
      }
      occ.ymax = most * 1.1;
      fmt::print(out, "plot: {}\n", write_curve_plot(dir, occ));
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EpinetRun result{R, sum, losses, step, ""};
  result.final_line = fmt::format("final: method={} scenario={} tasks={} avg_acc={:.4f} bwt={:.4f} "
                                  "forgetting={:.4f} steps={} seconds={:.1f}", method,
                                  scenario_name(scenario), T, sum.avg_acc, sum.bwt, sum.forgetting,
                                  step, secs);
  fmt::print(out, "{}\n", result.final_line);
  return result;
}

}  // namespace engram::apps
