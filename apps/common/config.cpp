// apps/common/config.cpp — see config.h.
#include "apps/common/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"

namespace engram::apps {

// ---------------------------------------------------------------- building a table

// Shorthands for building a table; unset bounds stay infinite, unset choices empty.
static FieldSpec field(std::string key, FieldType type, std::string def, std::string doc) {
  FieldSpec f;
  f.key = std::move(key);
  f.type = type;
  f.def = std::move(def);
  f.doc = std::move(doc);
  return f;
}
FieldSpec int_field(std::string key, int64_t def, int64_t min, int64_t max, std::string doc) {
  FieldSpec f = field(std::move(key), FieldType::integer, std::to_string(def), std::move(doc));
  f.min = double(min), f.max = double(max);
  return f;
}
FieldSpec real_field(std::string key, double def, double min, double max, std::string doc) {
  FieldSpec f = field(std::move(key), FieldType::real, fmt::format("{}", def), std::move(doc));
  f.min = min, f.max = max;
  return f;
}
FieldSpec bool_field(std::string key, bool def, std::string doc) {
  return field(std::move(key), FieldType::boolean, def ? "true" : "false", std::move(doc));
}
FieldSpec string_field(std::string key, std::string def, std::string doc) {
  return field(std::move(key), FieldType::string, std::move(def), std::move(doc));
}
FieldSpec choice_field(std::string key, std::string def, std::vector<std::string> choices,
                       std::string doc) {
  FieldSpec f = field(std::move(key), FieldType::choice, std::move(def), std::move(doc));
  f.choices = std::move(choices);
  return f;
}

static const char* type_name(FieldType t) {
  switch (t) {
    case FieldType::integer: return "int";
    case FieldType::real: return "real";
    case FieldType::boolean: return "bool";
    case FieldType::string: return "string";
    case FieldType::choice: return "choice";
  }
  return "?";
}

// "[1, 4096]", "crsd|lstm|transformer", "true|false" or "" — what a value may be.
static std::string range_str(const FieldSpec& f) {
  auto bound = [&](double v) {
    if (std::isinf(v)) return std::string(v < 0 ? "-inf" : "inf");
    return f.type == FieldType::integer ? fmt::format("{}", int64_t(v)) : fmt::format("{:g}", v);
  };
  switch (f.type) {
    case FieldType::integer:
    case FieldType::real: return fmt::format("[{}, {}]", bound(f.min), bound(f.max));
    case FieldType::boolean: return "true|false";
    case FieldType::choice: return fmt::format("{}", fmt::join(f.choices, "|"));
    case FieldType::string: return "";
  }
  return "";
}

// What an error says was expected: "an integer in [1, 4096]".
static std::string expectation(const FieldSpec& f) {
  switch (f.type) {
    case FieldType::integer: return "an integer in " + range_str(f);
    case FieldType::real: return "a number in " + range_str(f);
    case FieldType::boolean: return "a boolean (true or false)";
    case FieldType::choice: return "one of " + range_str(f);
    case FieldType::string: return "a string";
  }
  return "?";
}

// Whether `s` is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
// A config's text must be: YAML is Unicode, so yaml-cpp's emitter writes an invalid byte as U+FFFD
// and to_yaml() (the copy kept in checkpoints and the run dir) would silently differ from the
// config that ran; and the JSON of checkpoint metadata cannot hold it at all (found by
// tests/fuzz/fuzz_config.cpp).
static bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = (unsigned char)s[i];
    size_t len;  // continuation bytes after this lead byte
    if (c < 0x80) len = 0;
    else if (c >= 0xC2 && c <= 0xDF) len = 1;
    else if (c >= 0xE0 && c <= 0xEF) len = 2;
    else if (c >= 0xF0 && c <= 0xF4) len = 3;
    else return false;  // a continuation byte, an overlong lead C0/C1, or past F4
    if (len > s.size() - i - 1) return false;  // cut off by the end of the text
    for (size_t k = 1; k <= len; ++k)
      if (((unsigned char)s[i + k] & 0xC0) != 0x80) return false;
    if (len >= 2) {  // the second byte's range rules out overlong forms, surrogates and > U+10FFFF
      const unsigned char d = (unsigned char)s[i + 1];
      if ((c == 0xE0 && d < 0xA0) || (c == 0xED && d > 0x9F) || (c == 0xF0 && d < 0x90) ||
          (c == 0xF4 && d > 0x8F))
        return false;
    }
    i += len + 1;
  }
  return true;
}

// Parses `text` as a value of field `f`; throws naming `where` and the key.
static ConfigValue parse_value(const FieldSpec& f, const std::string& text, const std::string& where) {
  auto fail = [&]() -> ConfigValue {
    ENGRAM_FAIL("{}: '{}' must be {}, got '{}'", where, f.key, expectation(f), text);
  };
  switch (f.type) {
    case FieldType::integer: {
      int64_t v = 0;
      const char* end = text.data() + text.size();
      auto [ptr, ec] = std::from_chars(text.data() + (text.starts_with('+') ? 1 : 0), end, v);
      if (text.empty() || ec != std::errc() || ptr != end || double(v) < f.min || double(v) > f.max)
        return fail();
      return v;
    }
    case FieldType::real: {
      char* end = nullptr;
      double v = text.empty() ? NAN : std::strtod(text.c_str(), &end);
      if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v) || v < f.min ||
          v > f.max)
        return fail();
      return v;
    }
    case FieldType::boolean: {
      std::string t = text;
      std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
      if (t == "true" || t == "yes" || t == "on") return true;
      if (t == "false" || t == "no" || t == "off") return false;
      return fail();
    }
    case FieldType::choice:
      if (std::find(f.choices.begin(), f.choices.end(), text) == f.choices.end()) return fail();
      return text;
    case FieldType::string:
      ENGRAM_CHECK(valid_utf8(text), "{}: '{}' must be UTF-8 text, got bytes that are not", where,
                   f.key);
      return text;
  }
  return fail();
}

// ---------------------------------------------------------------- Schema

Schema::Schema(std::string name, std::vector<FieldSpec> fields)
    : name_(std::move(name)), fields_(std::move(fields)) {
  std::set<std::string> seen;
  for (const FieldSpec& f : fields_) {
    size_t dot = f.key.find('.');
    ENGRAM_CHECK(dot != std::string::npos && dot > 0 && dot + 1 < f.key.size() &&
                     f.key.find('.', dot + 1) == std::string::npos,
                 "schema {}: key '{}' must be 'section.name'", name_, f.key);
    ENGRAM_CHECK(seen.insert(f.key).second, "schema {}: key '{}' listed twice", name_, f.key);
    parse_value(f, f.def, fmt::format("schema {} default", name_));  // defaults must be valid
  }
}

const FieldSpec* Schema::find(const std::string& key) const {
  for (const FieldSpec& f : fields_)
    if (f.key == key) return &f;
  return nullptr;
}

bool Schema::is_section(const std::string& prefix) const {
  for (const FieldSpec& f : fields_)
    if (f.key.starts_with(prefix + ".")) return true;
  return false;
}

static size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string Schema::closest_key(const std::string& key) const {
  std::string best;
  size_t best_d = std::max<size_t>(3, key.size() / 3) + 1;  // farther than this is no suggestion
  for (const FieldSpec& f : fields_) {
    size_t d = edit_distance(key, f.key);
    // A right name in the wrong section ("train.d_model") is also worth suggesting.
    std::string tail = f.key.substr(f.key.find('.') + 1);
    if (key.size() > tail.size() && key.ends_with("." + tail)) d = std::min<size_t>(d, 2);
    if (d < best_d) best_d = d, best = f.key;
  }
  return best;
}

std::string Schema::help() const {
  size_t wk = 3, wt = 4, wd = 7, wr = 5;
  for (const FieldSpec& f : fields_) {
    wk = std::max(wk, f.key.size());
    wt = std::max(wt, std::string(type_name(f.type)).size());
    wd = std::max(wd, f.def.size());
    wr = std::max(wr, range_str(f).size());
  }
  std::string out = fmt::format("{} configuration keys (set in a YAML file or with --set key=value):\n"
                                "{:<{}}  {:<{}}  {:<{}}  {:<{}}  {}\n",
                                name_, "key", wk, "type", wt, "default", wd, "range", wr, "description");
  std::string section;
  for (const FieldSpec& f : fields_) {
    std::string s = f.key.substr(0, f.key.find('.'));
    if (s != section) out += "\n", section = s;
    out += fmt::format("{:<{}}  {:<{}}  {:<{}}  {:<{}}  {}\n", f.key, wk, type_name(f.type), wt,
                       f.def, wd, range_str(f), wr, f.doc);
  }
  return out;
}

// ---------------------------------------------------------------- Config

Config::Config(std::shared_ptr<const Schema> schema) : schema_(std::move(schema)) {
  for (const FieldSpec& f : schema_->fields()) values_[f.key] = parse_value(f, f.def, "default");
}

static std::string unknown_key_message(const Schema& schema, const std::string& where,
                                       const std::string& key) {
  std::string hint = schema.closest_key(key);
  return fmt::format("{}: unknown key '{}'{}", where, key,
                     hint.empty() ? " (--help-config lists every key)"
                                  : fmt::format(" (did you mean '{}'?)", hint));
}

void Config::set(const std::string& key, const std::string& value, const std::string& source) {
  const FieldSpec* f = schema_->find(key);
  if (!f) {
    ENGRAM_CHECK(!schema_->is_section(key), "{}: '{}' is a section, not a key: give one of its "
                 "keys, e.g. '{}.<name>'", source, key, key);
    throw Error(unknown_key_message(*schema_, source, key));
  }
  values_[key] = parse_value(*f, value, source);
}

void Config::apply_override(const std::string& assignment) {
  size_t eq = assignment.find('=');
  ENGRAM_CHECK(eq != std::string::npos && eq > 0, "--set {}: expected key=value, e.g. "
               "--set model.d_model=256", assignment);
  std::string key = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  set(key, value, "--set " + assignment);
}

static const char* node_kind(const YAML::Node& n) {
  if (n.IsMap()) return "a mapping";
  if (n.IsSequence()) return "a list";
  if (n.IsNull()) return "an empty value";
  return "a scalar";
}

void Config::merge_yaml(const std::string& text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    ENGRAM_FAIL("{} line {}, column {}: bad YAML: {}", source, e.mark.line + 1, e.mark.column + 1,
                e.msg);
  }
  if (root.IsNull()) return;  // an empty file leaves every default
  ENGRAM_CHECK(root.IsMap(), "{}: expected a mapping of sections (model:, data:, ...) at the top "
               "level, got {}", source, node_kind(root));
  std::map<std::string, int> line_of;  // keys seen in this document, to catch duplicates
  for (auto section : root) {
    const std::string name = section.first.Scalar();
    const std::string where = fmt::format("{} line {}", source, section.first.Mark().line + 1);
    if (section.second.IsNull() && schema_->is_section(name)) continue;  // "model:" with no keys
    if (!section.second.IsMap()) {
      if (schema_->is_section(name))
        ENGRAM_FAIL("{}: '{}' must be a mapping of its keys, got {}", where, name,
                    node_kind(section.second));
      throw Error(unknown_key_message(*schema_, where, name));
    }
    ENGRAM_CHECK(schema_->is_section(name), "{}", unknown_key_message(*schema_, where, name));
    for (auto item : section.second) {
      const std::string key = name + "." + item.first.Scalar();
      const int line = item.first.Mark().line + 1;
      const std::string at = fmt::format("{} line {}", source, line);
      const FieldSpec* f = schema_->find(key);
      if (!f) throw Error(unknown_key_message(*schema_, at, key));
      ENGRAM_CHECK(!line_of.count(key), "{}: '{}' is given twice (also on line {})", at, key,
                   line_of[key]);
      line_of[key] = line;
      const YAML::Node& v = item.second;
      if (v.IsNull() && f->type == FieldType::string) {
        values_[key] = std::string();
        continue;
      }
      ENGRAM_CHECK(v.IsScalar(), "{}: '{}' must be {}, got {}", at, key, expectation(*f), node_kind(v));
      values_[key] = parse_value(*f, v.Scalar(), at);
    }
  }
}

void Config::merge_yaml_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ENGRAM_CHECK(in.good(), "config file '{}' cannot be opened (missing or unreadable)", path);
  std::stringstream ss;
  ss << in.rdbuf();
  merge_yaml(ss.str(), path);
}

const ConfigValue& Config::at(const std::string& key, FieldType want) const {
  const FieldSpec* f = schema_->find(key);
  ENGRAM_CHECK(f, "config: the program asked for unknown key '{}'", key);
  bool ok = f->type == want || (want == FieldType::string && f->type == FieldType::choice);
  ENGRAM_CHECK(ok, "config: key '{}' is a {}, asked for as a {}", key, type_name(f->type),
               type_name(want));
  return values_.at(key);
}

int64_t Config::get_int(const std::string& key) const {
  return std::get<int64_t>(at(key, FieldType::integer));
}
double Config::get_real(const std::string& key) const {
  return std::get<double>(at(key, FieldType::real));
}
bool Config::get_bool(const std::string& key) const {
  return std::get<bool>(at(key, FieldType::boolean));
}
const std::string& Config::get_string(const std::string& key) const {
  return std::get<std::string>(at(key, FieldType::string));
}

std::string Config::value_str(const std::string& key) const {
  ENGRAM_CHECK(schema_->find(key), "config: unknown key '{}'", key);
  return std::visit(
      [](const auto& v) -> std::string {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, bool>) return v ? "true" : "false";
        else if constexpr (std::is_same_v<V, std::string>) return v;
        else return fmt::format("{}", v);  // shortest text that reads back to the same number
      },
      values_.at(key));
}

std::string Config::to_yaml() const {
  YAML::Emitter out;
  out << YAML::BeginMap;
  std::string section;
  for (const FieldSpec& f : schema_->fields()) {
    std::string s = f.key.substr(0, f.key.find('.'));
    if (s != section) {
      if (!section.empty()) out << YAML::EndMap;
      out << YAML::Key << s << YAML::Value << YAML::BeginMap;
      section = s;
    }
    out << YAML::Key << f.key.substr(s.size() + 1) << YAML::Value;
    if (f.type == FieldType::string) out << YAML::DoubleQuoted << value_str(f.key);
    else out << value_str(f.key);
  }
  if (!section.empty()) out << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::vector<std::string> Config::diff(const Config& other) const {
  std::vector<std::string> keys;
  for (const FieldSpec& f : schema_->fields())
    if (value_str(f.key) != other.value_str(f.key)) keys.push_back(f.key);
  return keys;
}

}  // namespace engram::apps
