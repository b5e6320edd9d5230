// A small transformer-like encoder built from tlora::AdaptableLinear, with Hugging Face's module paths
// (encoder.layer.N.attention.self.query, ...), for patching and checkpoint tests.
#pragma once

#include "tolerance.h"
#include "tlora/adapters/adaptable_linear.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>

#include <string>

namespace tlora::testing {

struct SelfAttentionImpl : torch::nn::Module {
  explicit SelfAttentionImpl(int64_t hidden)
      : query(register_module("query", AdaptableLinear(hidden, hidden))),
        key(register_module("key", AdaptableLinear(hidden, hidden))),
        value(register_module("value", AdaptableLinear(hidden, hidden))) {}
  at::Tensor forward(const at::Tensor& x) {
    const at::Tensor scores = at::matmul(query(x), key(x).transpose(-1, -2)) / std::sqrt(double(x.size(-1)));
    return at::matmul(at::softmax(scores, -1), value(x));
  }
  AdaptableLinear query, key, value;
};
TORCH_MODULE(SelfAttention);

struct AttentionImpl : torch::nn::Module {
  explicit AttentionImpl(int64_t hidden)
      : self(register_module("self", SelfAttention(hidden))),
        output(register_module("output", AdaptableLinear(hidden, hidden))) {}
  at::Tensor forward(const at::Tensor& x) { return output(self(x)); }
  SelfAttention self;
  AdaptableLinear output;
};
TORCH_MODULE(Attention);

struct LayerImpl : torch::nn::Module {
  LayerImpl(int64_t hidden, int64_t intermediate)
      : attention(register_module("attention", Attention(hidden))),
        intermediate(register_module("intermediate", AdaptableLinear(hidden, intermediate))),
        output(register_module("output", AdaptableLinear(intermediate, hidden))) {}
  at::Tensor forward(const at::Tensor& x) {
    const at::Tensor h = x + attention(x);
    return h + output(at::gelu(intermediate(h)));
  }
  Attention attention;
  AdaptableLinear intermediate, output;
};
TORCH_MODULE(Layer);

/// hidden → N layers → classifier (2 labels), every linear a tlora::AdaptableLinear.
struct TinyEncoderImpl : torch::nn::Module {
  TinyEncoderImpl(int64_t layers = 2, int64_t hidden = 16, int64_t intermediate = 24) {
    encoder = register_module("encoder", std::make_shared<torch::nn::Module>());
    for (int64_t i = 0; i < layers; ++i) {
      blocks.push_back(std::make_shared<LayerImpl>(hidden, intermediate));
    }
    layer = encoder->register_module("layer", torch::nn::ModuleList());
    for (auto& b : blocks) layer->push_back(b);
    classifier = register_module("classifier", AdaptableLinear(hidden, 2));
  }
  at::Tensor forward(at::Tensor x) {
    for (auto& b : blocks) x = b->forward(x);
    return classifier(x.mean(1));
  }
  std::shared_ptr<torch::nn::Module> encoder;
  torch::nn::ModuleList layer;
  std::vector<std::shared_ptr<LayerImpl>> blocks;
  AdaptableLinear classifier{nullptr};
};
TORCH_MODULE(TinyEncoder);

/// The rounding tolerance (tolerance.h) of a default TinyEncoder's output against another
/// evaluation that rounds differently (merged weights, double weights): four products of at
/// most 24 terms in each of its 2 layers, and the head.
inline double tiny_encoder_tolerance(const at::Tensor& reference) {
  return float32_tolerance(reference, 24, 4 * 2 + 1);
}

}  // namespace tlora::testing
