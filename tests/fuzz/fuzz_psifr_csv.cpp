// tests/fuzz/fuzz_psifr_csv.cpp — fuzzes the free-recall CSV reader (apps/common/psifr_csv.cpp):
// libcsv's field splitting (quotes, embedded commas and newlines), the header's columns, the
// integer fields, trial types, the ordering rules and the scoring of recalls. The input is written
// to a temporary file and read with read_psifr_csv. Accepted data must be consistent: every list
// has list_length study items with valid pool ids, and every recall is 0 or a serial position.
#include "apps/common/psifr_csv.h"
#include "tests/fuzz/fuzz_util.h"

using namespace engram;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_temp("recalls.csv", data, size);
  try {
    cmr::FreeRecallData d = apps::read_psifr_csv(path);
    for (const cmr::RecallList& l : d.lists) {
      if (int64_t(l.item_ids.size()) != d.list_length) std::abort();
      for (int64_t id : l.item_ids)
        if (id < 0 || id >= int64_t(d.pool.size())) std::abort();
      for (int64_t r : l.recalls)
        if (r < 0 || r > d.list_length) std::abort();
    }
  } catch (const Error& e) {
    fuzz::check_names_source(e, path);
  }
  return 0;
}
