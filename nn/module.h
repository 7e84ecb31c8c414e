// nn/module.h — Module: named parameters, buffers and children, like torch.nn.Module.
//
// A module registers its parameters (leaf tensors with requires_grad) and child modules under
// names; named_parameters() walks the tree and yields PyTorch-style dotted names
// ("blocks.0.attn.q_proj.weight"), which are also the keys of checkpoints, so engram and PyTorch
// state dicts line up name for name. Buffers are saved state that is not trained.
// Forward signatures differ per module (an LSTM takes and returns state), so Module itself has no
// forward(); modules with one tensor in and one out derive from UnaryModule and can be chained
// in a Sequential.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "autograd/ops.h"

namespace engram::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// Moves (or converts) t in place: the TensorImpl keeps its identity and gets new storage, so every
// handle to it, in a module or captured elsewhere, sees the moved tensor. Its .grad is dropped.
void convert_in_place(Tensor& t, Device device, std::optional<DType> dtype = std::nullopt);

class Module {
 public:
  virtual ~Module() = default;
  virtual std::string type_name() const = 0;        // "Linear"
  virtual std::string extra_repr() const { return ""; }  // "in_features=3, out_features=4"

  NamedTensors named_parameters(const std::string& prefix = "") const;
  std::vector<Tensor> parameters() const;
  NamedTensors named_buffers(const std::string& prefix = "") const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const {
    return children_;
  }
  int64_t num_parameters() const;

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();
  void to(Device device);  // moves parameters and buffers
  void to(DType dtype);    // converts parameters and buffers (f64 for gradchecks)

  // Tree of modules with parameter counts and last output shapes, ending with the total.
  std::string summary() const;

 protected:
  Tensor& register_parameter(const std::string& name, Tensor t);
  Tensor& register_buffer(const std::string& name, Tensor t);
  template <class M> std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }
  // Forwards call this so summary() can show output shapes.
  const Tensor& note_output(const Tensor& y) const {
    last_output_shape_ = y.shape();
    has_output_shape_ = true;
    return y;
  }

 private:
  void summary_lines(const std::string& name, int depth, std::vector<std::string>& lines) const;
  // Parameters are stored by value in a list of (name, tensor) pairs; register_parameter returns
  // a reference into it, so a std::deque-like stable storage is needed: we keep unique_ptrs.
  std::vector<std::pair<std::string, std::unique_ptr<Tensor>>> params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
  mutable Shape last_output_shape_;
  mutable bool has_output_shape_ = false;
};

// A module with one tensor in and one tensor out.
class UnaryModule : public Module {
 public:
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
};

// Runs its children in order: y = m_n(...m_1(x)).
class Sequential : public UnaryModule {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<UnaryModule>> layers);
  Sequential& add(std::shared_ptr<UnaryModule> layer);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Sequential"; }
  size_t size() const { return layers_.size(); }
  std::shared_ptr<UnaryModule> operator[](size_t i) const { return layers_.at(i); }

 private:
  std::vector<std::shared_ptr<UnaryModule>> layers_;
};

}  // namespace engram::nn
