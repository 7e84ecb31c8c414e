// apps/common/psifr_csv.cpp — reads free-recall data in psifr's long CSV format (psifr_csv.h).
//
// Two passes. (1) libcsv splits the file into rows; the file is fed to csv_parse one physical line
// at a time so each row knows the line it started on (libcsv keeps its state across calls, so a
// quoted field with an embedded newline still parses). The callbacks only collect strings: no C++
// exception ever crosses libcsv's C frames. (2) The rows are checked and grouped into lists keyed
// by (subject, session, list) — the session only matters when a data set reuses list numbers
// across sessions; for PEERS and Morton2013 lists are numbered per subject and the key is
// effectively (subject, list) — in order of first appearance. Recalls are scored at the end as
// psifr's merge_free_recall does: the serial position of the study event of the same list with the
// same item (compared case-insensitively), or 0 (an intrusion, prior-list intrusions included).
// The pool holds the distinct studied items (case-insensitive, first spelling kept) in order of
// first study; categories are indexed in sorted order of their names.
#include "apps/common/psifr_csv.h"

#include <csv.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>
#include <unordered_map>

#include "core/error.h"

namespace engram::apps {

namespace {

struct Row {
  int64_t line = 0;  // physical line the row starts on (1 = the header)
  std::vector<std::string> fields;
};

// libcsv callback state: the rows so far and the line being fed.
struct Collector {
  std::vector<Row> rows;
  std::vector<std::string> current;
  int64_t line = 0;      // physical line now being fed to csv_parse
  int64_t row_line = 0;  // line the current row started on
};

void on_field(void* data, size_t len, void* ctx) {
  auto* c = static_cast<Collector*>(ctx);
  if (c->current.empty()) c->row_line = c->line;
  c->current.emplace_back(static_cast<const char*>(data), len);
}

void on_row(int /*terminator*/, void* ctx) {
  auto* c = static_cast<Collector*>(ctx);
  if (c->current.empty()) return;  // libcsv does not report blank lines; nothing to keep
  c->rows.push_back({c->row_line, std::move(c->current)});
  c->current.clear();
}

// Owns the libcsv parser so every early error frees it.
struct Parser {
  csv_parser p{};
  Parser() {
    ENGRAM_CHECK(csv_init(&p, CSV_STRICT | CSV_STRICT_FINI) == 0, "libcsv: csv_init failed");
  }
  ~Parser() { csv_free(&p); }
};

std::vector<Row> split_rows(const std::string& path) {
  ENGRAM_CHECK(std::filesystem::is_regular_file(path), "{}: no such file", path);
  std::ifstream in(path, std::ios::binary);
  ENGRAM_CHECK(in.good(), "{}: cannot open for reading", path);
  std::ostringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();

  Parser parser;
  Collector c;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    end = end == std::string::npos ? text.size() : end + 1;
    ++c.line;
    const size_t n = end - start;
    if (csv_parse(&parser.p, text.data() + start, n, on_field, on_row, &c) != n)
      ENGRAM_FAIL("{}:{}: malformed CSV ({})", path, c.line, csv_strerror(csv_error(&parser.p)));
    start = end;
  }
  if (csv_fini(&parser.p, on_field, on_row, &c) != 0)
    ENGRAM_FAIL("{}:{}: malformed CSV ({}, e.g. an unterminated quote)", path, c.line,
                csv_strerror(csv_error(&parser.p)));
  return std::move(c.rows);
}

std::string upper(std::string s) {
  for (char& ch : s) ch = char(std::toupper((unsigned char)ch));
  return s;
}

// One list while the rows are read: its study items (uppercase) and the recalled items.
struct Building {
  int64_t subject = 0, list = 0;
  int64_t first_line = 0, last_study_line = 0;
  std::vector<std::string> study;  // uppercase item text in serial order
  std::vector<int64_t> item_ids, categories;
  std::vector<std::string> recalls;  // uppercase item text in output order
};

}  // namespace

cmr::FreeRecallData read_psifr_csv(const std::string& path) {
  const std::vector<Row> rows = split_rows(path);
  ENGRAM_CHECK(!rows.empty(), "{}:1: empty file (no header row)", path);

  // Header: the column of each name this reader uses.
  const Row& header = rows[0];
  auto column = [&](const std::string& name) -> int64_t {
    for (size_t i = 0; i < header.fields.size(); ++i)
      if (header.fields[i] == name) return int64_t(i);
    return -1;
  };
  const std::string header_text = fmt::format("{}", fmt::join(header.fields, ","));
  auto required = [&](const std::string& name) {
    const int64_t i = column(name);
    ENGRAM_CHECK(i >= 0, "{}:{}: missing column '{}' (header: {})", path, header.line, name,
                 header_text);
    return i;
  };
  const int64_t c_subject = required("subject"), c_list = required("list"),
                c_position = required("position"), c_type = required("trial_type"),
                c_item = required("item");
  const int64_t c_session = column("session"), c_category = column("category");
  ENGRAM_CHECK(rows.size() > 1, "{}:{}: no data rows after the header", path, header.line + 1);

  cmr::FreeRecallData data;
  data.source = path;
  std::vector<Building> lists;
  std::map<std::tuple<int64_t, int64_t, int64_t>, size_t> list_index;  // (subject, session, list)
  std::unordered_map<std::string, int64_t> pool_index;                 // uppercase item -> id
  std::vector<std::string> pool_category_names;                        // by pool id, while reading
  std::vector<int64_t> pool_first_line;
  std::map<std::string, int64_t> category_index;  // name -> index, renumbered sorted at the end

  for (size_t r = 1; r < rows.size(); ++r) {
    const Row& row = rows[r];
    const int64_t line = row.line;
    ENGRAM_CHECK(row.fields.size() == header.fields.size(), "{}:{}: {} fields, the header has {}",
                 path, line, row.fields.size(), header.fields.size());
    auto integer = [&](int64_t col) {
      const std::string& s = row.fields[size_t(col)];
      int64_t v = 0;
      const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      ENGRAM_CHECK(!s.empty() && ec == std::errc() && ptr == s.data() + s.size(),
                   "{}:{}: column '{}' is not an integer: '{}'", path, line,
                   header.fields[size_t(col)], s);
      return v;
    };
    const int64_t subject = integer(c_subject), list = integer(c_list),
                  position = integer(c_position);
    const int64_t session = c_session >= 0 ? integer(c_session) : 0;
    const std::string& type = row.fields[size_t(c_type)];
    const std::string item = upper(row.fields[size_t(c_item)]);
    ENGRAM_CHECK(!item.empty(), "{}:{}: empty item", path, line);
    const bool study = type == "study";
    ENGRAM_CHECK(study || type == "recall",
                 "{}:{}: unknown trial_type '{}' (expected study or recall)", path, line, type);

    const auto key = std::make_tuple(subject, session, list);
    auto found = list_index.find(key);
    if (!study) {
      ENGRAM_CHECK(found != list_index.end(),
                   "{}:{}: recall for subject {} list {} before any study row of that list", path,
                   line, subject, list);
      lists[found->second].recalls.push_back(item);
      continue;
    }
    if (found == list_index.end()) {
      found = list_index.emplace(key, lists.size()).first;
      lists.push_back({});
      lists.back().subject = subject;
      lists.back().list = list;
      lists.back().first_line = line;
    }
    Building& b = lists[found->second];
    ENGRAM_CHECK(b.recalls.empty(),
                 "{}:{}: study row for subject {} list {} after that list's recalls", path, line,
                 subject, list);
    ENGRAM_CHECK(position == int64_t(b.study.size()) + 1,
                 "{}:{}: study position {} of subject {} list {}, expected {} (positions must run "
                 "1..L in order)",
                 path, line, position, subject, list, b.study.size() + 1);
    ENGRAM_CHECK(std::find(b.study.begin(), b.study.end(), item) == b.study.end(),
                 "{}:{}: item '{}' studied twice on subject {} list {}", path, line, item, subject,
                 list);
    b.study.push_back(item);
    b.last_study_line = line;

    auto [pool_it, added] = pool_index.emplace(item, int64_t(data.pool.size()));
    if (added) {
      data.pool.push_back(row.fields[size_t(c_item)]);
      pool_category_names.emplace_back();
      pool_first_line.push_back(line);
    }
    const int64_t id = pool_it->second;
    b.item_ids.push_back(id);
    if (c_category >= 0) {
      const std::string& cat = row.fields[size_t(c_category)];
      ENGRAM_CHECK(!cat.empty(), "{}:{}: empty category on a study row", path, line);
      std::string& known = pool_category_names[size_t(id)];
      if (known.empty()) known = cat;
      ENGRAM_CHECK(known == cat, "{}:{}: item '{}' has category '{}', but '{}' at line {}", path,
                   line, item, cat, known, pool_first_line[size_t(id)]);
      category_index.emplace(cat, 0);
    }
  }
  ENGRAM_CHECK(!lists.empty(), "{}:{}: no study rows", path, rows.back().line);

  // Categories in sorted order of their names (std::map iterates sorted).
  if (c_category >= 0) {
    int64_t next = 0;
    for (auto& [name, index] : category_index) {
      index = next++;
      data.category_names.push_back(name);
    }
    for (const std::string& name : pool_category_names)
      data.pool_categories.push_back(category_index.at(name));
  }

  data.list_length = int64_t(lists.front().study.size());
  data.lists.reserve(lists.size());
  for (const Building& b : lists) {
    ENGRAM_CHECK(int64_t(b.study.size()) == data.list_length,
                 "{}:{}: subject {} list {} has {} study items, but the first list (line {}) has "
                 "{}: lists of different lengths",
                 path, b.last_study_line, b.subject, b.list, b.study.size(),
                 lists.front().first_line, data.list_length);
    cmr::RecallList out;
    out.subject = b.subject;
    out.list = b.list;
    out.item_ids = b.item_ids;
    if (c_category >= 0)
      for (int64_t id : b.item_ids) out.categories.push_back(data.pool_categories[size_t(id)]);
    for (const std::string& item : b.recalls) {
      const auto at = std::find(b.study.begin(), b.study.end(), item);
      out.recalls.push_back(at == b.study.end() ? 0 : int64_t(at - b.study.begin()) + 1);
    }
    data.lists.push_back(std::move(out));
  }
  return data;
}

}  // namespace engram::apps
