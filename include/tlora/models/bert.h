// BERT (transformers' BertModel and BertForSequenceClassification) built from tlora::AdaptableLinear.
#pragma once

#include "tlora/export.h"

#include "tlora/adapters/adaptable_linear.h"
#include "tlora/models/encoder.h"
#include "tlora/models/sequence_classifier.h"

#include <ATen/core/Tensor.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <vector>

TLORA_API_BEGIN
namespace tlora::models {

/// The embeddings, encoder and pooler of BERT or RoBERTa under Hugging Face's names
/// (`embeddings.word_embeddings`, `encoder.layer.3.attention.self.query`, `pooler.dense`, ...).
class BaseModelImpl : public PreTrainedModel {
 public:
  /// Runs the embeddings and the encoder, and the pooler when there is one. input_ids: [batch,
  /// seq] integers on the model's device; attention_mask: undefined (attend everywhere), [batch,
  /// seq] (non-zero = attend) or a 4-D boolean or additive mask; token_type_ids: undefined
  /// (zeros) or [batch, seq]; position_ids: undefined (transformers' default for the model type)
  /// or [batch, seq].
  EncoderOutput forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {},
                        const at::Tensor& token_type_ids = {}, const at::Tensor& position_ids = {});
  bool is_base_model() const override { return true; }
  std::vector<std::string> head_modules() const override { return {}; }

  /// `embeddings`.
  Embeddings embeddings{nullptr};
  /// `encoder`.
  Encoder encoder{nullptr};
  /// `pooler` (null without pooling layer).
  Pooler pooler{nullptr};

 protected:
  /// A model named `name` for `model_type` configs.
  BaseModelImpl(const std::string& name, const EncoderConfig& config, const char* model_type,
                bool add_pooling_layer);
};

/// transformers' BertModel: model_type "bert".
class BertModelImpl : public BaseModelImpl {
 public:
  /// A model initialised as transformers initialises a new one; `add_pooling_layer` false leaves
  /// out `pooler` (transformers' add_pooling_layer).
  explicit BertModelImpl(const EncoderConfig& config, bool add_pooling_layer = true)
      : BaseModelImpl("tlora::models::BertModel", config, "bert", add_pooling_layer) {}
};
/// A ModuleHolder for BertModelImpl.
TORCH_MODULE(BertModel);

/// transformers' BertForSequenceClassification: `bert` (with pooler), then dropout
/// (classifier_dropout) and `classifier` on the pooled output.
class BertForSequenceClassificationImpl : public SequenceClassifierImpl {
 public:
  /// A model initialised as transformers initialises a new one, with num_labels outputs.
  explicit BertForSequenceClassificationImpl(const EncoderConfig& config);
  /// Logits [batch, num_labels]; the arguments are BaseModelImpl::forward's.
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {},
                     const at::Tensor& token_type_ids = {}, const at::Tensor& position_ids = {}) override;

  /// `bert`.
  BertModel bert{nullptr};
  /// `classifier`.
  AdaptableLinear classifier{nullptr};
};
/// A ModuleHolder for BertForSequenceClassificationImpl.
TORCH_MODULE(BertForSequenceClassification);

}  // namespace tlora::models
TLORA_API_END
