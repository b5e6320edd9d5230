// The building blocks BERT and RoBERTa share (transformers' BertEmbeddings, BertSelfAttention,
// ... and their Roberta* copies), registered under Hugging Face's module names so that
// named_parameters() yields the names of a transformers state dict. Every linear layer is a
// tlora::AdaptableLinear, so tlora::inject patches them in place.
#pragma once

#include "tlora/export.h"

#include "tlora/adapters/adaptable_linear.h"
#include "tlora/models/config.h"

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <vector>

TLORA_API_BEGIN
namespace tlora::models {

/// What a base model returns.
struct EncoderOutput {
  /// [batch, seq, hidden]: the output of the last layer at every position (padding included).
  at::Tensor last_hidden_state;
  /// [batch, hidden]: tanh(pooler.dense(first token)); undefined for a model without pooler.
  at::Tensor pooler_output;
};

/// word + position + token type embeddings, LayerNorm, dropout. BERT numbers positions 0, 1, ...;
/// RoBERTa numbers the non-padding tokens pad_token_id + 1, pad_token_id + 2, ... and gives
/// padding tokens the position pad_token_id, whose row (like the padding row of the words) gets
/// no gradient.
class EmbeddingsImpl : public torch::nn::Module {
 public:
  /// Embeddings sized by `config`.
  explicit EmbeddingsImpl(const EncoderConfig& config);
  /// The position ids transformers derives when none are given: [batch, seq] int64.
  at::Tensor position_ids_for(const at::Tensor& input_ids) const;
  /// Embeds [batch, seq] ids; token_type_ids and position_ids may be undefined (zeros and
  /// position_ids_for(input_ids)).
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& token_type_ids,
                     const at::Tensor& position_ids);

  /// `word_embeddings`.
  torch::nn::Embedding word_embeddings{nullptr};
  /// `position_embeddings`.
  torch::nn::Embedding position_embeddings{nullptr};
  /// `token_type_embeddings`.
  torch::nn::Embedding token_type_embeddings{nullptr};
  /// `LayerNorm`.
  torch::nn::LayerNorm layer_norm{nullptr};

 private:
  EncoderConfig config_;
};
/// A ModuleHolder for EmbeddingsImpl.
TORCH_MODULE(Embeddings);

/// Multi-head self-attention through at::scaled_dot_product_attention (dropout on the
/// probabilities in training mode).
class SelfAttentionImpl : public torch::nn::Module {
 public:
  /// Projections sized by `config`.
  explicit SelfAttentionImpl(const EncoderConfig& config);
  /// x: [batch, seq, hidden]; mask: undefined, or a boolean (true = attend) or additive float
  /// mask broadcastable to [batch, heads, seq, seq].
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask);

  /// `query`, `key`, `value`.
  AdaptableLinear query{nullptr}, key{nullptr}, value{nullptr};

 private:
  int64_t heads_, head_dim_;
  double dropout_, scale_;
};
/// A ModuleHolder for SelfAttentionImpl.
TORCH_MODULE(SelfAttention);

/// dense → dropout → LayerNorm(· + residual): transformers' BertSelfOutput and BertOutput.
class ResidualOutputImpl : public torch::nn::Module {
 public:
  /// A dense layer from `in_features` to hidden_size.
  ResidualOutputImpl(const EncoderConfig& config, int64_t in_features);
  /// LayerNorm(dropout(dense(x)) + residual).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& residual);

  /// `dense`.
  AdaptableLinear dense{nullptr};
  /// `LayerNorm`.
  torch::nn::LayerNorm layer_norm{nullptr};

 private:
  double dropout_;
};
/// A ModuleHolder for ResidualOutputImpl.
TORCH_MODULE(ResidualOutput);

/// `self` (the attention) and `output` (its projection and residual LayerNorm).
class AttentionImpl : public torch::nn::Module {
 public:
  /// The attention of one layer.
  explicit AttentionImpl(const EncoderConfig& config);
  /// output(self(x, mask), x).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask);

  /// `self`.
  SelfAttention self{nullptr};
  /// `output`.
  ResidualOutput output{nullptr};
};
/// A ModuleHolder for AttentionImpl.
TORCH_MODULE(Attention);

/// `dense` to intermediate_size, then hidden_act.
class IntermediateImpl : public torch::nn::Module {
 public:
  /// The first feed-forward layer.
  explicit IntermediateImpl(const EncoderConfig& config);
  /// act(dense(x)).
  at::Tensor forward(const at::Tensor& x);

  /// `dense`.
  AdaptableLinear dense{nullptr};

 private:
  Activation activation_;
};
/// A ModuleHolder for IntermediateImpl.
TORCH_MODULE(Intermediate);

/// One transformer block: `attention`, `intermediate`, `output`.
class LayerImpl : public torch::nn::Module {
 public:
  /// A block sized by `config`.
  explicit LayerImpl(const EncoderConfig& config);
  /// The block applied to [batch, seq, hidden].
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask);

  /// `attention`.
  Attention attention{nullptr};
  /// `intermediate`.
  Intermediate intermediate{nullptr};
  /// `output`.
  ResidualOutput output{nullptr};
};
/// A ModuleHolder for LayerImpl.
TORCH_MODULE(Layer);

/// `layer.0`, `layer.1`, ...
class EncoderImpl : public torch::nn::Module {
 public:
  /// num_hidden_layers blocks.
  explicit EncoderImpl(const EncoderConfig& config);
  /// The blocks in order.
  at::Tensor forward(at::Tensor x, const at::Tensor& mask);

  /// `layer` (its entries are the blocks below).
  torch::nn::ModuleList layer{nullptr};
  /// The blocks, typed.
  std::vector<Layer> blocks;
};
/// A ModuleHolder for EncoderImpl.
TORCH_MODULE(Encoder);

/// `dense` + tanh on the first token (BertPooler).
class PoolerImpl : public torch::nn::Module {
 public:
  /// A hidden_size → hidden_size pooler.
  explicit PoolerImpl(const EncoderConfig& config);
  /// tanh(dense(hidden_states[:, 0])).
  at::Tensor forward(const at::Tensor& hidden_states);

  /// `dense`.
  AdaptableLinear dense{nullptr};
};
/// A ModuleHolder for PoolerImpl.
TORCH_MODULE(Pooler);

/// What the four models have in common: their configuration and what weight loading needs to
/// know about them (see loading.h).
class PreTrainedModel : public torch::nn::Module {
 public:
  /// The configuration the model was built from (validated).
  const EncoderConfig& config() const { return config_; }
  /// "bert" or "roberta": the name of the base model inside a head model (`bert.encoder...`),
  /// transformers' base_model_prefix.
  const std::string& base_model_prefix() const { return config_.model_type; }
  /// True for BertModel and RobertaModel, false for the models with a head.
  virtual bool is_base_model() const = 0;
  /// Paths of the modules a new task adds (`classifier`): a file without them is loaded by
  /// initialising them as transformers does (unless LoadOptions says otherwise).
  virtual std::vector<std::string> head_modules() const = 0;

 protected:
  /// Validates `config` and checks that its model_type is `model_type`.
  PreTrainedModel(const std::string& name, const EncoderConfig& config, const char* model_type);

 private:
  EncoderConfig config_;
};

/// The attention mask in the form the attention takes: undefined when every position may be
/// attended (so that SDPA may use its unmasked kernels, as transformers does), else [batch, 1, 1,
/// seq] booleans from a [batch, seq] attention_mask (non-zero = attend); a 4-D mask is returned
/// as it is (a floating one cast to `dtype`: additive).
at::Tensor attention_mask_for(const at::Tensor& attention_mask, int64_t batch, int64_t seq,
                              at::ScalarType dtype, const at::Device& device);

/// transformers' loss of a sequence classification model for `logits` [batch, num_labels]:
/// with config.problem_type, or when it is empty regression for one label, single-label
/// classification for integer labels and multi-label otherwise; then MSE (on squeezed tensors
/// for one label), cross entropy over [batch] class indices, or BCE with logits over
/// [batch, num_labels] targets, averaged over the batch.
at::Tensor sequence_classification_loss(const EncoderConfig& config, const at::Tensor& logits,
                                        const at::Tensor& labels);

/// Initialises the parameters `names` of `model` (in that order) as transformers' _init_weights
/// does: tlora::AdaptableLinear and Embedding weights from N(0, std²) (an Embedding's padding row zero),
/// Linear biases zero, LayerNorm weights one and biases zero. Draws come from `generator`, or
/// the default generator of each parameter's device when it is undefined. Throws for a name that
/// is not a parameter of one of these modules (e.g. an adapter's).
void init_parameters(torch::nn::Module& model, const std::vector<std::string>& names, double std,
                     const at::Generator& generator = {});

/// init_parameters for every parameter of `model` (which must hold no adapters): a new model as
/// transformers initialises it, std being the config's initializer_range.
void init_weights(torch::nn::Module& model, double std, const at::Generator& generator = {});

}  // namespace tlora::models
TLORA_API_END
