// autograd/registry.cpp — assembles the op registry from the per-family opinfo_<family>.cpp.
#include "autograd/registry.h"

#include "autograd/tape.h"

namespace engram {

void register_elementwise_ops(std::vector<OpInfo>& r);  // opinfo_elementwise.cpp
void register_reduce_ops(std::vector<OpInfo>& r);       // opinfo_reduce.cpp
void register_shape_ops(std::vector<OpInfo>& r);        // opinfo_shape.cpp (+ matmul, index)
void register_nn_ops(std::vector<OpInfo>& r);           // opinfo_nn.cpp
void register_conv_ops(std::vector<OpInfo>& r);         // opinfo_conv.cpp
void register_fft_scan_ops(std::vector<OpInfo>& r);     // opinfo_fft_scan.cpp
void register_memory_ops(std::vector<OpInfo>& r);       // opinfo_memory.cpp
void register_titans_ops(std::vector<OpInfo>& r);       // opinfo_titans.cpp
void register_ssm_mamba_ops(std::vector<OpInfo>& r);    // opinfo_ssm_mamba.cpp
void register_ssm_scan_ops(std::vector<OpInfo>& r);     // opinfo_ssm_scan.cpp

const std::vector<OpInfo>& op_registry() {
  static const std::vector<OpInfo> registry = [] {
    std::vector<OpInfo> r;
    register_elementwise_ops(r);
    register_reduce_ops(r);
    register_shape_ops(r);
    register_nn_ops(r);
    register_conv_ops(r);
    register_fft_scan_ops(r);
    register_memory_ops(r);
    register_titans_ops(r);
    register_ssm_mamba_ops(r);
    register_ssm_scan_ops(r);
    return r;
  }();
  return registry;
}

const OpInfo* find_op(const std::string& name) {
  for (const OpInfo& op : op_registry())
    if (op.name == name) return &op;
  return nullptr;
}

std::set<std::string> registry_exercised_op_names() {
  std::set<std::string> seen;
  for (const OpInfo& op : op_registry()) {
    Generator g(7);
    for (const OpSample& s : op.samples(g)) {
      std::vector<Tensor> in;
      for (size_t i = 0; i < s.inputs.size(); ++i) {
        Tensor t = raw::clone(s.inputs[i]);
        if (s.differentiable[i]) t.requires_grad_(true);
        in.push_back(t);
      }
      tape().clear();
      op.fn(in, s.params);
      for (const Node& n : tape().nodes) seen.insert(n.name);
      tape().clear();
    }
  }
  return seen;
}

OpInfo entry(std::string name, OpFn fn, SampleFn samples) {
  OpInfo op;
  op.name = std::move(name);
  op.fn = std::move(fn);
  op.samples = std::move(samples);
  return op;
}

OpSample sample(std::string label, std::vector<Tensor> inputs, nlohmann::json params) {
  OpSample s;
  s.label = std::move(label);
  for (const Tensor& t : inputs) s.differentiable.push_back(is_floating(t.dtype()));
  s.inputs = std::move(inputs);
  if (!params.is_null()) s.params = std::move(params);
  return s;
}

Tensor rn(Generator& g, const Shape& shape) { return randn(shape, DType::f64, &g); }
Tensor runif(Generator& g, const Shape& shape, double lo, double hi) {
  std::vector<double> v(shape_numel(shape));
  for (double& x : v) x = lo + (hi - lo) * g.uniform();
  return from_vector(v, shape, DType::f64);
}
Tensor ids(Generator& g, const Shape& shape, int64_t high) { return randint(0, high, shape, &g); }

}  // namespace engram
