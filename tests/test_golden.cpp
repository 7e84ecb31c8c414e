// tests/test_golden.cpp — every registered op matches PyTorch (tests/golden/ops.json, made by
// `make golden` with tests/golden/make_golden.py).
//
// Each stored sample is replayed through the registry op in f32: the output and the gradient of
// every differentiable input under loss = sum(y * w) must agree with PyTorch elementwise within
// the op's golden_atol + golden_rtol * |torch|. The file is found from the working directory
// (the repo root under `make test`) or in $ENGRAM_GOLDEN_DIR.
#include <doctest/doctest.h>

#include <memory>

#include "autograd/golden.h"
#include "autograd/registry.h"

using namespace engram;

// Loaded once for both test cases; a missing or broken file fails them with the reason.
static const golden::File* goldens(std::string& error) {
  static std::unique_ptr<golden::File> file;
  static std::string load_error;
  static bool tried = false;
  if (!tried) {
    tried = true;
    try {
      file = std::make_unique<golden::File>(golden::load(golden::default_path()));
    } catch (const std::exception& e) {
      load_error = e.what();
    }
  }
  error = load_error;
  return file.get();
}

TEST_CASE("every op matches its PyTorch golden in f32 (output and gradients)") {
  std::string error;
  const golden::File* file = goldens(error);
  REQUIRE_MESSAGE(file != nullptr, error);
  for (const OpInfo& op : op_registry()) {
    const golden::OpGolden* g = file->find(op.name);
    if (!g) continue;  // reported by the next test case
    for (const golden::Sample& s : g->samples) {
      golden::Result r = golden::compare_sample(op, s);
      CHECK_MESSAGE(r.ok, r.message);
    }
  }
}

TEST_CASE("every registered op has an up-to-date PyTorch golden") {
  std::string error;
  const golden::File* file = goldens(error);
  REQUIRE_MESSAGE(file != nullptr, error);
  for (const OpInfo& op : op_registry()) {
    const golden::OpGolden* g = file->find(op.name);
    CHECK_MESSAGE(g != nullptr, "op '" << op.name << "' has no golden in " << file->path
                                       << ": run `make golden`");
    if (!g) continue;
    std::string stale = golden::stale_reason(op, *g);
    CHECK_MESSAGE(stale.empty(), "the golden of op '" << op.name << "' is stale (" << stale
                                                      << "): run `make golden`");
  }
  for (const golden::OpGolden& g : file->ops)
    CHECK_MESSAGE(find_op(g.name) != nullptr, "golden op '" << g.name << "' in " << file->path
                                                            << " is not registered: run `make golden`");
}
