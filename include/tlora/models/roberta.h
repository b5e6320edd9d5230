// RoBERTa (transformers' RobertaModel and RobertaForSequenceClassification) built from
// tlora::AdaptableLinear. The layers are BERT's; the positions and the classification head differ.
#pragma once

#include "tlora/export.h"

#include "tlora/adapters/adaptable_linear.h"
#include "tlora/models/bert.h"
#include "tlora/models/encoder.h"
#include "tlora/models/sequence_classifier.h"

#include <ATen/core/Tensor.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <vector>

TLORA_API_BEGIN
namespace tlora::models {

/// transformers' RobertaModel: model_type "roberta"; positions start at pad_token_id + 1 and
/// skip padding tokens (see Embeddings).
class RobertaModelImpl : public BaseModelImpl {
 public:
  /// A model initialised as transformers initialises a new one; `add_pooling_layer` false leaves
  /// out `pooler`, as RobertaForSequenceClassification does.
  explicit RobertaModelImpl(const EncoderConfig& config, bool add_pooling_layer = true)
      : BaseModelImpl("tlora::models::RobertaModel", config, "roberta", add_pooling_layer) {}
};
/// A ModuleHolder for RobertaModelImpl.
TORCH_MODULE(RobertaModel);

/// RobertaClassificationHead: on the first (<s>) token, dropout → `dense` → tanh → dropout →
/// `out_proj`, the dropout being classifier_dropout.
class RobertaClassificationHeadImpl : public torch::nn::Module {
 public:
  /// A head with num_labels outputs.
  explicit RobertaClassificationHeadImpl(const EncoderConfig& config);
  /// Logits [batch, num_labels] from hidden states [batch, seq, hidden].
  at::Tensor forward(const at::Tensor& hidden_states);

  /// `dense`.
  AdaptableLinear dense{nullptr};
  /// `out_proj`.
  AdaptableLinear out_proj{nullptr};

 private:
  double dropout_;
};
/// A ModuleHolder for RobertaClassificationHeadImpl.
TORCH_MODULE(RobertaClassificationHead);

/// transformers' RobertaForSequenceClassification: `roberta` (without pooler) and `classifier`
/// (a RobertaClassificationHead).
class RobertaForSequenceClassificationImpl : public SequenceClassifierImpl {
 public:
  /// A model initialised as transformers initialises a new one, with num_labels outputs.
  explicit RobertaForSequenceClassificationImpl(const EncoderConfig& config);
  /// Logits [batch, num_labels]; the arguments are BaseModelImpl::forward's.
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {},
                     const at::Tensor& token_type_ids = {}, const at::Tensor& position_ids = {}) override;

  /// `roberta`.
  RobertaModel roberta{nullptr};
  /// `classifier`.
  RobertaClassificationHead classifier{nullptr};
};
/// A ModuleHolder for RobertaForSequenceClassificationImpl.
TORCH_MODULE(RobertaForSequenceClassification);

}  // namespace tlora::models
TLORA_API_END
