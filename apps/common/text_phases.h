// apps/common/text_phases.h — continual language modelling over a sequence of text topics: one
// byte-level LM (any apps::LanguageModel) trained on one topic per phase, evaluated on every
// topic after every phase (issue 11, experiment 2: Debian's fortunes, one topic file per phase).
//
// Data. Topic j is the fortune file <phases.dir>/<topic j> (read_corpus: the '%' separator lines
// are dropped), cut to its first phases.max_bytes bytes (0 = all), split into train/val/test by
// split_text (data.val_fraction, data.test_fraction, data.block_size: blocks of every part of the
// file) and tokenized by the byte tokenizer (vocab 256, one token = one byte). The train split
// must pass check_split with data.max_pad_share; a val split only needs to be non-empty and long
// enough for B streams (its padded targets are skipped by the loss, so padding costs only time).
//
// Protocol. The model is built once from model.* (make_language_model(cfg, 256, &gen)). Then
//   before:   (phases.eval_before) B[j] = val loss on topic j of the untrained model
//   phase i = 0..T-1, on topic i:
//     state = lm.initial_state(B)                       fresh streams at the phase start
//     phases.steps steps, each on the next batch of topic i's train stream (StreamBatcher,
//       wrapping around with a fresh state at an epoch end), as the LM trainer does:
//         lr     = schedule(s), s = global step over all phases (phases.schedule)
//         loss   = cross_entropy(lm.forward(inputs, state), targets) [+ lm.auxiliary_loss()]
//         backward; clip_grad_norm(train.grad_clip); Adam/AdamW step (loss scaler if on)
//         lm.detach_state(state)                        truncated BPTT
//     L[i][j] = val loss on topic j, every j (first phases.eval_batches batches, 0 = all; state
//               fresh per topic and carried across its batches; apps::evaluate)
// ONE optimizer (moments, step count) and ONE learning-rate schedule run across all phases: a
// continual learner is not told where a phase ends, so it gets no fresh optimizer at a boundary.
// Only the carried state is reset there (the stream it described has ended).
// Losses are nats per byte; bits per byte (bpc) = loss / ln 2.
//
// Metrics of the loss matrix L (T x T, lower is better), after the last trained phase k (T-1 at
// the end). They are the accuracy-matrix metrics of continual_metrics.h applied to R = -L, so
// every metric keeps its published sign convention:
//   avg_loss          (1/(k+1)) sum_{j<=k} L[k][j]                 mean loss on the topics seen
//   avg_learned_loss  (1/(k+1)) sum_{j<=k} L[j][j]                 right after learning each
//   drop[j]           L[k][j] - L[j][j]                            > 0: the loss rose since
//   bwt               (1/k) sum_{j<k} (L[j][j] - L[k][j]) = -mean drop      < 0: forgetting
//   forgetting[j]     L[k][j] - min_{l<k} L[l][j]                  >= 0 when j < k: the rise
//                     above the best loss topic j ever had (Chaudhry et al. 2018; like agem's
//                     compute_fgt the min also sees rows l < j, before topic j was trained)
//   forgetting        (1/k) sum_{j<k} forgetting[j]                      > 0: forgetting
//   fwt               (1/k) sum_{1<=j<=k} (B[j] - L[j-1][j])        > 0: earlier phases lowered
//                     the loss on topic j before it was trained (GEM's FWT, needs `before`)
// bwt, forgetting and fwt are NaN with a single trained phase; fwt also without `before`.
//
// Checkpoints. After each phase (its training and its evaluations), when phases.checkpoint is on,
// <out>/checkpoints/phase_<i+1>.safetensors holds the parameters, buffers, the optimizer, the loss
// scaler, the RNG (nn/checkpoint.h) and in its metadata the config (YAML), the phase, the matrix
// rows so far, the phases' train losses and every topic's train size. Resuming from it runs phases
// i+1.. and gives, bit for bit, the matrix rows of the run that never stopped. Only run.* and
// train.anomaly may differ from the checkpoint's config.
//
// Run directory <out> (run.out unless given): config.yaml, loss_matrix.csv (a "before" row, then
// one row per phase: trained,<topic>,...), text_phases.json (topics, matrix, bpc matrix, the
// metrics, per-phase train loss and seconds, parameters, seed, config), forgetting_curves.csv and
// forgetting_curves.png (gnuplot, when installed: val loss of each topic vs phases trained).
// The CSV and JSON are rewritten after every phase, so a stopped run leaves its rows.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "apps/common/config.h"

namespace engram::apps {

// The phases.* settings: topics, dir, steps, eval_batches, max_bytes, eval_before, schedule,
// checkpoint.
std::vector<FieldSpec> text_phase_fields();
// model.* + the train.*, data.* and run.* settings the phases use + phases.*: a whole config.
std::shared_ptr<const Schema> text_phase_schema(const std::string& app);

struct TextPhaseConfig {
  std::vector<std::string> topics;  // in phase order
  std::string dir;
  int64_t steps = 0, eval_batches = 0, max_bytes = 0;
  bool eval_before = true, checkpoint = true;
  std::string schedule;  // "constant" or "cosine"
};
// Reads phases.* and checks them: at least one topic, no empty or repeated name, no '/' in a
// name, every topic an existing file of phases.dir. Each error names the key and its value.
TextPhaseConfig text_phase_config(const Config& cfg);

using LossMatrix = std::vector<std::vector<double>>;  // L[i][j]: topic j after phase i

struct TextPhaseMetrics {
  int64_t phases = 0;  // k + 1
  double avg_loss = NAN, avg_learned_loss = NAN, bwt = NAN, forgetting = NAN, fwt = NAN;
  std::vector<double> drop, forgetting_per_topic;  // per topic j < k (the header's definitions)
};
// The metrics after phase k (-1 = the last row) of a square L; `before` may be empty.
TextPhaseMetrics text_phase_metrics(const LossMatrix& L, const std::vector<double>& before,
                                    int64_t k = -1);

struct TextPhaseResult {
  std::vector<std::string> topics;
  std::vector<double> before;     // B[j] (empty with phases.eval_before off)
  LossMatrix loss;                // T x T, NaN where a phase has not run
  TextPhaseMetrics metrics;       // after the last phase run
  std::vector<double> train_loss;     // per phase: mean of its last (up to) 20 step losses
  std::vector<double> phase_seconds;  // per phase: training seconds (resumed: from the ckpt)
  std::vector<int64_t> topic_bytes;   // per topic: train split bytes
  int64_t parameters = 0, steps_per_phase = 0, first_phase = 0;  // first phase this session ran
  std::string run_dir, plot;  // plot: the PNG path or why there is none
};

// Trains and evaluates (the header's protocol), writing into out_dir ("" = run.out); `resume` is a
// checkpoint written by an earlier run ("" = start afresh). One progress line per phase on log.
TextPhaseResult run_text_phases(const Config& cfg, const std::string& out_dir = "",
                                const std::string& resume = "", std::FILE* log = stdout);

// "final: 5 phases | loss 1.9512 (bpc 2.815) | forgetting 0.1234 | bwt -0.1000 | ..." for the
// caller to print last.
std::string text_phase_final_line(const TextPhaseResult& r);

}  // namespace engram::apps
