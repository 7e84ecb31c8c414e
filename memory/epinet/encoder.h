// memory/epinet/encoder.h — EpiNet's convolutional encoder (the EpiNet research notebook).
//
//   x [B, 1, 28, 28] -> Conv(1->32, 3x3, pad 1) -> ReLU -> MaxPool 2   [B, 32, 14, 14]
//                    -> Conv(32->64, 3x3, pad 1) -> ReLU -> MaxPool 2  [B, 64, 7, 7]
//                    -> Flatten [B, 3136] -> Linear(3136 -> d)         z [B, d]
// d = 128 by default (the notebook's training loop used 64).
#pragma once
#include "nn/layers.h"

namespace engram::epinet {

class ConvEncoder : public nn::UnaryModule {
 public:
  explicit ConvEncoder(int64_t d = 128, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;  // [B, 1, 28, 28] -> [B, d]
  std::string type_name() const override { return "ConvEncoder"; }
  int64_t d;
  std::shared_ptr<nn::Sequential> net;
};

}  // namespace engram::epinet
