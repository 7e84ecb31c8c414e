// tests/main.cpp — the doctest runner for every suite in tests/.
//
// After the suites have run, one more check: every op name the tape recorded during the whole run
// (autograd/tape.h, the op-name log) must be exercised by some op-registry sample. This is taken
// at run time, so an op recorded under a variable name (maximum/minimum, softmax/log_softmax)
// cannot escape; tests/test_registry.cpp also checks the names found in the sources, which covers
// ops that no test happens to run.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <iostream>
#include <set>

#include "autograd/registry.h"
#include "autograd/tape.h"

int main(int argc, char** argv) {
  engram::set_op_name_log(true);
  doctest::Context context(argc, argv);
  int rc = context.run();
  if (context.shouldExit()) return rc;
  engram::set_op_name_log(false);
  std::vector<std::string> logged = engram::logged_op_names();
  std::set<std::string> exercised = engram::registry_exercised_op_names();
  // Ops that tests/test_tape.cpp records by hand to test the tape itself; not part of engram.
  const std::set<std::string> tape_test_ops = {"bad_op", "two_out"};
  int missing = 0;
  for (const std::string& name : logged)
    if (!exercised.count(name) && !tape_test_ops.count(name)) {
      std::cerr << "op '" << name << "' was recorded on the tape during the tests but no op-registry "
                << "sample exercises it: add an entry (autograd/opinfo_*.cpp)\n";
      ++missing;
    }
  std::cout << "[engram] ops recorded during the suite: " << logged.size()
            << ", not in the registry: " << missing << "\n";
  return missing ? 1 : rc;
}
