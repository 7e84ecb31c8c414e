// autograd/tape.h — the tape: reverse-mode autodiff as one backwards loop.
//
// Every differentiable op, when grad mode is on and some input requires a gradient, appends a
// Node naming its inputs, (weak references to) its outputs, and a closure computing the inputs'
// gradients from the outputs' gradients. A node holds only the leaves among its inputs (whose
// .grad it fills); any other input is named by the node and output slot that produced it, and
// the closure captures exactly the values its backward reads. So an intermediate tensor that no
// backward needs (a matmul's output before its bias add, a sum's input) is freed as soon as the
// forward drops it, not kept until backward: PyTorch's graph works the same way. The tape is in execution order, which is already a
// topological order, so backward(loss) is:
//
//     loss.grad = 1
//     for node in reversed(tape):
//         if no output of node has a grad: continue
//         grads = node.backward(output grads)
//         for (input, g) in zip(node.inputs, grads): input.grad += unbroadcast(g, input.shape)
//     clear the tape
//
// `unbroadcast` sums g over the dims an input was broadcast along, so op backwards can return
// gradients in the broadcast output shape (and rejects a gradient whose dims do not broadcast to
// the input's, however many elements it has). Before a node's backward runs, the storage
// versions of its inputs and outputs are compared with those saved when it was recorded: a
// tensor written in place in between (raw::copy_, an optimizer step) is an error, not a silently
// wrong gradient. Gradients of non-leaf tensors are dropped once their
// node has run (unless retain_grad()), so memory falls as backward proceeds.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace engram {

using BackwardFn = std::function<std::vector<Tensor>(const std::vector<Tensor>& grad_outputs)>;

struct Node {
  std::string name;  // the op, for errors and anomaly reports
  struct Input {
    bool defined = false;
    bool requires_grad = false;  // when recorded (a leaf's own flag is read at backward)
    Tensor leaf;                 // held: a leaf input that requires grad
    int64_t node = -1;           // a non-leaf input: the node and output slot that produced it
    int slot = 0;
    uint64_t epoch = 0;          // and that node's tape generation
    Shape shape;
    DType dtype = DType::f32;
    std::weak_ptr<Storage> storage;  // for the version check while something else holds it
  };
  std::vector<Input> inputs;
  std::vector<std::weak_ptr<TensorImpl>> outputs;
  // Shape/dtype/device of each output, so a zero gradient can stand in for an output that was
  // freed or never used (a backward always gets one gradient per output).
  struct OutputMeta {
    Shape shape;
    DType dtype;
    Device device;
  };
  std::vector<OutputMeta> output_meta;
  BackwardFn backward;
  // Storage versions of inputs then outputs when the op ran (core/tensor.h, Storage::version).
  std::vector<uint64_t> versions;
};

class Tape {
 public:
  std::vector<Node> nodes;
  uint64_t epoch = 1;  // bumped on every clear, so stale tensors can be recognised
  void clear() {
    nodes.clear();
    ++epoch;
  }
};

Tape& tape();  // the thread's tape

// Grad mode: ops record only when enabled (the default) and an input requires grad.
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// Anomaly mode (per thread, like grad mode): every op output (forward) and every gradient
// (backward) is checked for NaN/Inf, and the first op that produced one is named in the error.
void set_anomaly_mode(bool on);
bool anomaly_mode();
class AnomalyGuard {
 public:
  AnomalyGuard() : prev_(anomaly_mode()) { set_anomaly_mode(true); }
  ~AnomalyGuard() { set_anomaly_mode(prev_); }

 private:
  bool prev_;
};

// Op-name log: while on, the name of every op recorded on any thread is remembered. The test
// runner (tests/main.cpp) turns it on and, after the suite, insists that each name it saw is
// exercised by the op registry, so no op the suite ran escapes the registry's gradcheck, however
// its name was spelled at the call site (a literal, or a variable such as "maximum"/"minimum").
void set_op_name_log(bool on);
std::vector<std::string> logged_op_names();  // sorted, each once

// True when an op on these inputs should be recorded.
bool needs_record(const std::vector<Tensor>& inputs);
// Records `name` with inputs/outputs and a backward closure when needs_record(inputs); marks the
// outputs as requiring grad. Always runs the anomaly check on outputs when that mode is on.
void record(const char* name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
            BackwardFn backward);
// Single-output convenience: the closure gets dy and returns one gradient per input.
void record1(const char* name, const std::vector<Tensor>& inputs, const Tensor& output,
             std::function<std::vector<Tensor>(const Tensor& dy)> backward);

// Runs the backward loop from `root` seeded with `grad` (ones for a scalar root when undefined).
void backward(const Tensor& root, const Tensor& grad = Tensor(), bool retain_graph = false);
// The same, calling nodes_done(i) whenever every node at tape index >= i has run its backward
// (i falls from the root's node to 0), so a caller knows which leaves' gradients are final: a
// leaf's gradient is complete once the first node that used it has run. Data-parallel training
// (nn/distributed.h) launches its gradient all-reduces from here.
void backward(const Tensor& root, const Tensor& grad, bool retain_graph,
              const std::function<void(int64_t)>& nodes_done);

Tensor detach(const Tensor& t);       // same storage, no history, requires_grad false
void zero_grad(const std::vector<Tensor>& params);  // drops .grad on each

// Sums g over broadcast dims so it has `shape` (the reverse of broadcasting).
Tensor unbroadcast(const Tensor& g, const Shape& shape);

}  // namespace engram
