// apps/common/continual_data.cpp — see continual_data.h: task splits, per-task index subsets,
// scenario masks and accuracy for the continual-learning harness.
#include "apps/common/continual_data.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>

#include "autograd/ops.h"
#include "core/error.h"

namespace engram::apps {

// ---- TaskSplit ----

std::vector<int64_t> TaskSplit::classes_up_to(int64_t t) const {
  std::vector<int64_t> out;
  for (int64_t i = 0; i <= t && i < num_tasks(); ++i)
    out.insert(out.end(), tasks[(size_t)i].begin(), tasks[(size_t)i].end());
  return out;
}

int64_t TaskSplit::task_of(int64_t c) const {
  for (size_t t = 0; t < tasks.size(); ++t)
    if (std::find(tasks[t].begin(), tasks[t].end(), c) != tasks[t].end()) return (int64_t)t;
  return -1;
}

std::string TaskSplit::str() const {
  std::vector<std::string> parts;
  for (const auto& t : tasks) parts.push_back(fmt::format("{}", fmt::join(t, ",")));
  return fmt::format("{}", fmt::join(parts, "|"));
}

TaskSplit make_split(const std::vector<std::vector<int64_t>>& tasks, const std::string& key,
                     int64_t n_classes, const std::string& value) {
  TaskSplit s{tasks};
  const std::string shown = value.empty() ? s.str() : value;
  ENGRAM_CHECK(tasks.size() >= 2, "{}: a split needs at least 2 tasks, got {} (\"{}\")", key,
               tasks.size(), shown);
  std::map<int64_t, size_t> owner;
  for (size_t t = 0; t < tasks.size(); ++t) {
    ENGRAM_CHECK(!tasks[t].empty(), "{}: task {} is empty (\"{}\")", key, t + 1, shown);
    for (int64_t c : tasks[t]) {
      ENGRAM_CHECK(c >= 0 && c < n_classes, "{}: class {} is outside 0..{} (\"{}\")", key, c,
                   n_classes - 1, shown);
      auto [it, fresh] = owner.emplace(c, t);
      if (!fresh && it->second == t)
        ENGRAM_FAIL("{}: class {} appears twice in task {} (\"{}\")", key, c, t + 1, shown);
      ENGRAM_CHECK(fresh, "{}: class {} is in task {} and task {} (\"{}\")", key, c,
                   it->second + 1, t + 1, shown);
    }
  }
  return s;
}

TaskSplit notebook_split() { return TaskSplit{{{0, 1, 2, 3, 4}, {5, 6, 7, 8, 9}}}; }
TaskSplit standard_split() { return TaskSplit{{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}}}; }

namespace {

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace((unsigned char)s[a])) ++a;
  while (b > a && std::isspace((unsigned char)s[b - 1])) --b;
  return s.substr(a, b - a);
}

std::vector<std::string> split_on(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) {
      out.push_back(trim(s.substr(start, i - start)));
      start = i + 1;
    }
  return out;
}

bool parse_int(const std::string& s, int64_t& v) {
  if (s.empty()) return false;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return false;
  for (size_t k = i; k < s.size(); ++k)
    if (!std::isdigit((unsigned char)s[k])) return false;
  if (s.size() > 12) return false;
  v = std::stoll(s);
  return true;
}

}  // namespace

TaskSplit parse_split(const std::string& spec, const std::string& key, int64_t n_classes) {
  const std::string s = trim(spec);
  if (s == "notebook" || s == "2x5") return make_split(notebook_split().tasks, key, n_classes, s);
  if (s == "standard" || s == "5x2") return make_split(standard_split().tasks, key, n_classes, s);
  ENGRAM_CHECK(!s.empty(), "{}: empty split (use \"notebook\", \"standard\" or e.g. \"0,1|2,3\")",
               key);
  std::vector<std::vector<int64_t>> tasks;
  for (const std::string& task : split_on(s, '|')) {
    std::vector<int64_t> classes;
    if (!task.empty())
      for (const std::string& item : split_on(task, ',')) {
        int64_t a = 0, b = 0;
        const size_t dash = item.find('-', 1);
        if (dash != std::string::npos && parse_int(trim(item.substr(0, dash)), a) &&
            parse_int(trim(item.substr(dash + 1)), b)) {
          ENGRAM_CHECK(a <= b, "{}: range \"{}\" is backwards (\"{}\")", key, item, s);
          for (int64_t c = a; c <= b; ++c) classes.push_back(c);
        } else {
          ENGRAM_CHECK(parse_int(item, a),
                       "{}: \"{}\" is not a class id (\"{}\"; use \"notebook\", \"standard\" or "
                       "e.g. \"0,1|2,3\")",
                       key, item, s);
          classes.push_back(a);
        }
      }
    tasks.push_back(std::move(classes));
  }
  return make_split(tasks, key, n_classes, s);
}

// ---- Index subsets ----

namespace {

std::vector<int64_t> label_vector(const Tensor& labels) {
  ENGRAM_CHECK(labels.dtype() == DType::i64 && labels.dim() == 1,
               "continual: labels must be i64 [N], got {} {}", dtype_name(labels.dtype()),
               shape_str(labels.shape()));
  return labels.to_vector<int64_t>();
}

}  // namespace

std::vector<int64_t> indices_of_classes(const Tensor& labels, const std::vector<int64_t>& classes) {
  const std::vector<int64_t> y = label_vector(labels);
  std::vector<int64_t> out;
  for (size_t i = 0; i < y.size(); ++i)
    if (std::find(classes.begin(), classes.end(), y[i]) != classes.end()) out.push_back((int64_t)i);
  return out;
}

std::vector<int64_t> shuffled(std::vector<int64_t> v, Generator& gen) {
  for (int64_t i = (int64_t)v.size() - 1; i > 0; --i) std::swap(v[(size_t)i], v[(size_t)gen.randint(0, i + 1)]);
  return v;
}

std::vector<int64_t> balanced_indices(const Tensor& labels, const std::vector<int64_t>& classes,
                                      int64_t per_class, Generator* gen, bool exact) {
  const std::vector<int64_t> y = label_vector(labels);
  std::vector<int64_t> out;
  for (int64_t c : classes) {
    std::vector<int64_t> mine;
    for (size_t i = 0; i < y.size(); ++i)
      if (y[i] == c) mine.push_back((int64_t)i);
    if (per_class >= 0) {
      ENGRAM_CHECK(!exact || (int64_t)mine.size() >= per_class,
                   "continual: class {} has {} samples, fewer than the {} asked for", c,
                   mine.size(), per_class);
      if ((int64_t)mine.size() > per_class) {
        if (gen) mine = shuffled(std::move(mine), *gen);
        mine.resize((size_t)per_class);
      }
    }
    out.insert(out.end(), mine.begin(), mine.end());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::vector<int64_t>> task_indices(const Tensor& labels, const TaskSplit& split,
                                               int64_t per_class, Generator* gen) {
  std::vector<std::vector<int64_t>> out;
  for (const auto& t : split.tasks) out.push_back(balanced_indices(labels, t, per_class, gen));
  return out;
}

std::vector<int64_t> class_counts(const Tensor& labels, const std::vector<int64_t>& indices,
                                  int64_t n_classes) {
  const std::vector<int64_t> y = label_vector(labels);
  std::vector<int64_t> counts((size_t)n_classes, 0);
  auto count = [&](int64_t i) {
    ENGRAM_CHECK(i >= 0 && i < (int64_t)y.size(), "continual: index {} outside 0..{}", i,
                 (int64_t)y.size() - 1);
    if (y[(size_t)i] >= 0 && y[(size_t)i] < n_classes) ++counts[(size_t)y[(size_t)i]];
  };
  if (indices.empty())
    for (size_t i = 0; i < y.size(); ++i) count((int64_t)i);
  else
    for (int64_t i : indices) count(i);
  return counts;
}

std::vector<int64_t> class_counts(const Tensor& labels, int64_t n_classes) {
  return class_counts(labels, {}, n_classes);
}

ImageDataset gather(const ImageDataset& data, const std::vector<int64_t>& indices) {
  const int64_t n = data.size();
  ENGRAM_CHECK(data.images.dtype() == DType::f32 && data.images.dim() >= 1 &&
                   data.images.size(0) == n,
               "gather: images must be f32 [N, ...] with N = {} labels, got {} {}", n,
               dtype_name(data.images.dtype()), shape_str(data.images.shape()));
  const Tensor x = raw::contiguous(data.images);
  const Tensor y = raw::contiguous(data.labels);
  const int64_t row = n ? x.numel() / n : 0;
  Shape shape = x.shape();
  shape[0] = (int64_t)indices.size();
  ImageDataset out{empty(shape, DType::f32), empty({(int64_t)indices.size()}, DType::i64)};
  const float* src = x.data<float>();
  const int64_t* lab = y.data<int64_t>();
  float* dst = out.images.data<float>();
  int64_t* dlab = out.labels.data<int64_t>();
  for (size_t b = 0; b < indices.size(); ++b) {
    const int64_t i = indices[b];
    ENGRAM_CHECK(i >= 0 && i < n, "gather: index {} outside 0..{}", i, n - 1);
    std::memcpy(dst + (int64_t)b * row, src + i * row, (size_t)row * sizeof(float));
    dlab[b] = lab[i];
  }
  return out;
}

// ---- Scenarios, masks, accuracy ----

Scenario parse_scenario(const std::string& s, const std::string& key) {
  if (s == "task" || s == "task-il" || s == "task_il") return Scenario::task_il;
  if (s == "class" || s == "class-il" || s == "class_il") return Scenario::class_il;
  ENGRAM_FAIL("{}: unknown scenario \"{}\" (choices: task-il, class-il)", key, s);
}

const char* scenario_name(Scenario s) { return s == Scenario::task_il ? "task-il" : "class-il"; }

Tensor task_logit_mask(const std::vector<int64_t>& classes, int64_t n_classes) {
  ENGRAM_CHECK(n_classes > 0, "task_logit_mask: n_classes must be positive, got {}", n_classes);
  std::vector<float> m((size_t)n_classes, -std::numeric_limits<float>::infinity());
  for (int64_t c : classes) {
    ENGRAM_CHECK(c >= 0 && c < n_classes, "task_logit_mask: class {} outside 0..{}", c,
                 n_classes - 1);
    m[(size_t)c] = 0.0f;
  }
  ENGRAM_CHECK(!classes.empty(), "task_logit_mask: no classes");
  return from_vector(m, {n_classes});
}

Tensor task_mask_for_labels(const Tensor& labels, const TaskSplit& split, int64_t n_classes) {
  const std::vector<int64_t> y = label_vector(labels);
  const int64_t B = (int64_t)y.size();
  std::vector<float> m((size_t)(B * n_classes), -std::numeric_limits<float>::infinity());
  for (int64_t b = 0; b < B; ++b) {
    const int64_t t = split.task_of(y[(size_t)b]);
    ENGRAM_CHECK(t >= 0, "task_mask_for_labels: label {} is in no task of split \"{}\"",
                 y[(size_t)b], split.str());
    for (int64_t c : split.tasks[(size_t)t]) m[(size_t)(b * n_classes + c)] = 0.0f;
  }
  return from_vector(m, {B, n_classes});
}

Tensor scenario_mask(Scenario s, const TaskSplit& split, int64_t task, int64_t n_classes) {
  if (s == Scenario::class_il) return Tensor();
  ENGRAM_CHECK(task >= 0 && task < split.num_tasks(), "scenario_mask: task {} outside 0..{}",
               task, split.num_tasks() - 1);
  return task_logit_mask(split.tasks[(size_t)task], n_classes);
}

Tensor apply_logit_mask(const Tensor& logits, const Tensor& mask) {
  if (!mask.defined()) return logits;
  ENGRAM_CHECK(logits.dim() == 2 && mask.size(-1) == logits.size(1) &&
                   (mask.dim() == 1 || (mask.dim() == 2 && mask.size(0) == logits.size(0))),
               "apply_logit_mask: mask {} does not fit logits {}", shape_str(mask.shape()),
               shape_str(logits.shape()));
  return add(logits, mask.dtype() == logits.dtype() ? mask : raw::to_dtype(mask, logits.dtype()));
}

int64_t count_correct(const Tensor& logits, const Tensor& labels, const Tensor* mask) {
  ENGRAM_CHECK(logits.dim() == 2, "accuracy: logits must be [B, K], got {}",
               shape_str(logits.shape()));
  const int64_t B = logits.size(0), K = logits.size(1);
  const std::vector<int64_t> y = label_vector(labels);
  ENGRAM_CHECK((int64_t)y.size() == B, "accuracy: {} labels for logits {}", y.size(),
               shape_str(logits.shape()));
  const std::vector<double> z = logits.to_vector<double>();
  std::vector<double> m;
  bool per_row = false;
  if (mask && mask->defined()) {
    ENGRAM_CHECK(mask->size(-1) == K && (mask->dim() == 1 || (mask->dim() == 2 && mask->size(0) == B)),
                 "accuracy: mask {} does not fit logits {}", shape_str(mask->shape()),
                 shape_str(logits.shape()));
    m = mask->to_vector<double>();
    per_row = mask->dim() == 2;
  }
  int64_t correct = 0;
  for (int64_t b = 0; b < B; ++b) {
    int64_t best = -1;
    double best_v = -std::numeric_limits<double>::infinity();
    for (int64_t k = 0; k < K; ++k) {
      double v = z[(size_t)(b * K + k)];
      if (!m.empty()) v += m[(size_t)(per_row ? b * K + k : k)];
      if (best < 0 ? !std::isnan(v) && v > -std::numeric_limits<double>::infinity() : v > best_v) {
        best = k;
        best_v = v;
      }
    }
    if (best == y[(size_t)b]) ++correct;
  }
  return correct;
}

double accuracy(const Tensor& logits, const Tensor& labels, const Tensor* mask) {
  const int64_t correct = count_correct(logits, labels, mask);
  const int64_t B = logits.size(0);
  return B ? (double)correct / (double)B : NAN;
}

}  // namespace engram::apps
