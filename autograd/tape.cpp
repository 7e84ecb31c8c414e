// autograd/tape.cpp — see tape.h for the algorithm.
#include "autograd/tape.h"

#include <cmath>

#include "core/backend.h"

namespace engram {

Tape& tape() {
  thread_local Tape t;
  return t;
}

static thread_local bool g_grad_enabled = true;
static bool g_anomaly = false;
bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }
void set_anomaly_mode(bool on) { g_anomaly = on; }
bool anomaly_mode() { return g_anomaly; }

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
  Tape& tp = tape();
  Node node{name, inputs, {}, std::move(backward_fn)};
  for (const Tensor& o : outputs) {
    node.outputs.push_back(o.impl_ptr());
    if (!o.defined() || !is_floating(o.dtype())) continue;
    o.impl()->requires_grad = true;
    o.impl()->is_leaf = false;
    o.impl()->tape_node = (int64_t)tp.nodes.size();
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
  for (int64_t d = lead; d < g.dim(); ++d) keep[d] = shape[d - lead] == 1 ? 1 : g.shape()[d];
  Tensor red = empty(keep, g.dtype(), g.device());
  backend(g.device()).reduce(ReduceOp::sum, g, red);
  return raw::view(red, shape);
}

// grad += g, allocating the grad on first use.
static void accumulate(TensorImpl* t, const Tensor& g_in) {
  Tensor g = unbroadcast(g_in, t->shape);
  if (g.dtype() != t->dtype) g = raw::to_dtype(g, t->dtype);
  if (!t->grad) {
    // Own the buffer: g may alias another tensor's grad or a saved value.
    t->grad = raw::clone(g).impl_ptr();
    return;
  }
  Tensor acc(t->grad);
  backend(acc.device()).binary(BinaryOp::add, acc, g, acc);
}

void backward(const Tensor& root, const Tensor& grad, bool retain_graph) {
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
  if (root.is_leaf()) {
    accumulate(root.impl(), seed);
    return;
  }
  ENGRAM_CHECK(root.impl()->tape_epoch == tp.epoch && root.impl()->tape_node >= 0 &&
                   root.impl()->tape_node < (int64_t)tp.nodes.size(),
               "backward: the graph of this tensor was already freed (backward called twice, or "
               "the tape was cleared); run the forward again");
  accumulate(root.impl(), seed);

  for (int64_t i = root.impl()->tape_node; i >= 0; --i) {
    Node& node = tp.nodes[i];
    std::vector<Tensor> gouts(node.outputs.size());
    bool any = false;
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      auto o = node.outputs[k].lock();
      if (o && o->grad) {
        gouts[k] = Tensor(o->grad);
        any = true;
      }
    }
    if (!any) continue;
    for (size_t k = 0; k < node.outputs.size(); ++k) {  // zeros for outputs nobody used
      auto o = node.outputs[k].lock();
      if (!gouts[k].defined() && o) gouts[k] = zeros(o->shape, o->dtype, o->storage->device);
    }
    std::vector<Tensor> gins = node.backward(gouts);
    ENGRAM_CHECK(gins.size() == node.inputs.size(), "backward of '{}' returned {} grads for {} inputs",
                 node.name, gins.size(), node.inputs.size());
    for (size_t k = 0; k < gins.size(); ++k) {
      const Tensor& in = node.inputs[k];
      if (!in.defined() || !in.requires_grad() || !gins[k].defined()) continue;
      if (g_anomaly)
        ENGRAM_CHECK(all_finite(gins[k]), "anomaly: backward of op '{}' produced NaN/Inf in the "
                     "gradient of input {} (shape {})", node.name, k, shape_str(in.shape()));
      accumulate(in.impl(), gins[k]);
    }
    for (auto& w : node.outputs)
        if (auto o = w.lock(); o && !o->is_leaf && !o->retain_grad) o->grad.reset();
  }
  if (!retain_graph) tp.clear();
}

Tensor detach(const Tensor& t) { return raw::as_strided(t, t.shape(), t.strides(), t.offset()); }

void zero_grad(const std::vector<Tensor>& params) {
  for (const Tensor& p : params) p.impl()->grad.reset();
}

}  // namespace engram
