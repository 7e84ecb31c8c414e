// apps/common/app_main.h — the shared ending of every app's main(): parse the command line, run,
// and turn any failure into one line `error: ...` on stderr and exit code 2 (--help exits 0).
#pragma once
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <functional>

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

}  // namespace engram::apps
