// autograd/golden.cpp — loads tests/golden/ops.json and replays it through the registry (see
// golden.h for the pipeline). A sample passes when the f32 output and every f32 gradient agree
// with PyTorch elementwise: |engram - torch| <= atol + rtol * |torch|. Also find_file, which every
// golden-reading suite uses to locate its file under tests/golden/.
#include "autograd/golden.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

#include "autograd/ops.h"

namespace engram::golden {

using json = nlohmann::json;

json tensor_to_json(const Tensor& t) {
  json j;
  j["shape"] = t.shape();
  j["dtype"] = std::string(dtype_name(t.dtype()));
  if (t.dtype() == DType::i64)
    j["data"] = t.to_vector<int64_t>();
  else
    j["data"] = t.to_vector<double>();  // an f32 value widened to double is exact
  return j;
}

static DType parse_dtype(const std::string& s) {
  if (s == "f32") return DType::f32;
  if (s == "f64") return DType::f64;
  if (s == "i64") return DType::i64;
  ENGRAM_FAIL("golden: unknown dtype '{}'", s);
}

Tensor tensor_from_json(const json& j, DType fallback) {
  Shape shape = j.at("shape").get<Shape>();
  DType dt = j.contains("dtype") ? parse_dtype(j["dtype"].get<std::string>()) : fallback;
  const json& data = j.at("data");
  ENGRAM_CHECK((int64_t)data.size() == shape_numel(shape),
               "golden: {} values for shape {}", data.size(), shape_str(shape));
  if (dt == DType::i64) return from_vector<int64_t>(data.get<std::vector<int64_t>>(), shape);
  return from_vector(data.get<std::vector<double>>(), shape, dt);
}

const OpGolden* File::find(const std::string& name) const {
  for (const OpGolden& op : ops)
    if (op.name == name) return &op;
  return nullptr;
}

std::filesystem::path find_file(const std::string& name) {
  namespace fs = std::filesystem;
  if (const char* dir = std::getenv("ENGRAM_GOLDEN_DIR"); dir && *dir) {
    fs::path p = fs::path(dir) / name;
    std::error_code ec;
    ENGRAM_CHECK(fs::exists(p, ec), "golden file {} not found in ENGRAM_GOLDEN_DIR={} ({} does "
                 "not exist)", name, dir, p.string());
    return p;
  }
  const fs::path rel = fs::path("tests") / "golden" / name;
  std::vector<fs::path> starts;
  std::error_code ec;
  if (fs::path cwd = fs::current_path(ec); !ec) starts.push_back(cwd);
  if (fs::path exe = fs::read_symlink("/proc/self/exe", ec); !ec)
    starts.push_back(exe.parent_path());
  for (fs::path dir : starts)
    for (; !dir.empty(); dir = dir.parent_path()) {
      if (fs::exists(dir / rel, ec)) return dir / rel;
      if (dir == dir.parent_path()) break;
    }
  std::vector<std::string> where;
  for (const fs::path& s : starts) where.push_back(s.string());
  ENGRAM_FAIL("golden file {} not found: no {} in {} or any parent (run from the repository root, "
              "or set ENGRAM_GOLDEN_DIR to the folder holding it)", name, rel.string(),
              fmt::join(where, " or "));
}

json load_json(const std::string& name) {
  std::filesystem::path path = find_file(name);
  std::ifstream f(path);
  try {
    return json::parse(f);
  } catch (const json::exception& e) {
    ENGRAM_FAIL("{}: not valid JSON: {}", path.string(), e.what());
  }
}

std::string default_path() {
  try {
    return find_file("ops.json").string();
  } catch (const Error&) {  // load() then reports the missing file and how to make it
    const char* dir = std::getenv("ENGRAM_GOLDEN_DIR");
    return dir && *dir ? (std::filesystem::path(dir) / "ops.json").string()
                       : "tests/golden/ops.json";
  }
}

File load(const std::string& path) {
  std::ifstream f(path);
  ENGRAM_CHECK(f.good(),
               "golden file {} not found (set ENGRAM_GOLDEN_DIR or run `make golden`, which needs "
               "/usr/bin/python3 with torch)", path);
  json j;
  try {
    j = json::parse(f);
  } catch (const json::exception& e) {
    ENGRAM_FAIL("golden file {} is not valid JSON ({}): run `make golden`", path, e.what());
  }
  File file;
  file.path = path;
  try {
    file.torch_version = j.value("torch_version", std::string("?"));
    for (const json& jo : j.at("ops")) {
      OpGolden op;
      op.name = jo.at("name").get<std::string>();
      for (const json& js : jo.at("samples")) {
        Sample s;
        s.label = js.at("label").get<std::string>();
        if (js.contains("params") && js["params"].is_object()) s.params = js["params"];
        for (const json& ji : js.at("inputs")) {
          s.inputs.push_back(tensor_from_json(ji));
          s.differentiable.push_back(ji.value("differentiable", false));
        }
        s.upstream = tensor_from_json(js.at("upstream"));
        s.output = tensor_from_json(js.at("output"));
        const json& jg = js.at("grads");
        ENGRAM_CHECK(jg.size() == s.inputs.size(), "{} grads for {} inputs", jg.size(),
                     s.inputs.size());
        for (const json& g : jg) s.grads.push_back(g.is_null() ? Tensor() : tensor_from_json(g));
        op.samples.push_back(std::move(s));
      }
      file.ops.push_back(std::move(op));
    }
  } catch (const json::exception& e) {
    ENGRAM_FAIL("golden file {} is malformed ({}): run `make golden`", path, e.what());
  } catch (const Error& e) {
    ENGRAM_FAIL("golden file {} is malformed ({}): run `make golden`", path, e.what());
  }
  return file;
}

namespace {

std::string index_str(int64_t k, const Shape& shape) {
  if (shape.empty()) return "()";
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = k % shape[d];
    k /= shape[d];
  }
  return fmt::format("({})", fmt::join(idx, ", "));
}

// Folds the elementwise comparison of `got` (engram) with `want` (torch) into r.
void compare_tensor(const Tensor& got, const Tensor& want, const std::string& what, double atol,
                    double rtol, Result& r) {
  if (got.shape() != want.shape()) {
    r.worst_score = std::numeric_limits<double>::infinity();
    r.worst = fmt::format("{}: engram shape {} vs torch shape {}", what, shape_str(got.shape()),
                          shape_str(want.shape()));
    r.ok = false;
    return;
  }
  std::vector<double> a = got.to_vector<double>(), b = want.to_vector<double>();
  for (size_t k = 0; k < a.size(); ++k) {
    double diff = std::abs(a[k] - b[k]);
    double tol = atol + rtol * std::abs(b[k]);
    double score;
    if (std::isnan(a[k]) || std::isnan(b[k]))
      score = std::isnan(a[k]) && std::isnan(b[k]) ? 0 : std::numeric_limits<double>::infinity();
    else if (a[k] == b[k])
      score = 0;  // equal infinities too
    else
      score = tol > 0 ? diff / tol : std::numeric_limits<double>::infinity();
    if (std::isfinite(diff)) {
      r.max_abs_err = std::max(r.max_abs_err, diff);
      r.max_rel_err = std::max(r.max_rel_err, diff / std::max(std::abs(b[k]), 1e-12));
    }
    if (score > r.worst_score || (r.worst.empty() && k == 0)) {
      r.worst_score = std::max(score, r.worst_score);
      r.worst = fmt::format("{} {} at {}: engram {:.9g} vs torch {:.9g} (|diff| {:.3g}, allowed "
                            "atol {:g} + rtol {:g} * |torch| = {:.3g})",
                            what, shape_str(want.shape()), index_str((int64_t)k, want.shape()),
                            a[k], b[k], diff, atol, rtol, tol);
    }
    if (!(score <= 1)) r.ok = false;
  }
}

}  // namespace

Result compare_sample(const OpInfo& op, const Sample& s) {
  Result r;
  r.samples = 1;
  auto where = [&] { return fmt::format("op '{}' sample '{}'", op.name, s.label); };
  try {
    std::vector<Tensor> in;
    bool any_grad = false;
    for (size_t i = 0; i < s.inputs.size(); ++i) {
      Tensor t = raw::clone(s.inputs[i]);
      if (s.differentiable[i]) {
        t.requires_grad_(true);
        any_grad = true;
      }
      in.push_back(t);
    }
    tape().clear();
    Tensor y = op.fn(in, s.params);
    compare_tensor(y, s.output, "output", op.golden_atol, op.golden_rtol, r);
    if (any_grad && r.worst_score != std::numeric_limits<double>::infinity()) {
      ENGRAM_CHECK(y.requires_grad(), "the output does not require grad (no backward recorded)");
      ENGRAM_CHECK(s.upstream.shape() == y.shape(), "upstream shape {} vs output shape {}",
                   shape_str(s.upstream.shape()), shape_str(y.shape()));
      backward(y, raw::to_dtype(s.upstream, y.dtype()));
      for (size_t i = 0; i < in.size(); ++i) {
        if (!s.differentiable[i]) continue;
        ENGRAM_CHECK(s.grads[i].defined(), "torch stored no gradient for differentiable input {}", i);
        Tensor g = in[i].grad();
        if (!g.defined()) g = zeros(in[i].shape(), in[i].dtype());
        compare_tensor(g, s.grads[i], fmt::format("grad of input {}", i), op.golden_atol,
                       op.golden_rtol, r);
      }
    }
    tape().clear();
  } catch (const std::exception& e) {
    tape().clear();
    r.ok = false;
    r.worst_score = std::numeric_limits<double>::infinity();
    r.worst = fmt::format("error: {}", e.what());
  }
  r.worst = fmt::format("{}: {}", where(), r.worst);
  if (!r.ok) r.message = r.worst;
  return r;
}

Result compare_op(const OpInfo& op, const OpGolden& g) {
  Result total;
  for (const Sample& s : g.samples) {
    Result r = compare_sample(op, s);
    total.samples += r.samples;
    total.max_abs_err = std::max(total.max_abs_err, r.max_abs_err);
    total.max_rel_err = std::max(total.max_rel_err, r.max_rel_err);
    if (r.worst_score > total.worst_score || total.worst.empty()) {
      total.worst_score = r.worst_score;
      total.worst = r.worst;
    }
    if (!r.ok && total.ok) {
      total.ok = false;
      total.message = r.message;
    }
  }
  if (g.samples.empty()) {
    total.ok = false;
    total.message = fmt::format("op '{}' has no golden samples: run `make golden`", op.name);
  }
  return total;
}

std::string stale_reason(const OpInfo& op, const OpGolden& g) {
  Generator gen(42);
  std::vector<OpSample> samples = op.samples(gen);
  if (samples.size() != g.samples.size())
    return fmt::format("the registry has {} samples, the golden {}", samples.size(),
                       g.samples.size());
  for (size_t k = 0; k < samples.size(); ++k) {
    const OpSample& s = samples[k];
    const Sample& gs = g.samples[k];
    if (s.label != gs.label)
      return fmt::format("sample {} is '{}' in the registry, '{}' in the golden", k, s.label,
                         gs.label);
    if (s.params != gs.params)
      return fmt::format("sample '{}' has params {} in the registry, {} in the golden", s.label,
                         s.params.dump(), gs.params.dump());
    if (s.inputs.size() != gs.inputs.size())
      return fmt::format("sample '{}' has {} inputs in the registry, {} in the golden", s.label,
                         s.inputs.size(), gs.inputs.size());
    for (size_t i = 0; i < s.inputs.size(); ++i) {
      const Tensor& t = s.inputs[i];
      if (t.shape() != gs.inputs[i].shape() || s.differentiable[i] != gs.differentiable[i])
        return fmt::format("sample '{}' input {} is {}{} in the registry, {}{} in the golden",
                           s.label, i, shape_str(t.shape()),
                           s.differentiable[i] ? "" : " (not differentiable)",
                           shape_str(gs.inputs[i].shape()),
                           gs.differentiable[i] ? "" : " (not differentiable)");
      // The golden holds the registry's values rounded to f32 (indices as they are).
      Tensor r = is_floating(t.dtype()) ? raw::to_dtype(t, DType::f32) : t;
      if (r.dtype() != gs.inputs[i].dtype() ||
          r.to_vector<double>() != gs.inputs[i].to_vector<double>())
        return fmt::format("sample '{}' input {} holds other values than the registry's",
                           s.label, i);
    }
  }
  return "";
}

}  // namespace engram::golden
