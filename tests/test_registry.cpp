// tests/test_registry.cpp — walks the op registry: every sample of every op is gradchecked in
// f64 with the registry's tight tolerances, every sample is rerun with each input made
// non-contiguous (autograd/registry_check.h), and every op name written in autograd/'s sources
// must be exercised by some entry (the runtime half of that check is in tests/main.cpp).
#include <doctest/doctest.h>

#include <set>

#include "autograd/registry.h"
#include "autograd/registry_check.h"

using namespace engram;

static const std::vector<std::string> kRecordedOpNames = {
#include "op_names.inc"
};

TEST_CASE("every registered op has samples and passes gradcheck in f64") {
  for (const OpInfo& op : op_registry()) {
    Generator g(42);
    std::vector<OpSample> samples = op.samples(g);
    CHECK_MESSAGE(!samples.empty(), "op " << op.name << " is registered without samples");
    for (const OpSample& s : samples) {
      if (s.skip_gradcheck) continue;
      GradcheckResult res = check_gradient(op, s);
      CHECK_MESSAGE(res.ok, "op " << op.name << " sample '" << s.label << "': " << res.message);
    }
  }
}

TEST_CASE("every registered op gives the same output and gradients on non-contiguous inputs") {
  int variants = 0;
  for (const OpInfo& op : op_registry()) {
    Generator g(42);
    for (const OpSample& s : op.samples(g)) {
      StridedResult res = check_strided(op, s);
      variants += res.variants;
      CHECK_MESSAGE(res.ok, "op " << op.name << " sample '" << s.label << "': " << res.message);
    }
  }
  MESSAGE("non-contiguous runs compared: " << variants);
  // Every op has at least one sample input of two or more elements, so at least one variant each.
  CHECK(variants >= (int)op_registry().size());
}

TEST_CASE("every op named in autograd/'s sources is exercised by the registry") {
  std::set<std::string> seen = registry_exercised_op_names();
  for (const std::string& name : kRecordedOpNames)
    CHECK_MESSAGE(seen.count(name) == 1, "op '" << name << "' is recorded by autograd/ but no "
                                        "registry sample exercises it");
  // The scan found the names (a broken grep would make the loop above vacuous): one known op
  // from each family.
  std::set<std::string> scanned(kRecordedOpNames.begin(), kRecordedOpNames.end());
  for (const char* known : {"add", "tanh", "sum", "matmul", "reshape", "conv2d", "rfft",
                            "hebbian_scan", "cross_entropy"})
    CHECK_MESSAGE(scanned.count(known) == 1, "the source scan did not find op '" << known << "'");
}
