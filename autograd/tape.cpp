// autograd/tape.cpp — see tape.h for the algorithm.
#include "autograd/tape.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <set>
#include <unordered_map>

#include "core/backend.h"

namespace engram {

Tape& tape() {
  thread_local Tape t;
  return t;
}

static thread_local bool g_grad_enabled = true;
// Thread-local like grad mode and the tape itself: a guard on one thread never races another.
static thread_local bool g_anomaly = false;
bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }
void set_anomaly_mode(bool on) { g_anomaly = on; }
bool anomaly_mode() { return g_anomaly; }

static std::atomic<bool> g_op_name_log{false};
static std::mutex g_op_name_mutex;
static std::set<std::string>& op_name_log() {
  static std::set<std::string> names;
  return names;
}
void set_op_name_log(bool on) { g_op_name_log = on; }
std::vector<std::string> logged_op_names() {
  std::lock_guard<std::mutex> lock(g_op_name_mutex);
  return {op_name_log().begin(), op_name_log().end()};
}

static bool all_finite(const Tensor& t) {
  if (!is_floating(t.dtype())) return true;
  for (double v : t.to_vector<double>())
    if (!std::isfinite(v)) return false;
  return true;
}

bool needs_record(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record(const char* name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
            BackwardFn backward_fn) {
  if (g_anomaly)
    for (const Tensor& o : outputs)
      ENGRAM_CHECK(!o.defined() || all_finite(o),
                   "anomaly: op '{}' produced NaN/Inf in its output of shape {}", name,
                   shape_str(o.shape()));
  if (!needs_record(inputs)) return;
  if (g_op_name_log) {
    std::lock_guard<std::mutex> lock(g_op_name_mutex);
    op_name_log().insert(name);
  }
  Tape& tp = tape();
  Node node{name, {}, {}, {}, std::move(backward_fn), {}};
  for (const Tensor& t : inputs) {
    Node::Input in;
    if (t.defined()) {
      const TensorImpl* impl = t.impl();
      in.defined = true;
      in.requires_grad = impl->requires_grad;
      if (impl->is_leaf && impl->requires_grad) in.leaf = t;
      if (!impl->is_leaf) in.node = impl->tape_node, in.slot = impl->tape_slot, in.epoch = impl->tape_epoch;
      in.shape = impl->shape;
      in.dtype = impl->dtype;
      in.storage = impl->storage;
    }
    node.inputs.push_back(std::move(in));
    node.versions.push_back(t.defined() ? t.storage()->version : 0);
  }
  for (const Tensor& t : outputs) node.versions.push_back(t.defined() ? t.storage()->version : 0);
  for (size_t k = 0; k < outputs.size(); ++k) {
    const Tensor& o = outputs[k];
    node.outputs.push_back(o.impl_ptr());
    node.output_meta.push_back(o.defined() ? Node::OutputMeta{o.shape(), o.dtype(), o.device()}
                                           : Node::OutputMeta{{}, DType::f32, Device::cpu});
    if (!o.defined() || !is_floating(o.dtype())) continue;
    o.impl()->requires_grad = true;
    o.impl()->is_leaf = false;
    o.impl()->tape_node = (int64_t)tp.nodes.size();
    o.impl()->tape_slot = (int)k;
    o.impl()->tape_epoch = tp.epoch;
  }
  tp.nodes.push_back(std::move(node));
}

void record1(const char* name, const std::vector<Tensor>& inputs, const Tensor& output,
             std::function<std::vector<Tensor>(const Tensor& dy)> backward_fn) {
  record(name, inputs, {output},
         [fn = std::move(backward_fn)](const std::vector<Tensor>& g) { return fn(g[0]); });
}

Tensor unbroadcast(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  // Sum away leading dims, then dims that were 1 in `shape`.
  Shape keep(g.dim(), 1);
  int64_t lead = g.dim() - (int64_t)shape.size();
  ENGRAM_CHECK(lead >= 0, "unbroadcast: gradient {} has fewer dims than input {}",
               shape_str(g.shape()), shape_str(shape));
  for (int64_t d = lead; d < g.dim(); ++d) {
    // Each dim must match or have been broadcast from 1: a gradient of another shape with the
    // same element count ([4, 3] for a [3, 4] input) is a backward bug, never reinterpreted.
    ENGRAM_CHECK(shape[d - lead] == g.shape()[d] || shape[d - lead] == 1,
                 "unbroadcast: gradient of shape {} does not broadcast to input shape {} (dim {})",
                 shape_str(g.shape()), shape_str(shape), d - lead);
    keep[d] = shape[d - lead] == 1 ? 1 : g.shape()[d];
  }
  Tensor red = empty(keep, g.dtype(), g.device());
  backend(g.device()).reduce(ReduceOp::sum, g, red);
  return raw::view(red, shape);
}

// True when t's elements fill its storage exactly once in some order of its dims (a contiguous
// tensor, or a transpose/permutation of one): in-place adds into it touch nothing else.
static bool dense_permutation(const Tensor& t) {
  std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, size) of the dims that move
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.shape()[d] != 1) dims.emplace_back(t.strides()[d], t.shape()[d]);
  std::sort(dims.begin(), dims.end());
  int64_t expect = 1;
  for (auto [stride, size] : dims) {
    if (stride != expect) return false;
    expect *= size;
  }
  return t.offset() == 0 && size_t(expect) * dtype_size(t.dtype()) == t.storage()->nbytes;
}

// acc += g (in place), or acc = a private copy of g on first use. `layout_free`: acc is a
// pass-local gradient of an intermediate tensor, which may keep g's layout (a transposed
// gradient, e.g. Linear's dW^T, is adopted as it is and transposed back by the next backward);
// a leaf's .grad must be contiguous (optimizers read it as a flat array).
static void accumulate_into(std::shared_ptr<TensorImpl>& acc, const Tensor& g_in, const Shape& shape,
                            DType dtype, bool layout_free = false) {
  Tensor g = unbroadcast(g_in, shape);
  if (g.dtype() != dtype) g = raw::to_dtype(g, dtype);
  if (!acc) {
    // Own the buffer. A fresh gradient that nothing else can see (its storage has no other view,
    // its handle is held only by the caller's list and here) is adopted as is; anything else may
    // alias another gradient or a saved value and is copied.
    const bool layout_ok = g.is_contiguous() || (layout_free && dense_permutation(g));
    bool exclusive = layout_ok && g.storage().use_count() == 1 && g.impl_ptr().use_count() <= 2;
    acc = (exclusive ? raw::as_strided(g, g.shape(), g.strides(), g.offset()) : raw::clone(g)).impl_ptr();
    return;
  }
  Tensor a(acc);
  backend(a.device()).binary(BinaryOp::add, a, g, a);
}

// An input or output of `node` written in place since the op ran would feed its backward values
// the forward never saw: a silently wrong gradient. Refuse, naming the op and the tensor.
static void check_versions(const Node& node) {
  auto check = [&](const Storage* s, size_t k, const char* what, size_t i, const Shape& shape) {
    ENGRAM_CHECK(s == nullptr || s->version == node.versions[k],
                 "backward: {} {} (shape {}) of op '{}' was modified in place after the op ran "
                 "(version {} -> {}), so its gradient would be wrong; clone() it before changing "
                 "it, or run backward first",
                 what, i, shape_str(shape), node.name, node.versions[k], s->version);
  };
  for (size_t i = 0; i < node.inputs.size(); ++i)
    if (auto st = node.inputs[i].storage.lock())  // freed: nothing can have written it
      check(st.get(), i, "input", i, node.inputs[i].shape);
  for (size_t i = 0; i < node.outputs.size(); ++i)
    if (auto o = node.outputs[i].lock(); o && o->storage)
      check(o->storage.get(), node.inputs.size() + i, "output", i, o->shape);
}

void backward(const Tensor& root, const Tensor& grad, bool retain_graph) {
  backward(root, grad, retain_graph, {});
}

void backward(const Tensor& root, const Tensor& grad, bool retain_graph,
              const std::function<void(int64_t)>& nodes_done) {
  NoGradGuard no_grad;  // backward formulas are not themselves recorded
  Tape& tp = tape();
  ENGRAM_CHECK(root.requires_grad(),
               "backward: the tensor does not require grad (no input of its graph requires_grad)");
  Tensor seed = grad;
  if (!seed.defined()) {
    ENGRAM_CHECK(root.numel() == 1, "backward: grad must be given for a non-scalar root of shape {}",
                 shape_str(root.shape()));
    seed = ones(root.shape(), root.dtype(), root.device());
  }
  ENGRAM_CHECK(seed.shape() == root.shape(), "backward: grad shape {} != root shape {}",
               shape_str(seed.shape()), shape_str(root.shape()));
  TensorImpl* r = root.impl();
  if (r->is_leaf) {
    accumulate_into(r->grad, seed, r->shape, r->dtype);
    if (nodes_done) nodes_done(0);
    return;
  }
  auto stale = [&](int64_t node, uint64_t epoch) {
    return epoch != tp.epoch || node < 0 || node >= (int64_t)tp.nodes.size();
  };
  ENGRAM_CHECK(!stale(r->tape_node, r->tape_epoch), "backward: the graph of this tensor was "
               "already freed (backward called twice, or the tape was cleared); run the forward "
               "again");

  // Gradients of non-leaf tensors live only for this pass (PyTorch semantics): a retained .grad
  // from an earlier pass is reported, never propagated again. Leaves accumulate into .grad. The
  // pass's gradients are kept per (node, output slot), so they need no tensor to stay alive.
  std::vector<std::vector<std::shared_ptr<TensorImpl>>> pass(size_t(r->tape_node) + 1);
  auto pass_slot = [&](int64_t node, int slot) -> std::shared_ptr<TensorImpl>& {
    auto& outs = pass[size_t(node)];
    if (outs.empty()) outs.resize(tp.nodes[size_t(node)].outputs.size());
    return outs[size_t(slot)];
  };
  accumulate_into(pass_slot(r->tape_node, r->tape_slot), seed, r->shape, r->dtype, true);

  for (int64_t i = r->tape_node; i >= 0; --i) {
    if (nodes_done && i < r->tape_node) nodes_done(i + 1);  // nodes i+1.. have all run
    Node& node = tp.nodes[i];
    std::vector<std::shared_ptr<TensorImpl>>& outs = pass[size_t(i)];
    bool any = false;
    for (const auto& g : outs) any = any || g != nullptr;
    if (!any) continue;
    std::vector<Tensor> gouts(node.outputs.size());
    for (size_t k = 0; k < node.outputs.size(); ++k) {  // zeros for outputs nobody used
      const Node::OutputMeta& m = node.output_meta[k];
      gouts[k] = outs[k] ? Tensor(outs[k]) : zeros(m.shape, m.dtype, m.device);
    }
    check_versions(node);
    std::vector<Tensor> gins = node.backward(gouts);
    ENGRAM_CHECK(gins.size() == node.inputs.size(), "backward of '{}' returned {} grads for {} inputs",
                 node.name, gins.size(), node.inputs.size());
    for (size_t k = 0; k < gins.size(); ++k) {
      const Node::Input& in = node.inputs[k];
      if (!in.defined || !gins[k].defined()) continue;
      const bool leaf = in.node < 0;
      if (leaf ? !(in.leaf.defined() && in.leaf.requires_grad()) : !in.requires_grad) continue;
      if (g_anomaly)
        ENGRAM_CHECK(all_finite(gins[k]), "anomaly: backward of op '{}' produced NaN/Inf in the "
                     "gradient of input {} (shape {})", node.name, k, shape_str(in.shape));
      if (leaf) {
        TensorImpl* t = in.leaf.impl();
        accumulate_into(t->grad, gins[k], t->shape, t->dtype);
        continue;
      }
      // A non-leaf input whose producing node is gone would silently stop the gradient here.
      ENGRAM_CHECK(!stale(in.node, in.epoch), "backward: op '{}' uses a tensor of shape {} whose "
                   "graph was already freed by an earlier backward; detach() it if it is a "
                   "carried state, or pass retain_graph=true to the first backward",
                   node.name, shape_str(in.shape));
      accumulate_into(pass_slot(in.node, in.slot), gins[k], in.shape, in.dtype, true);
    }
    // This node's outputs are complete: report retained grads, free the pass-local ones.
    gouts.clear();
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      if (!outs[k]) continue;
      auto o = node.outputs[k].lock();
      if (o && o->retain_grad) accumulate_into(o->grad, Tensor(outs[k]), o->shape, o->dtype);
    }
    outs.clear();
    outs.shrink_to_fit();
  }
  if (nodes_done) nodes_done(0);
  if (!retain_graph) tp.clear();
}

Tensor detach(const Tensor& t) { return raw::as_strided(t, t.shape(), t.strides(), t.offset()); }

void zero_grad(const std::vector<Tensor>& params) {
  for (const Tensor& p : params) p.impl()->grad.reset();
}

}  // namespace engram
