// tests/fuzz/fuzz_config.cpp — fuzzes the YAML config loader and validator (apps/common/config.cpp):
// yaml-cpp's parser, the flattening of sections to dotted keys, unknown keys and their
// did-you-mean search, duplicates, and the typed parsing and range checks of every field type.
// The input is a YAML document given to Config::merge_yaml (the in-memory form of
// merge_yaml_file), against a schema with one field of each type; then each of its lines is given
// to apply_override as a `--set` would be. An accepted config must keep config.h's promise that
// reading to_yaml()'s text back gives the same config.
#include "apps/common/config.h"
#include "tests/fuzz/fuzz_config_schema.h"
#include "tests/fuzz/fuzz_util.h"

using namespace engram;
using namespace engram::apps;

static std::shared_ptr<const Schema> schema() { return fuzz_config_schema(); }

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size), source = "fuzz.yaml";
  Config cfg(schema());
  try {
    cfg.merge_yaml(text, source);
    Config back(schema());
    back.merge_yaml(cfg.to_yaml(), "to_yaml");
    if (!back.diff(cfg).empty()) {
      std::fprintf(stderr, "fuzz: to_yaml does not read back; differs in %s\n%s",
                   back.diff(cfg).front().c_str(), cfg.to_yaml().c_str());
      std::abort();
    }
  } catch (const Error& e) {
    fuzz::check_names_source(e, source);
  }
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    const std::string line = text.substr(start, nl - start);
    start = nl + 1;
    try {
      cfg.apply_override(line);
    } catch (const Error& e) {
      fuzz::check_names_source(e, "--set");
    }
  }
  return 0;
}
