// tools/gradcheck.cpp — `make gradcheck`: one line per registered op,
//
//   op=<name> cases=<n> max_abs_err=<e> max_rel_err=<e> strided=<ok|FAIL>/<variants>
//      torch=<ok|missing|FAIL> status=<ok|FAIL>
//
// cases and the errors come from the f64 gradcheck (autograd/registry_check.h) of every sample of
// op.samples(Generator(42)) except those marked skip_gradcheck; strided= is the rerun of every
// sample with each input non-contiguous (and how many such runs were compared); torch= is the f32 comparison of
// all stored samples (skip_gradcheck ones included) with the PyTorch goldens in
// tests/golden/ops.json (autograd/golden.h; ENGRAM_GOLDEN_DIR overrides the folder). The reason
// for each failure goes to stderr under its op's line. Ends with `ops=<n> failed=<m>` and exits
// non-zero when any op fails or has no golden.
#include <cmath>
#include <cstdio>
#include <iostream>

#include "autograd/golden.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "autograd/registry.h"
#include "autograd/registry_check.h"

using namespace engram;

int main() {
  std::string path = golden::default_path();
  golden::File goldens;
  bool have_goldens = true;
  try {
    goldens = golden::load(path);
  } catch (const std::exception& e) {
    have_goldens = false;
    std::cerr << "gradcheck: " << e.what() << "\n";
  }

  int n_ops = 0, n_failed = 0;
  for (const OpInfo& op : op_registry()) {
    ++n_ops;
    std::vector<std::string> why;
    // ---- f64 gradcheck and the non-contiguous rerun
    int cases = 0, strided_variants = 0;
    bool grad_ok = true, strided_ok = true;
    double max_abs = 0, max_rel = 0;
    try {
      Generator g(42);
      for (const OpSample& s : op.samples(g)) {
        StridedResult st = check_strided(op, s);
        strided_variants += st.variants;
        if (!st.ok) {
          strided_ok = false;
          why.push_back(fmt::format("non-contiguous, sample '{}': {}", s.label, st.message));
        }
        if (s.skip_gradcheck) continue;
        ++cases;
        GradcheckResult r = check_gradient(op, s);
        // NaN errors count as the worst (std::max would drop them)
        max_abs = r.max_abs_err > max_abs || std::isnan(r.max_abs_err) ? r.max_abs_err : max_abs;
        max_rel = r.max_rel_err > max_rel || std::isnan(r.max_rel_err) ? r.max_rel_err : max_rel;
        if (!r.ok) {
          grad_ok = false;
          why.push_back(fmt::format("gradcheck, sample '{}': {}", s.label, r.message));
        }
      }
    } catch (const std::exception& e) {
      grad_ok = false;
      why.push_back(fmt::format("samples: {}", e.what()));
    }
    if (cases == 0 && grad_ok) {
      grad_ok = false;
      why.push_back("no sample is gradchecked");
    }

    // ---- PyTorch golden
    const char* torch = "missing";
    if (const golden::OpGolden* gop = have_goldens ? goldens.find(op.name) : nullptr) {
      golden::Result r = golden::compare_op(op, *gop);
      std::string stale = golden::stale_reason(op, *gop);
      if (!r.ok) why.push_back("torch: " + r.message);
      if (!stale.empty()) why.push_back("torch: golden is stale (" + stale + "): run `make golden`");
      torch = r.ok && stale.empty() ? "ok" : "FAIL";
    } else {
      why.push_back(fmt::format("torch: no golden in {}: run `make golden`", path));
    }

    bool ok = grad_ok && strided_ok && std::string(torch) == "ok";
    if (!ok) ++n_failed;
    std::cout << fmt::format("op={} cases={} max_abs_err={:.3g} max_rel_err={:.3g} "
                             "strided={}/{} torch={} status={}\n",
                             op.name, cases, max_abs, max_rel, strided_ok ? "ok" : "FAIL",
                             strided_variants, torch, ok ? "ok" : "FAIL")
              << std::flush;
    for (const std::string& w : why) std::cerr << "    " << op.name << ": " << w << "\n";
    std::cerr << std::flush;
  }
  std::cout << fmt::format("ops={} failed={}\n", n_ops, n_failed);
  return n_failed ? 1 : 0;
}
