// apps/common/continual_data.h — the data side of the continual-learning harness for split image
// classes (Split-MNIST / Split-Fashion-MNIST): task splits, per-task index subsets, the two
// scenarios and their logit masks, and accuracy.
//
// Task splits. A split is an ordered list of tasks, each a list of class ids in 0..n_classes-1:
//     "notebook" (also "2x5")   0,1,2,3,4 | 5,6,7,8,9    the EpiNet notebook's 2 tasks
//     "standard" (also "5x2")   0,1 | 2,3 | 4,5 | 6,7 | 8,9  van de Ven & Tolias 2019, Mammoth seq-mnist
//     "4,5|0,1|..."             any class order; '|' separates tasks, ',' classes, "a-b" a range
// A split must have at least 2 tasks, no empty task, no class outside 0..n_classes-1 and no class
// in two tasks; each violation is an engram::Error of one line naming the config key and value.
//
// Scenarios (van de Ven, Tuytelaars & Tolias 2022):
//   task-IL   the task id is known: logits are masked to the current task's classes at train and
//             test time (an additive mask, 0 on the task's classes and -inf elsewhere, so softmax
//             and cross_entropy see only those classes and their gradient is 0 on the others);
//   class-IL  one head over all classes, no mask, no task id at test time.
// Replayed samples in task-IL take the mask of their own task: task_mask_for_labels gives one
// mask row per sample.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "apps/common/idx.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace engram::apps {

struct TaskSplit {
  std::vector<std::vector<int64_t>> tasks;  // tasks[t] = the classes of task t, in order

  int64_t num_tasks() const { return (int64_t)tasks.size(); }
  // The classes of tasks 0..t (all seen after training task t), in split order.
  std::vector<int64_t> classes_up_to(int64_t t) const;
  std::vector<int64_t> all_classes() const { return classes_up_to(num_tasks() - 1); }
  // The task holding class c, or -1.
  int64_t task_of(int64_t c) const;
  // Written back as a spec string: "0,1|2,3|4,5".
  std::string str() const;
};

// Validates `tasks` (see above) and returns it as a split; `key` and `value` name it in errors.
TaskSplit make_split(const std::vector<std::vector<int64_t>>& tasks, const std::string& key = "split",
                     int64_t n_classes = 10, const std::string& value = "");
// Parses "notebook" / "standard" / "0,1|2,3|..." (spaces allowed) and validates it.
TaskSplit parse_split(const std::string& spec, const std::string& key = "split",
                      int64_t n_classes = 10);
TaskSplit notebook_split();  // 0-4 | 5-9
TaskSplit standard_split();  // 0/1 | 2/3 | 4/5 | 6/7 | 8/9

// ---- Index subsets of a dataset (labels i64 [N]; indices are positions in the dataset) ----

// Positions whose label is in `classes`, in dataset order.
std::vector<int64_t> indices_of_classes(const Tensor& labels, const std::vector<int64_t>& classes);
// Class-balanced: at most `per_class` positions of each class in `classes` (per_class < 0: all).
// With `gen` the positions of a class are a random subset of it (returned in dataset order),
// without it the first ones in dataset order. Throws when a class has fewer than per_class and
// `exact` is set.
std::vector<int64_t> balanced_indices(const Tensor& labels, const std::vector<int64_t>& classes,
                                      int64_t per_class, Generator* gen = nullptr,
                                      bool exact = false);
// One index list per task of `split` (balanced_indices of each task's classes).
std::vector<std::vector<int64_t>> task_indices(const Tensor& labels, const TaskSplit& split,
                                               int64_t per_class = -1, Generator* gen = nullptr);
// How many of `indices` (all positions when empty) have each label 0..n_classes-1.
std::vector<int64_t> class_counts(const Tensor& labels, const std::vector<int64_t>& indices,
                                  int64_t n_classes = 10);
std::vector<int64_t> class_counts(const Tensor& labels, int64_t n_classes = 10);
// The samples at `indices`, copied: images [B, ...] and labels [B] (a training batch).
ImageDataset gather(const ImageDataset& data, const std::vector<int64_t>& indices);
// A shuffled copy of `indices` (Fisher-Yates with `gen`).
std::vector<int64_t> shuffled(std::vector<int64_t> indices, Generator& gen);

// ---- Scenarios, masks and accuracy ----

enum class Scenario { task_il, class_il };
// "task" / "task-il" / "task_il" and "class" / "class-il" / "class_il"; `key` names it in errors.
Scenario parse_scenario(const std::string& s, const std::string& key = "scenario");
const char* scenario_name(Scenario s);  // "task-il", "class-il"

// f32 [n_classes]: 0 on `classes`, -inf elsewhere (added to logits).
Tensor task_logit_mask(const std::vector<int64_t>& classes, int64_t n_classes);
// f32 [B, n_classes]: row b is task_logit_mask of the task that holds labels[b] (replay in task-IL).
Tensor task_mask_for_labels(const Tensor& labels, const TaskSplit& split, int64_t n_classes);
// The mask a scenario puts on task `task`'s logits: task-IL the task's mask, class-IL undefined.
Tensor scenario_mask(Scenario s, const TaskSplit& split, int64_t task, int64_t n_classes);
// logits [B, K] + mask ([K] broadcast, or [B, K]); recorded on the tape (the mask is a constant).
// An undefined mask returns logits unchanged.
Tensor apply_logit_mask(const Tensor& logits, const Tensor& mask);

// Fraction of rows whose argmax (of logits + *mask when mask is given and defined) equals the
// label; ties go to the lower class, as torch.argmax. logits [B, K] (f32 or f64), labels i64 [B],
// mask [K] or [B, K]. NaN for B = 0.
double accuracy(const Tensor& logits, const Tensor& labels, const Tensor* mask = nullptr);
// The number of correct rows (to accumulate over batches).
int64_t count_correct(const Tensor& logits, const Tensor& labels, const Tensor* mask = nullptr);

}  // namespace engram::apps
