// apps/common/app_main.h — the shared ending of every app's main(): parse the command line, run,
// and turn any failure into one line `error: ...` on stderr and exit code 2 (--help exits 0).
#pragma once
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "apps/common/config.h"
#include "nn/distributed.h"

namespace engram::apps {

inline int parse_and_run(CLI::App& app, int argc, char** argv, const std::function<int()>& run) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  try {
    return run();
  } catch (const std::exception& e) {  // engram::Error, and filesystem errors
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}

// run() as one rank of a data-parallel job when `distributed` (--distributed under mpirun,
// nn/distributed.h): MPI starts first, and an error on this rank is printed with the rank's
// number and ends the whole job (the other ranks would otherwise wait in their next collective).
inline int run_maybe_distributed(bool distributed, const std::function<int()>& run) {
  if (distributed) nn::dist::init();
  try {
    return run();
  } catch (const std::exception& e) {
    if (nn::dist::size() <= 1) throw;
    std::fprintf(stderr, "error: rank %d of %d: %s\n", nn::dist::rank(), nn::dist::size(), e.what());
    nn::dist::abort_all(2);
  }
}

// The command line of a config-driven app: --config FILE, --set key=value (repeatable),
// --help-config, and shortcuts such as --seed S for one config key (run.seed). apply() layers
// them onto a config in that order: the file, then every --set, then the shortcuts given.
class ConfigOptions {
 public:
  explicit ConfigOptions(CLI::App& app) : app_(app) {
    app.add_option("--config", file_, "YAML config file");
    app.add_option("--set", sets_, "key=value override (repeatable)");
    app.add_flag("--help-config", help_, "print every config key and exit");
  }
  // --flag VALUE writes VALUE to `key`.
  void shortcut(const std::string& flag, const std::string& key, const std::string& doc) {
    app_.add_option(flag, values_[flag], doc + " (" + key + ")");
    keys_.emplace_back(flag, key);
  }
  // True (after printing the key table) when --help-config was given.
  bool help_printed(const Schema& schema) const {
    if (help_) std::fputs(schema.help().c_str(), stdout);
    return help_;
  }
  void apply(Config& cfg) const {
    if (!file_.empty()) cfg.merge_yaml_file(file_);
    for (const std::string& s : sets_) cfg.apply_override(s);
    for (const auto& [flag, key] : keys_)
      if (const std::string& v = values_.at(flag); !v.empty()) cfg.set(key, v, flag);
  }

 private:
  CLI::App& app_;
  std::string file_;
  std::vector<std::string> sets_;
  bool help_ = false;
  std::map<std::string, std::string> values_;
  std::vector<std::pair<std::string, std::string>> keys_;
};

}  // namespace engram::apps
