// apps/bench/torch_server.h — the PyTorch side of the benchmark, as a child process on a pipe.
//
// The bench starts `python3 apps/bench/torch_ref.py --serve --threads T` once and talks to it one
// line at a time (the protocol is documented at the top of torch_ref.py):
//
//     bench -> torch                      torch -> bench
//     (start-up)                 ready torch=<version> threads=<n> hwm_reset=<yes|no> | error <why>
//     setup <workload> <file>    ok                                                 | error <why>
//     losses <n>                 losses <l1> ... <ln>                 (n training steps)
//     time <n>                   times <ms1> ... <msn> peak_bytes <b> (n training steps)
//     quit                       (exits)
//
// peak_bytes is the child's peak resident memory since 'setup' minus its resident memory just
// before 'setup' built the workload (VmHWM - VmRSS, the method in apps/bench/main.cpp). It rides
// on the 'time' reply, which the bench sends anyway after the timed steps, so measuring memory
// adds no round trip; hwm_reset=no says the child could not reset VmHWM (see torch_ref.py).
//
// Talking over a pipe lets the bench alternate blocks of engram steps and torch steps in one run,
// so both see the same machine state. The child gets the same thread settings as engram
// (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS, ENGRAM_NUM_THREADS, and
// torch.set_num_threads); its stderr is ours, so a Python traceback is seen as it is.
#pragma once
#include <csignal>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"

extern char** environ;

namespace engram::bench {

class TorchServer {
 public:
  // Starts the server; when that fails (no python, no torch) available() is false and
  // unavailable_reason() says why. Never throws for a missing PyTorch.
  TorchServer(const std::string& python, const std::string& script, int threads,
              const std::string& device = "cpu") {
    std::signal(SIGPIPE, SIG_IGN);  // a dead child must give a write error, not kill the bench
    int to_child[2], from_child[2];
    ENGRAM_CHECK(pipe(to_child) == 0 && pipe(from_child) == 0, "bench: pipe() failed: {}",
                 std::strerror(errno));
    // The child's environment is built here, before fork: after fork only exec is safe.
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) {
      std::string kv = *e;
      bool ours = false;
      for (const char* name : kThreadVariables) ours |= kv.rfind(std::string(name) + "=", 0) == 0;
      if (!ours) env_strings.push_back(kv);
    }
    for (const char* name : kThreadVariables) env_strings.push_back(fmt::format("{}={}", name, threads));
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string threads_arg = std::to_string(threads);
    std::vector<std::string> args = {python, script, "--serve", "--threads", threads_arg,
                                     "--device", device};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    pid_ = fork();
    ENGRAM_CHECK(pid_ >= 0, "bench: fork() failed: {}", std::strerror(errno));
    if (pid_ == 0) {
      dup2(to_child[0], STDIN_FILENO);
      dup2(from_child[1], STDOUT_FILENO);
      close(to_child[0]), close(to_child[1]), close(from_child[0]), close(from_child[1]);
      execvpe(argv[0], argv.data(), envp.data());
      _exit(127);  // exec failed: the parent reads EOF and reports it
    }
    close(to_child[0]), close(from_child[1]);
    to_ = fdopen(to_child[1], "w");
    from_ = fdopen(from_child[0], "r");
    std::string hello = read_line();
    if (hello.rfind("ready ", 0) == 0) {
      available_ = true;
      description_ = hello.substr(6);
    } else {
      reason_ = hello.empty() ? fmt::format("could not run '{} {}'", python, script)
                              : hello.rfind("error ", 0) == 0 ? hello.substr(6) : hello;
      shutdown();
    }
  }
  ~TorchServer() { shutdown(); }
  TorchServer(const TorchServer&) = delete;
  TorchServer& operator=(const TorchServer&) = delete;

  bool available() const { return available_; }
  const std::string& unavailable_reason() const { return reason_; }
  const std::string& description() const { return description_; }  // "torch=1.13 threads=2"

  // Sends one command line and returns the reply's words after its leading keyword, which must be
  // `expect`; an "error ..." reply or a lost child is an engram::Error.
  std::vector<std::string> request(const std::string& command, const std::string& expect) {
    ENGRAM_CHECK(available_, "torch server: not running ({})", reason_);
    ENGRAM_CHECK(std::fprintf(to_, "%s\n", command.c_str()) > 0 && std::fflush(to_) == 0,
                 "torch server: cannot send '{}': the process has exited", command);
    std::string reply = read_line();
    ENGRAM_CHECK(!reply.empty(), "torch server: no reply to '{}': the process has exited", command);
    std::istringstream words(reply);
    std::string head;
    words >> head;
    ENGRAM_CHECK(head != "error", "torch server: '{}' failed: {}", command, reply.substr(6));
    ENGRAM_CHECK(head == expect, "torch server: expected '{} ...' in reply to '{}', got '{}'",
                 expect, command, reply);
    std::vector<std::string> out;
    for (std::string w; words >> w;) out.push_back(w);
    return out;
  }
  std::vector<double> request_numbers(const std::string& command, const std::string& expect) {
    std::vector<double> out;
    for (const std::string& w : request(command, expect)) out.push_back(std::strtod(w.c_str(), nullptr));
    return out;
  }

  // `time <n>`: n timed training steps on the torch side, and its peak memory growth so far.
  struct Timing {
    std::vector<double> ms;  // one wall time per step
    double peak_bytes = 0;   // VmHWM - VmRSS before 'setup' built the workload
  };
  Timing time(int64_t n) {
    const std::string command = fmt::format("time {}", n);
    std::vector<std::string> words = request(command, "times");
    // The reply is exactly n numbers, the word peak_bytes and one more number; anything else (an
    // old torch_ref.py, a stray print) is an error that says what was expected, not a silent 0.
    auto number = [](const std::string& w, double& out) {
      char* end = nullptr;
      out = std::strtod(w.c_str(), &end);
      return !w.empty() && *end == '\0';
    };
    Timing t;
    bool ok = words.size() == size_t(n) + 2 && words[size_t(n)] == "peak_bytes" &&
              number(words.back(), t.peak_bytes);
    for (size_t i = 0; ok && i < size_t(n); ++i) ok = number(words[i], t.ms.emplace_back());
    ENGRAM_CHECK(ok, "torch server: expected 'times <ms1> ... <ms{}> peak_bytes <bytes>' in reply "
                     "to '{}', got 'times {}'", n, command, fmt::join(words, " "));
    return t;
  }

 private:
  static constexpr const char* kThreadVariables[] = {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                     "MKL_NUM_THREADS", "ENGRAM_NUM_THREADS"};

  std::string read_line() {
    char* buf = nullptr;
    size_t cap = 0;
    ssize_t n = getline(&buf, &cap, from_);
    std::string line = n > 0 ? std::string(buf, size_t(n)) : std::string();
    std::free(buf);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    return line;
  }

  void shutdown() {
    if (to_) {
      if (available_) {
        std::fprintf(to_, "quit\n");
        std::fflush(to_);
      }
      std::fclose(to_);  // EOF on the child's stdin also ends it
      to_ = nullptr;
    }
    if (from_) std::fclose(from_), from_ = nullptr;
    if (pid_ > 0) waitpid(pid_, nullptr, 0), pid_ = -1;
    available_ = false;
  }

  pid_t pid_ = -1;
  FILE* to_ = nullptr;
  FILE* from_ = nullptr;
  bool available_ = false;
  std::string reason_, description_;
};

}  // namespace engram::bench
