// nn/module.cpp — see module.h.
#include "nn/module.h"

namespace engram::nn {

static std::string join_name(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

Tensor& Module::register_parameter(const std::string& name, Tensor t) {
  ENGRAM_CHECK(t.defined(), "{}: parameter '{}' is undefined", type_name(), name);
  for (auto& [n, p] : params_) ENGRAM_CHECK(n != name, "{}: parameter '{}' registered twice", type_name(), name);
  if (!t.requires_grad()) t.requires_grad_(true);
  params_.emplace_back(name, std::make_unique<Tensor>(t));
  return *params_.back().second;
}

Tensor& Module::register_buffer(const std::string& name, Tensor t) {
  buffers_.emplace_back(name, std::make_unique<Tensor>(t));
  return *buffers_.back().second;
}

NamedTensors Module::named_parameters(const std::string& prefix) const {
  NamedTensors out;
  for (auto& [n, p] : params_) out.emplace_back(join_name(prefix, n), *p);
  for (auto& [n, c] : children_) {
    NamedTensors sub = c->named_parameters(join_name(prefix, n));
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, p] : named_parameters()) out.push_back(p);
  return out;
}

NamedTensors Module::named_buffers(const std::string& prefix) const {
  NamedTensors out;
  for (auto& [n, b] : buffers_) out.emplace_back(join_name(prefix, n), *b);
  for (auto& [n, c] : children_) {
    NamedTensors sub = c->named_buffers(join_name(prefix, n));
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, p] : named_parameters()) n += p.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
}

void Module::zero_grad() {
  for (auto& [n, p] : named_parameters()) p.impl()->grad.reset();
}

// Converted in place: the TensorImpl keeps its identity and gets new storage, so every handle a
// module holds to its parameters (weight, bias) sees the converted tensor.
void convert_in_place(Tensor& t, Device device, std::optional<DType> dtype) {
  Tensor moved = raw::to_device(t, device);
  if (dtype) moved = raw::to_dtype(moved, *dtype);
  if (moved.same(t)) return;
  moved = raw::contiguous(moved);
  TensorImpl* impl = t.impl();
  impl->storage = moved.storage();
  impl->dtype = moved.dtype();
  impl->strides = moved.strides();
  impl->offset = moved.offset();
  impl->grad.reset();
}

void Module::to(Device device) {
  for (auto& [n, p] : params_) convert_in_place(*p, device, std::nullopt);
  for (auto& [n, b] : buffers_) convert_in_place(*b, device, std::nullopt);
  for (auto& [n, c] : children_) c->to(device);
}

void Module::to(DType dtype) {
  for (auto& [n, p] : params_) convert_in_place(*p, p->device(), dtype);
  for (auto& [n, b] : buffers_)
    if (is_floating(b->dtype())) convert_in_place(*b, b->device(), dtype);
  for (auto& [n, c] : children_) c->to(dtype);
}

void Module::summary_lines(const std::string& name, int depth, std::vector<std::string>& lines) const {
  int64_t own = 0;
  for (auto& [n, p] : params_) own += p->numel();
  std::string line = fmt::format("{:{}}{}{}({})", "", depth * 2, name.empty() ? "" : name + ": ",
                                 type_name(), extra_repr());
  if (has_output_shape_) line += fmt::format("  -> {}", shape_str(last_output_shape_));
  int64_t total = num_parameters();
  if (total > 0) line += fmt::format("  params={}", total);
  lines.push_back(line);
  (void)own;
  for (auto& [n, c] : children_) c->summary_lines(n, depth + 1, lines);
}

std::string Module::summary() const {
  std::vector<std::string> lines;
  summary_lines("", 0, lines);
  int64_t trainable = 0;
  for (auto& [n, p] : named_parameters()) trainable += p.numel();
  lines.push_back(fmt::format("total parameters: {}", trainable));
  return fmt::format("{}", fmt::join(lines, "\n"));
}

Sequential::Sequential(std::vector<std::shared_ptr<UnaryModule>> layers) {
  for (auto& l : layers) add(l);
}

Sequential& Sequential::add(std::shared_ptr<UnaryModule> layer) {
  register_module(std::to_string(layers_.size()), layer);
  layers_.push_back(std::move(layer));
  return *this;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (auto& l : layers_) h = l->forward(h);
  return note_output(h);
}

}  // namespace engram::nn
