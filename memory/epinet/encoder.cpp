// memory/epinet/encoder.cpp — see encoder.h.
#include "memory/epinet/encoder.h"

namespace engram::epinet {

ConvEncoder::ConvEncoder(int64_t d_, Generator* gen) : d(d_) {
  ENGRAM_CHECK(d > 0, "ConvEncoder: d must be positive, got {}", d);
  net = register_module(
      "net", std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::UnaryModule>>{
                 std::make_shared<nn::Conv2d>(1, 32, 3, 1, 1, 1, true, gen), nn::ReLU(),
                 std::make_shared<nn::MaxPool2d>(2),
                 std::make_shared<nn::Conv2d>(32, 64, 3, 1, 1, 1, true, gen), nn::ReLU(),
                 std::make_shared<nn::MaxPool2d>(2), std::make_shared<nn::Flatten>(),
                 std::make_shared<nn::Linear>(64 * 7 * 7, d, true, gen)}));
}

Tensor ConvEncoder::forward(const Tensor& x) {
  ENGRAM_CHECK(x.dim() == 4 && x.size(1) == 1 && x.size(2) == 28 && x.size(3) == 28,
               "ConvEncoder: expected images [B, 1, 28, 28], got {}", shape_str(x.shape()));
  return note_output(net->forward(x));
}

}  // namespace engram::epinet
