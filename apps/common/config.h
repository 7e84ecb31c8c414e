// apps/common/config.h — typed, documented and validated run configurations (YAML + --set).
//
// An app declares its settings once, as a table of fields: dotted key, type, default, allowed
// range (or choices) and a one-line description. That table is the single source of truth:
//   - it prints `--help-config` (key, type, default, range, doc),
//   - a YAML file is checked against it (nested maps are flattened to dotted keys, so
//         model:
//           d_model: 128
//     sets "model.d_model"), and
//   - command-line overrides `--set model.d_model=256` go through the same parser.
// An unknown key (with a did-you-mean suggestion), a value of the wrong type or out of range, a
// scalar where a section was expected and malformed YAML are each an engram::Error naming the
// source (file and line, or the --set argument) and the key.
//
// Values are stored typed (int64, double, bool, string); choices are strings from a fixed list.
// to_yaml() writes the whole resolved config back (it goes into checkpoints and the run dir), and
// reading that text back gives the same config.
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace engram::apps {

enum class FieldType { integer, real, boolean, string, choice };

struct FieldSpec {
  std::string key;      // "model.d_model": a section and a name
  FieldType type = FieldType::string;
  std::string def;      // the default, written as in YAML ("128", "0.003", "true", "crsd")
  std::string doc;      // one line
  double min = -std::numeric_limits<double>::infinity();  // integer/real: inclusive range
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices;  // choice: the allowed values
};

// Shorthands for building a table.
FieldSpec int_field(std::string key, int64_t def, int64_t min, int64_t max, std::string doc);
FieldSpec real_field(std::string key, double def, double min, double max, std::string doc);
FieldSpec bool_field(std::string key, bool def, std::string doc);
FieldSpec string_field(std::string key, std::string def, std::string doc);
FieldSpec choice_field(std::string key, std::string def, std::vector<std::string> choices,
                       std::string doc);

class Schema {
 public:
  Schema(std::string name, std::vector<FieldSpec> fields);  // checks keys and defaults
  const std::string& name() const { return name_; }
  const std::vector<FieldSpec>& fields() const { return fields_; }
  const FieldSpec* find(const std::string& key) const;  // nullptr when unknown
  bool is_section(const std::string& prefix) const;     // some key starts with "prefix."
  std::string closest_key(const std::string& key) const;  // for "did you mean"
  std::string help() const;  // the table printed by --help-config

 private:
  std::string name_;
  std::vector<FieldSpec> fields_;
};

using ConfigValue = std::variant<int64_t, double, bool, std::string>;

class Config {
 public:
  explicit Config(std::shared_ptr<const Schema> schema);  // every field at its default

  // Applies a YAML document; `source` names it in errors ("configs/tiny.yaml").
  void merge_yaml(const std::string& text, const std::string& source);
  void merge_yaml_file(const std::string& path);
  // "key=value", as given to --set (value parsed as a YAML scalar of the field's type).
  void apply_override(const std::string& assignment);
  // Parses and validates `value` for `key`; `source` names where it came from.
  void set(const std::string& key, const std::string& value, const std::string& source);

  int64_t get_int(const std::string& key) const;
  double get_real(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;  // string and choice fields
  std::string value_str(const std::string& key) const;  // any field, as YAML would write it

  std::string to_yaml() const;  // every field, nested by section, in table order
  const Schema& schema() const { return *schema_; }
  const std::shared_ptr<const Schema>& schema_ptr() const { return schema_; }
  // Keys whose values differ between the two configs (same schema).
  std::vector<std::string> diff(const Config& other) const;

 private:
  const ConfigValue& at(const std::string& key, FieldType want) const;
  std::shared_ptr<const Schema> schema_;
  std::map<std::string, ConfigValue> values_;
};

}  // namespace engram::apps
