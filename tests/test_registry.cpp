// tests/test_registry.cpp — walks the op registry: every sample of every op is gradchecked in
// f64, and every op name recorded anywhere in autograd/ must be exercised by some entry.
#include <doctest/doctest.h>

#include <set>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "autograd/registry.h"

using namespace engram;

static const std::vector<std::string> kRecordedOpNames = {
#include "op_names.inc"
};

TEST_CASE("every registered op has samples and passes gradcheck in f64") {
  for (const OpInfo& op : op_registry()) {
    Generator g(42);
    std::vector<OpSample> samples = op.samples(g);
    INFO("op " << op.name);
    CHECK_MESSAGE(!samples.empty(), "op " << op.name << " is registered without samples");
    for (const OpSample& s : samples) {
      if (s.skip_gradcheck) continue;
      GradcheckOptions opt;
      opt.atol = op.grad_atol;
      opt.rtol = op.grad_rtol;
      opt.eps = op.grad_eps;
      auto fn = [&](const std::vector<Tensor>& in) { return op.fn(in, s.params); };
      GradcheckResult res = gradcheck(fn, s.inputs, s.differentiable, opt);
      CHECK_MESSAGE(res.ok, "op " << op.name << " sample '" << s.label << "': " << res.message);
    }
  }
}

TEST_CASE("every op recorded in autograd/ is exercised by the registry") {
  std::set<std::string> seen;
  for (const OpInfo& op : op_registry()) {
    Generator g(7);
    for (const OpSample& s : op.samples(g)) {
      std::vector<Tensor> in;
      for (size_t i = 0; i < s.inputs.size(); ++i) {
        Tensor t = raw::clone(s.inputs[i]);
        if (s.differentiable[i]) t.requires_grad_(true);
        in.push_back(t);
      }
      tape().clear();
      op.fn(in, s.params);
      for (const Node& n : tape().nodes) seen.insert(n.name);
      tape().clear();
    }
  }
  for (const std::string& name : kRecordedOpNames)
    CHECK_MESSAGE(seen.count(name) == 1, "op '" << name << "' is recorded by autograd/ but no "
                                        "registry sample exercises it");
  CHECK(kRecordedOpNames.size() >= 10);
}
