#include "tlora/models/encoder.h"

#include "tlora/models/dropout.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/binary_cross_entropy_with_logits.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/gelu.h>
#include <ATen/ops/mse_loss.h>
#include <ATen/ops/pow.h>
#include <ATen/ops/relu.h>
#include <ATen/ops/silu.h>
#include <ATen/ops/tanh.h>
#include <ATen/ops/zeros_like.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <map>
#include <numbers>

namespace tlora::models {
namespace {

torch::nn::LayerNorm layer_norm_for(const EncoderConfig& config) {
  return torch::nn::LayerNorm(
      torch::nn::LayerNormOptions({config.hidden_size}).eps(config.layer_norm_eps));
}

at::Tensor activate(Activation activation, const at::Tensor& x) {
  switch (activation) {
    case Activation::Gelu:
      return at::gelu(x);
    case Activation::GeluNew:
      // transformers' NewGELUActivation, term by term, so that rounding matches it.
      return 0.5 * x *
             (1.0 + at::tanh(std::sqrt(2.0 / std::numbers::pi) * (x + 0.044715 * at::pow(x, 3.0))));
    case Activation::GeluTanh:
      return at::gelu(x, "tanh");
    case Activation::Relu:
      return at::relu(x);
    case Activation::Silu:
      return at::silu(x);
    case Activation::Tanh:
      return at::tanh(x);
  }
  TORCH_CHECK(false, "unknown activation");
}

// Fills `tensor` from N(0, std²), through a CPU draw when a generator is given (a CPU generator
// cannot fill a CUDA tensor directly).
void fill_normal(at::Tensor& tensor, double std, const at::Generator& generator) {
  if (!generator.defined()) {
    tensor.normal_(0.0, std);
    return;
  }
  at::Tensor draw = at::empty(tensor.sizes(), tensor.options().device(at::kCPU));
  draw.normal_(0.0, std, generator);
  tensor.copy_(draw);
}

}  // namespace

EmbeddingsImpl::EmbeddingsImpl(const EncoderConfig& config)
    : torch::nn::Module("tlora::models::Embeddings"), config_(config) {
  torch::nn::EmbeddingOptions words(config.vocab_size, config.hidden_size);
  if (config.pad_token_id) words.padding_idx(*config.pad_token_id);
  torch::nn::EmbeddingOptions positions(config.max_position_embeddings, config.hidden_size);
  if (config.model_type == "roberta") positions.padding_idx(*config.pad_token_id);
  word_embeddings = register_module("word_embeddings", torch::nn::Embedding(words));
  position_embeddings = register_module("position_embeddings", torch::nn::Embedding(positions));
  token_type_embeddings =
      register_module("token_type_embeddings", torch::nn::Embedding(torch::nn::EmbeddingOptions(
                                                   config.type_vocab_size, config.hidden_size)));
  layer_norm = register_module("LayerNorm", layer_norm_for(config));
}

at::Tensor EmbeddingsImpl::position_ids_for(const at::Tensor& input_ids) const {
  if (config_.model_type != "roberta") {
    return at::arange(input_ids.size(1), input_ids.options().dtype(at::kLong))
        .unsqueeze(0)
        .expand({input_ids.size(0), input_ids.size(1)});
  }
  // fairseq's make_positions, as RobertaEmbeddings.create_position_ids_from_input_ids computes it.
  const int64_t pad = *config_.pad_token_id;
  const at::Tensor mask = input_ids.ne(pad).to(at::kInt);
  const at::Tensor incremental = at::cumsum(mask, 1).to(at::kInt) * mask;
  return incremental.to(at::kLong) + pad;
}

at::Tensor EmbeddingsImpl::forward(const at::Tensor& input_ids, const at::Tensor& token_type_ids,
                                   const at::Tensor& position_ids) {
  const at::Tensor positions = position_ids.defined() ? position_ids : position_ids_for(input_ids);
  const at::Tensor types = token_type_ids.defined()
                               ? token_type_ids
                               : at::zeros_like(input_ids, input_ids.options().dtype(at::kLong));
  // Frozen embeddings may be stored in bfloat16 (cast_frozen_matrices_): they are summed and
  // normalised in the LayerNorm's dtype, which is the residual stream's.
  const at::ScalarType dtype = layer_norm->weight.scalar_type();
  at::Tensor embeddings = word_embeddings(input_ids).to(dtype) + token_type_embeddings(types).to(dtype);
  embeddings = embeddings + position_embeddings(positions).to(dtype);
  return models::dropout(layer_norm(embeddings), config_.hidden_dropout_prob, is_training());
}

SelfAttentionImpl::SelfAttentionImpl(const EncoderConfig& config)
    : torch::nn::Module("tlora::models::SelfAttention"),
      heads_(config.num_attention_heads),
      head_dim_(config.head_dim()),
      dropout_(config.attention_probs_dropout_prob),
      // head_size**-0.5 as transformers passes it, rather than SDPA's own 1/sqrt(head_size).
      scale_(std::pow(static_cast<double>(config.head_dim()), -0.5)) {
  query = register_module("query", AdaptableLinear(config.hidden_size, config.hidden_size));
  key = register_module("key", AdaptableLinear(config.hidden_size, config.hidden_size));
  value = register_module("value", AdaptableLinear(config.hidden_size, config.hidden_size));
}

at::Tensor SelfAttentionImpl::forward(const at::Tensor& x, const at::Tensor& mask) {
  const int64_t batch = x.size(0), seq = x.size(1);
  const auto heads = [&](AdaptableLinear& projection) {
    return projection(x).view({batch, seq, heads_, head_dim_}).transpose(1, 2);
  };
  const at::Tensor out =
      models::attention(heads(query), heads(key), heads(value), mask, dropout_, scale_, is_training());
  return out.transpose(1, 2).reshape({batch, seq, heads_ * head_dim_});
}

ResidualOutputImpl::ResidualOutputImpl(const EncoderConfig& config, int64_t in_features)
    : torch::nn::Module("tlora::models::ResidualOutput"), dropout_(config.hidden_dropout_prob) {
  dense = register_module("dense", AdaptableLinear(in_features, config.hidden_size));
  layer_norm = register_module("LayerNorm", layer_norm_for(config));
}

at::Tensor ResidualOutputImpl::forward(const at::Tensor& x, const at::Tensor& residual) {
  return layer_norm(models::dropout(dense(x), dropout_, is_training()) + residual);
}

AttentionImpl::AttentionImpl(const EncoderConfig& config)
    : torch::nn::Module("tlora::models::Attention") {
  self = register_module("self", SelfAttention(config));
  output = register_module("output", ResidualOutput(config, config.hidden_size));
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const at::Tensor& mask) {
  return output(self(x, mask), x);
}

IntermediateImpl::IntermediateImpl(const EncoderConfig& config)
    : torch::nn::Module("tlora::models::Intermediate"), activation_(config.activation()) {
  dense = register_module("dense", AdaptableLinear(config.hidden_size, config.intermediate_size));
}

at::Tensor IntermediateImpl::forward(const at::Tensor& x) {
  return activate(activation_, dense(x));
}

LayerImpl::LayerImpl(const EncoderConfig& config) : torch::nn::Module("tlora::models::Layer") {
  attention = register_module("attention", Attention(config));
  intermediate = register_module("intermediate", Intermediate(config));
  output = register_module("output", ResidualOutput(config, config.intermediate_size));
}

at::Tensor LayerImpl::forward(const at::Tensor& x, const at::Tensor& mask) {
  const at::Tensor attended = attention(x, mask);
  return output(intermediate(attended), attended);
}

EncoderImpl::EncoderImpl(const EncoderConfig& config)
    : torch::nn::Module("tlora::models::Encoder") {
  layer = register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    blocks.emplace_back(config);
    layer->push_back(blocks.back());
  }
}

at::Tensor EncoderImpl::forward(at::Tensor x, const at::Tensor& mask) {
  for (auto& block : blocks) x = block(x, mask);
  return x;
}

PoolerImpl::PoolerImpl(const EncoderConfig& config) : torch::nn::Module("tlora::models::Pooler") {
  dense = register_module("dense", AdaptableLinear(config.hidden_size, config.hidden_size));
}

at::Tensor PoolerImpl::forward(const at::Tensor& hidden_states) {
  return at::tanh(dense(hidden_states.select(1, 0)));
}

PreTrainedModel::PreTrainedModel(const std::string& name, const EncoderConfig& config,
                                 const char* model_type)
    : torch::nn::Module(name), config_(config) {
  config_.validate();
  TORCH_CHECK(config_.model_type == model_type, name, " needs a config with model_type '",
              model_type, "', got '", config_.model_type, "'");
}

at::Tensor attention_mask_for(const at::Tensor& attention_mask, int64_t batch, int64_t seq,
                              at::ScalarType dtype, const at::Device& device) {
  if (!attention_mask.defined()) return {};
  if (attention_mask.dim() == 4) {
    TORCH_CHECK(attention_mask.scalar_type() == at::kBool ||
                    at::isFloatingType(attention_mask.scalar_type()),
                "a 4-D attention_mask must be boolean (true = attend) or floating (additive), got ",
                attention_mask.scalar_type());
    return attention_mask.to(device, attention_mask.scalar_type() == at::kBool ? at::kBool : dtype);
  }
  TORCH_CHECK(
      attention_mask.dim() == 2 && attention_mask.size(0) == batch && attention_mask.size(1) == seq,
      "attention_mask must have shape [", batch, ", ", seq, "] (or be a 4-D mask), got ",
      attention_mask.sizes());
  // Tested where the caller keeps the mask (the tokenizer's batches are on the CPU), so a
  // CUDA forward does not wait on the device to learn that there is no padding.
  const at::Tensor keep = attention_mask.to(at::kBool);
  if (keep.all().item<bool>()) return {};
  // Expanded as transformers' sdpa_mask does (a view: no [seq, seq] copy).
  return keep.to(device).view({batch, 1, 1, seq}).expand({batch, 1, seq, seq});
}

at::Tensor sequence_classification_loss(const EncoderConfig& config, const at::Tensor& logits,
                                        const at::Tensor& labels) {
  TORCH_CHECK(logits.dim() == 2 && logits.size(1) == config.num_labels,
              "logits must have shape [batch, ", config.num_labels, "], got ", logits.sizes());
  std::string problem = config.problem_type;
  if (problem.empty()) {
    const bool integral = labels.scalar_type() == at::kLong || labels.scalar_type() == at::kInt;
    problem = config.num_labels == 1 ? "regression"
              : integral             ? "single_label_classification"
                                     : "multi_label_classification";
  }
  const at::Tensor target = labels.to(logits.device());
  if (problem == "regression") {
    const at::Tensor values = target.to(logits.scalar_type());
    return config.num_labels == 1 ? at::mse_loss(logits.squeeze(), values.squeeze())
                                  : at::mse_loss(logits, values);
  }
  if (problem == "single_label_classification") {
    return at::cross_entropy_loss(logits.view({-1, config.num_labels}),
                                  target.view({-1}).to(at::kLong));
  }
  TORCH_CHECK(target.sizes() == logits.sizes(), "multi-label targets must have the shape of the ",
              "logits ", logits.sizes(), ", got ", target.sizes());
  return at::binary_cross_entropy_with_logits(logits, target.to(logits.scalar_type()));
}

void init_parameters(torch::nn::Module& model, const std::vector<std::string>& names, double std,
                     const at::Generator& generator) {
  // Raw pointers and include_self=false: a model still in its constructor has no shared_ptr.
  std::map<std::string, torch::nn::Module*> owners{{"", &model}};
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    owners.emplace(item.key(), item.value().get());
  }
  c10::NoGradGuard no_grad;
  for (const std::string& name : names) {
    const size_t dot = name.rfind('.');
    const std::string path = dot == std::string::npos ? "" : name.substr(0, dot);
    const std::string local = dot == std::string::npos ? name : name.substr(dot + 1);
    const auto owner = owners.find(path);
    // A handle, not a pointer into named_parameters()'s dictionary, which is a temporary.
    at::Tensor tensor;
    if (owner != owners.end()) {
      const auto parameters = owner->second->named_parameters(false);
      if (const at::Tensor* found = parameters.find(local)) tensor = *found;
    }
    TORCH_CHECK(tensor.defined(), "init_parameters: the model has no parameter '", name, "'");
    torch::nn::Module* module = owner->second;
    if (dynamic_cast<AdaptableLinearImpl*>(module) != nullptr) {
      if (local == "weight") {
        fill_normal(tensor, std, generator);
        continue;
      }
      if (local == "bias") {
        tensor.zero_();
        continue;
      }
    } else if (auto* embedding = dynamic_cast<torch::nn::EmbeddingImpl*>(module)) {
      fill_normal(tensor, std, generator);
      if (const auto& padding = embedding->options.padding_idx())
        tensor.select(0, *padding).zero_();
      continue;
    } else if (dynamic_cast<torch::nn::LayerNormImpl*>(module) != nullptr) {
      local == "weight" ? tensor.fill_(1.0) : tensor.zero_();
      continue;
    }
    TORCH_CHECK(false, "init_parameters: no transformers initialisation for '", name, "' (a ",
                module->name(), ")");
  }
}

void init_weights(torch::nn::Module& model, double std, const at::Generator& generator) {
  std::vector<std::string> names;
  for (const auto& p : model.named_parameters()) names.push_back(p.key());
  init_parameters(model, names, std, generator);
}

}  // namespace tlora::models
