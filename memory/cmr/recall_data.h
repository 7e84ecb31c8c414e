// memory/cmr/recall_data.h — free-recall data as the CMR model and the analyses see it.
//
// One RecallList per studied list: the items in study order (serial position p = index + 1) and
// the recall events in output order, each scored as psifr's merge_free_recall does it: the
// serial position of the recalled item on this list, or 0 for an intrusion (an item that was not
// on the list). A repeat is a serial position that appears a second time. Real data (read by
// apps/common/psifr_csv.h) and simulated data (memory/cmr/cmr.h) use the same type, so one
// analysis (memory/cmr/analysis.h) reads both and the model never grades itself.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace engram::cmr {

struct RecallList {
  int64_t subject = 0;
  int64_t list = 0;                     // the list number within the subject, as in the data
  std::vector<int64_t> item_ids;        // pool index of each studied item (FreeRecallData::pool)
  std::vector<int64_t> categories;      // category index of each studied item; empty when none
  std::vector<int64_t> recalls;         // serial position 1..L of each recall, 0 = intrusion
  int64_t length() const { return (int64_t)item_ids.size(); }
};

// A whole data set: every list, the item pool the ids index, and the category names (if any).
struct FreeRecallData {
  std::string source;                   // file path or "simulated ..."
  std::vector<RecallList> lists;
  std::vector<std::string> pool;        // item text by pool index
  std::vector<int64_t> pool_categories; // category index by pool index; empty when none
  std::vector<std::string> category_names;
  int64_t list_length = 0;              // every list of a data set has this length
  bool has_categories() const { return !category_names.empty(); }
};

}  // namespace engram::cmr
