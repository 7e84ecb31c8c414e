// apps/common/psifr_csv.h — reads free-recall data in psifr's long CSV format.
//
// One row per study event and one per recall event, in order; required columns subject, list,
// position, trial_type (study | recall) and item; an optional category column. Rows are scored as
// psifr's merge_free_recall does: each recall is matched to the study events of the same (subject,
// list) by item, giving its serial position, or 0 (an intrusion) when the item was not studied on
// that list. Fields are parsed with libcsv (quoted fields, embedded commas). Every error names the
// file and line: a missing column, a non-integer subject/list/position, an unknown trial_type, a
// study position out of order, lists of different lengths, a recall before any study of its list.
#pragma once
#include <string>

#include "memory/cmr/recall_data.h"

namespace engram::apps {

cmr::FreeRecallData read_psifr_csv(const std::string& path);

}  // namespace engram::apps
