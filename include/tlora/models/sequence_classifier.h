// What every sequence classifier shares (BERT's and RoBERTa's today): logits from token ids, the
// loss its configuration asks for, and the head's name — so training code needs no per-family
// branches.
#pragma once

#include "tlora/export.h"

#include "tlora/models/encoder.h"
#include "tlora/models/loading.h"

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

TLORA_API_BEGIN
namespace tlora::models {

/// A base encoder with a classification head called `classifier` on top.
class SequenceClassifierImpl : public PreTrainedModel {
 public:
  /// Logits [batch, num_labels]. input_ids: [batch, seq] integers on the model's device;
  /// attention_mask, token_type_ids and position_ids as BaseModelImpl::forward takes them.
  virtual at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {},
                             const at::Tensor& token_type_ids = {}, const at::Tensor& position_ids = {}) = 0;
  /// sequence_classification_loss with this model's configuration.
  at::Tensor loss(const at::Tensor& logits, const at::Tensor& labels) const {
    return sequence_classification_loss(config(), logits, labels);
  }
  bool is_base_model() const override { return false; }
  std::vector<std::string> head_modules() const override { return {"classifier"}; }

 protected:
  using PreTrainedModel::PreTrainedModel;
};

/// A new sequence classifier of config.model_type ("bert", "roberta"), initialised as
/// transformers initialises one; throws naming the model type otherwise.
std::shared_ptr<SequenceClassifierImpl> make_sequence_classifier(const EncoderConfig& config);

/// The sequence classifier of the Hugging Face folder `dir` with its weights loaded (a fresh head
/// when the folder has none). `edit_config`, when given, changes the configuration read from
/// `<dir>/config.json` first, e.g. `[](EncoderConfig& c) { c.num_labels = 3; }`.
std::shared_ptr<SequenceClassifierImpl> sequence_classifier_from_pretrained(
    const std::filesystem::path& dir, const std::function<void(EncoderConfig&)>& edit_config = {},
    const LoadOptions& options = {}, LoadReport* report = nullptr);

}  // namespace tlora::models
TLORA_API_END
