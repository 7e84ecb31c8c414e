// nn/checkpoint.cpp — see checkpoint.h for the safetensors layout and the checks made on load.
//
// The reader never trusts a number from the file before checking it against the file's real
// size: the header length is capped and must fit, every data range must lie inside the data area,
// and element counts are multiplied with overflow checks. Each bad entry adds a line to one error.
#include "nn/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

namespace engram::nn {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; engram writes host bytes as they are");

static constexpr uint64_t kMaxHeaderBytes = 100u << 20;  // 100 MB: far beyond any real header
static const char* kOptimizerKey = "engram.optimizer";
static const char* kRngKey = "engram.rng";

static const char* safetensors_dtype(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::i64: return "I64";
  }
  return "?";
}

static bool parse_dtype(const std::string& s, DType& out) {
  if (s == "F32") out = DType::f32;
  else if (s == "F64") out = DType::f64;
  else if (s == "I64") out = DType::i64;
  else return false;
  return true;
}

static std::string describe(DType t, const Shape& s) {
  return fmt::format("{} {}", safetensors_dtype(t), shape_str(s));
}

// ---------------------------------------------------------------- writing

// A FILE* that is closed (and its temporary removed) unless the write completes.
struct TempFile {
  std::string target;  // the file this write replaces
  std::string path;    // the temporary the bytes go to first
  FILE* f = nullptr;
  bool committed = false;
  ~TempFile() {
    if (f) std::fclose(f);
    if (!committed) std::remove(path.c_str());
  }
};

// Every failure before the rename leaves `target` as it was: the error says so, because the first
// question after "disk full" during a checkpoint is whether the last good checkpoint survived.
// `err` is errno, taken by the caller before anything here can change it.
[[noreturn]] static void write_failed(const TempFile& tf, const char* what, int err) {
  std::error_code ec;
  const bool previous = std::filesystem::exists(tf.target, ec);
  ENGRAM_FAIL("save_safetensors: {} '{}' failed: {} (in its temporary '{}', now removed); {}",
              what, tf.target, std::strerror(err), tf.path,
              previous ? fmt::format("the previous '{}' is untouched", tf.target)
                       : fmt::format("no '{}' was written", tf.target));
}

static void write_all(TempFile& tf, const void* data, size_t n) {
  if (n > 0 && std::fwrite(data, 1, n, tf.f) != n) write_failed(tf, "writing", errno);
}

void save_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata) {
  // Host copies of every tensor, contiguous, and the header that describes them.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  std::vector<Tensor> host;
  uint64_t offset = 0;
  for (auto& [name, t] : tensors) {
    ENGRAM_CHECK(!name.empty() && name != "__metadata__",
                 "save_safetensors '{}': invalid tensor name '{}'", path, name);
    ENGRAM_CHECK(t.defined(), "save_safetensors '{}': tensor '{}' is undefined", path, name);
    ENGRAM_CHECK(!header.contains(name), "save_safetensors '{}': tensor name '{}' appears twice",
                 path, name);
    Tensor h = raw::contiguous(raw::to_device(t, Device::cpu));
    uint64_t nbytes = uint64_t(h.numel()) * dtype_size(h.dtype());
    header[name] = {{"dtype", safetensors_dtype(h.dtype())},
                    {"shape", h.shape()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    host.push_back(h);
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // e.g. a name or value that is not UTF-8
    ENGRAM_FAIL("save_safetensors '{}': cannot encode the header: {}", path, e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // the data area starts 8-byte aligned
  uint64_t header_len = text.size();

  TempFile tf;
  tf.target = path;
  tf.path = fmt::format("{}.tmp.{}", path, ::getpid());
  tf.f = std::fopen(tf.path.c_str(), "wb");
  if (!tf.f) write_failed(tf, "creating the temporary for", errno);
  write_all(tf, &header_len, 8);
  write_all(tf, text.data(), text.size());
  for (const Tensor& h : host) write_all(tf, h.raw_data(), h.numel() * dtype_size(h.dtype()));
  // Data must be on disk before the rename makes it visible under the real name. A full disk
  // often shows only here, when the buffered bytes finally reach write().
  if (std::fflush(tf.f) != 0 || ::fsync(::fileno(tf.f)) != 0) write_failed(tf, "flushing", errno);
  int rc = std::fclose(tf.f);
  tf.f = nullptr;
  if (rc != 0) write_failed(tf, "closing", errno);
  if (std::rename(tf.path.c_str(), path.c_str()) != 0) write_failed(tf, "renaming the temporary to", errno);
  tf.committed = true;
  // The rename itself lives in the directory: sync it too (best effort: some filesystems refuse).
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

// ---------------------------------------------------------------- reading

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

// Checks one header entry; appends a line to `errors` (and returns false) when it is invalid.
static bool parse_entry(const std::string& name, const nlohmann::json& v, uint64_t data_size,
                        Entry& e, std::vector<std::string>& errors) {
  auto bad = [&](const std::string& why) {
    errors.push_back(fmt::format("'{}': {}", name, why));
    return false;
  };
  if (!v.is_object()) return bad("entry is not a JSON object");
  if (!v.contains("dtype") || !v["dtype"].is_string()) return bad("missing string 'dtype'");
  if (!v.contains("shape") || !v["shape"].is_array()) return bad("missing array 'shape'");
  if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
    return bad("missing 'data_offsets' [begin, end]");
  std::string dt = v["dtype"].get<std::string>();
  if (!parse_dtype(dt, e.dtype)) return bad(fmt::format("dtype '{}' is not one of F32, F64, I64", dt));
  // extent: the product of the sizes with a 0 counted as 1. It bounds numel and every stride of
  // the tensor, so capping it (not only numel) keeps [0, 2^62, 2^62] and [0, 2^63] out: numel 0,
  // but strides that overflow int64 and a size that turns negative (found by fuzzing,
  // tests/fuzz/regressions/safetensors-*).
  uint64_t numel = 1, extent = 1;
  for (const auto& d : v["shape"]) {
    if (!d.is_number_unsigned()) return bad(fmt::format("shape {} holds a non-integer or negative size", v["shape"].dump()));
    uint64_t n = d.get<uint64_t>(), m = std::max<uint64_t>(n, 1);
    if (extent > (uint64_t(1) << 62) / m) return bad(fmt::format("shape {} is too large", v["shape"].dump()));
    extent *= m;
    numel *= n;
    e.shape.push_back(int64_t(n));
  }
  const auto& off = v["data_offsets"];
  if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned())
    return bad(fmt::format("data_offsets {} are not non-negative integers", off.dump()));
  e.begin = off[0].get<uint64_t>();
  e.end = off[1].get<uint64_t>();
  uint64_t nbytes = numel * dtype_size(e.dtype);
  if (e.begin > e.end) return bad(fmt::format("data_offsets [{}, {}] run backwards", e.begin, e.end));
  if (e.end - e.begin != nbytes)
    return bad(fmt::format("shape {} of {} needs {} bytes but data_offsets [{}, {}] hold {}",
                           shape_str(e.shape), dt, nbytes, e.begin, e.end, e.end - e.begin));
  if (e.end > data_size)
    return bad(fmt::format("data_offsets [{}, {}] run past the data area of {} bytes (file truncated?)",
                           e.begin, e.end, data_size));
  e.name = name;
  return true;
}

SafetensorsFile load_safetensors(const std::string& path) {
  std::error_code ec;
  uint64_t file_size = std::filesystem::file_size(path, ec);
  ENGRAM_CHECK(!ec, "load_safetensors: cannot open '{}': {}", path, ec.message());
  struct Closer {
    void operator()(FILE* fp) const { std::fclose(fp); }
  };
  std::unique_ptr<FILE, Closer> f(std::fopen(path.c_str(), "rb"));
  ENGRAM_CHECK(f, "load_safetensors: cannot open '{}': {}", path, std::strerror(errno));
  ENGRAM_CHECK(file_size >= 8, "load_safetensors '{}': file is {} bytes, too short for the 8-byte "
               "header length (truncated or not a safetensors file)", path, file_size);
  uint64_t header_len = 0;
  ENGRAM_CHECK(std::fread(&header_len, 1, 8, f.get()) == 8, "load_safetensors '{}': read failed", path);
  ENGRAM_CHECK(header_len <= kMaxHeaderBytes, "load_safetensors '{}': header length {} exceeds the "
               "{} byte limit (corrupted or not a safetensors file)", path, header_len, kMaxHeaderBytes);
  ENGRAM_CHECK(header_len <= file_size - 8, "load_safetensors '{}': header of {} bytes runs past the "
               "end of the {}-byte file (truncated?)", path, header_len, file_size);
  std::string text(header_len, '\0');
  ENGRAM_CHECK(std::fread(text.data(), 1, header_len, f.get()) == header_len,
               "load_safetensors '{}': reading the {}-byte header failed", path, header_len);
  const uint64_t data_start = 8 + header_len, data_size = file_size - data_start;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    ENGRAM_FAIL("load_safetensors '{}': the header is not valid JSON: {}", path, e.what());
  }
  ENGRAM_CHECK(header.is_object(), "load_safetensors '{}': the header is not a JSON object", path);

  SafetensorsFile out;
  std::vector<std::string> errors;
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) {
        errors.push_back("'__metadata__' is not a JSON object");
        continue;
      }
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (m.value().is_string()) out.metadata[m.key()] = m.value().get<std::string>();
        else errors.push_back(fmt::format("metadata '{}' is not a string", m.key()));
      }
      continue;
    }
    Entry e;
    if (parse_entry(it.key(), it.value(), data_size, e, errors)) entries.push_back(std::move(e));
  }
  // Ranges must not overlap: sorted by begin, each must start at or after the previous end.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < entries.size(); ++i)
    if (entries[i].begin < entries[i - 1].end)
      errors.push_back(fmt::format("'{}' [{}, {}] overlaps '{}' [{}, {}]", entries[i].name,
                                   entries[i].begin, entries[i].end, entries[i - 1].name,
                                   entries[i - 1].begin, entries[i - 1].end));
  ENGRAM_CHECK(errors.empty(), "load_safetensors '{}': invalid header ({} problem{}):\n  {}", path,
               errors.size(), errors.size() == 1 ? "" : "s", fmt::join(errors, "\n  "));

  for (const Entry& e : entries) {
    Tensor t = empty(e.shape, e.dtype);
    uint64_t nbytes = e.end - e.begin;
    if (nbytes > 0) {
      ENGRAM_CHECK(std::fseek(f.get(), long(data_start + e.begin), SEEK_SET) == 0 &&
                       std::fread(t.raw_data(), 1, nbytes, f.get()) == nbytes,
                   "load_safetensors '{}': reading the {} bytes of '{}' failed (file changed "
                   "while reading?)", path, nbytes, e.name);
    }
    out.tensors.emplace_back(e.name, t);
  }
  return out;
}

// ---------------------------------------------------------------- checkpoints

// The tensors a checkpoint of (module, state) holds, by name.
static NamedTensors checkpoint_tensors(const Module& module, const TrainingState& state) {
  NamedTensors all = module.named_parameters();
  for (auto& [name, b] : module.named_buffers())
    if (b.defined()) all.emplace_back(name, b);
  if (state.optimizer) {
    NamedTensors s = state.optimizer->state_tensors("optim");
    all.insert(all.end(), s.begin(), s.end());
  }
  if (state.scaler) {
    NamedTensors s = state.scaler->state_tensors("scaler");
    all.insert(all.end(), s.begin(), s.end());
  }
  return all;
}

static bool starts_with(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}

void save_checkpoint(const std::string& path, const Module& module, const TrainingState& state,
                     const Metadata& metadata) {
  Metadata meta = metadata;
  for (auto& [key, v] : metadata)
    ENGRAM_CHECK(!starts_with(key, "engram."), "save_checkpoint '{}': metadata key '{}' is "
                 "reserved (keys starting with 'engram.' hold engram's own state)", path, key);
  if (!meta.count("format")) meta["format"] = "pt";  // what Hugging Face tools look for
  if (state.optimizer) meta[kOptimizerKey] = state.optimizer->hyperparams_json();
  if (state.rng) meta[kRngKey] = state.rng->state();
  save_safetensors(path, checkpoint_tensors(module, state), meta);
}

LoadReport load_checkpoint(const std::string& path, Module& module, const TrainingState& state,
                           bool strict) {
  SafetensorsFile file = load_safetensors(path);
  LoadReport report;
  report.metadata = file.metadata;

  std::map<std::string, const Tensor*> in_file;
  for (auto& [name, t] : file.tensors) in_file[name] = &t;
  std::map<std::string, bool> used;
  std::vector<std::pair<Tensor, Tensor>> copies;  // (destination, source), made after all checks
  for (auto& [name, dst] : checkpoint_tensors(module, state)) {
    auto it = in_file.find(name);
    if (it == in_file.end()) {
      report.missing_keys.push_back(name);
      continue;
    }
    used[name] = true;
    const Tensor& src = *it->second;
    if (src.shape() != dst.shape() || src.dtype() != dst.dtype()) {
      report.mismatched_keys.push_back(fmt::format("{}: file {}, expected {}", name,
                                                   describe(src.dtype(), src.shape()),
                                                   describe(dst.dtype(), dst.shape())));
      continue;
    }
    copies.emplace_back(dst, src);
  }
  for (auto& [name, t] : file.tensors) {
    if (used.count(name)) continue;
    // Another component's state: only expected when that component is being loaded.
    if ((!state.optimizer && starts_with(name, "optim.")) || (!state.scaler && starts_with(name, "scaler.")))
      continue;
    report.unexpected_keys.push_back(name);
  }
  if (state.optimizer && !file.metadata.count(kOptimizerKey))
    report.missing_keys.push_back(fmt::format("__metadata__.{}", kOptimizerKey));
  if (state.rng && !file.metadata.count(kRngKey))
    report.missing_keys.push_back(fmt::format("__metadata__.{}", kRngKey));

  if (strict && !report.ok()) {
    std::vector<std::string> lines;
    for (auto& k : report.missing_keys) lines.push_back("missing: " + k);
    for (auto& k : report.unexpected_keys) lines.push_back("unexpected: " + k);
    for (auto& k : report.mismatched_keys) lines.push_back("mismatched: " + k);
    ENGRAM_FAIL("load_checkpoint '{}': {} problem{} (nothing was loaded):\n  {}", path, lines.size(),
                lines.size() == 1 ? "" : "s", fmt::join(lines, "\n  "));
  }

  try {
    if (state.optimizer && file.metadata.count(kOptimizerKey))
      state.optimizer->load_hyperparams_json(file.metadata.at(kOptimizerKey));
    if (state.rng && file.metadata.count(kRngKey)) state.rng->set_state(file.metadata.at(kRngKey));
  } catch (const Error& e) {
    ENGRAM_FAIL("load_checkpoint '{}': {}", path, e.what());
  }
  NoGradGuard no_grad;
  for (auto& [dst, src] : copies)
    raw::copy_(dst, dst.device() == Device::cpu ? src : raw::to_device(src, dst.device()));
  return report;
}

}  // namespace engram::nn
