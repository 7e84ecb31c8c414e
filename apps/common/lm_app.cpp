// apps/common/lm_app.cpp — see lm_app.h.
#include "apps/common/lm_app.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>

#include "apps/common/trainer.h"
#include "nn/distributed.h"

namespace engram::apps {

namespace {

struct Args {
  std::string config, data, out, resume, model;
  int64_t steps = 0, seed = 0;
  bool has_steps = false, has_seed = false;
  std::vector<std::string> sets;
  bool trace = false, help_config = false, distributed = false;
};

// Errors are one readable line: a multi-line message (nn's checkpoint loader lists problems on
// separate lines) is folded, and a very long one (a damaged file with hundreds of bad entries)
// is cut after its first problems.
void print_error(const std::string& what) {
  constexpr size_t kMaxChars = 600;
  std::string line;
  for (char c : what) {
    if (c == '\n') {
      while (!line.empty() && line.back() == ' ') line.pop_back();
      line += line.ends_with(':') ? " " : "; ";
    } else if (!(c == ' ' && (line.ends_with("; ") || line.ends_with(": ")))) {
      line += c;
    }
  }
  if (line.size() > kMaxChars)
    line = fmt::format("{} ... [{} more characters]", line.substr(0, kMaxChars), line.size() - kMaxChars);
  std::fprintf(stderr, "error: %s\n", line.c_str());
}

Config build_config(const LMAppInfo& info, const Args& a) {
  std::shared_ptr<const Schema> schema = lm_schema(info.name);
  ENGRAM_CHECK(a.resume.empty() || a.config.empty(), "--config and --resume do not go together: a "
               "resumed run keeps its checkpoint's config (change e.g. train.steps with --set)");
  Config cfg = a.resume.empty() ? Config(schema) : checkpoint_config(a.resume, schema);
  if (!a.config.empty()) cfg.merge_yaml_file(a.config);
  else if (a.resume.empty() && !info.default_config.empty() &&
           std::filesystem::exists(info.default_config))
    cfg.merge_yaml_file(info.default_config);
  if (!a.data.empty()) cfg.set("data.path", a.data, "--data");
  if (a.has_steps) cfg.set("train.steps", std::to_string(a.steps), "--steps");
  if (!a.out.empty()) cfg.set("run.out", a.out, "--out");
  if (a.has_seed) cfg.set("train.seed", std::to_string(a.seed), "--seed");
  if (!a.model.empty()) cfg.set("model.kind", a.model, "--model");
  for (const std::string& s : a.sets) cfg.apply_override(s);
  return cfg;
}

}  // namespace

int run_lm_app(const LMAppInfo& info, int argc, const char* const* argv) {
  Args a;
  CLI::App app{info.description, info.name};
  app.add_option("--config", a.config, "YAML config file (--help-config lists its keys)");
  app.add_option("--data", a.data, "text: a file, directory or glob (sets data.path)");
  app.add_option("--steps", a.steps, "optimizer steps (sets train.steps)");
  app.add_option("--out", a.out, "run directory (sets run.out)");
  app.add_option("--resume", a.resume, "continue exactly from a checkpoint");
  app.add_option("--seed", a.seed, "seed of initialisation and dropout (sets train.seed)");
  app.add_option("--model", a.model, "crsd, lstm, transformer, a memory LM or a state-space family: s4d, s4, s5, mamba, linoss, retnet, samba (sets model.kind)");
  app.add_option("--set", a.sets, "override one key, e.g. --set model.d_model=256 (repeatable)");
  app.add_flag("--distributed", a.distributed, "data-parallel training over the ranks of mpirun -np "
               "N (train.batch is the global batch; see nn/distributed.h)");
  app.add_flag("--trace", a.trace, "print one step in detail: batch, stage statistics, modules");
  app.add_flag("--help-config", a.help_config, "print every config key with its type, default, "
               "range and meaning");
  try {
    app.parse(argc, argv);
    a.has_steps = app.count("--steps") > 0;
    a.has_seed = app.count("--seed") > 0;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {  // --help
      std::fputs(app.help().c_str(), stdout);
      return 0;
    }
    print_error(e.what());
    return 2;
  }
  try {
    if (a.help_config) {
      std::fputs(lm_schema(info.name)->help().c_str(), stdout);
      return 0;
    }
    if (a.distributed) nn::dist::init();
    Config cfg = build_config(info, a);
    TrainResult r = train_language_model(cfg, {a.resume, a.trace, stdout});
    if (!nn::dist::is_lead()) return 0;
    std::printf("final: step=%lld train_loss=%.4f val_loss=%.4f val_bpc=%.4f val_ppl=%.3f "
                "val_acc=%.4f tokens_per_s=%.0f\n",
                (long long)r.step, r.train_loss, r.val.loss, r.val.bpc, r.val.ppl, r.val.acc,
                r.tokens_per_s);
    if (!r.sample.empty())
      std::printf("sample (temperature %g, seed %lld):\n%s\n", cfg.get_real("sample.temperature"),
                  (long long)cfg.get_int("sample.seed"), r.sample.c_str());
    std::fflush(stdout);
    return 0;
  } catch (const std::exception& e) {  // engram::Error, and anything a library below may throw
    std::fflush(stdout);
    print_error(nn::dist::size() > 1 ? fmt::format("rank {} of {}: {}", nn::dist::rank(),
                                                   nn::dist::size(), e.what()) : e.what());
    if (nn::dist::size() > 1) nn::dist::abort_all(2);  // the other ranks would wait forever
    return 2;
  }
}

}  // namespace engram::apps
