#include "tlora/models/bert.h"

#include "tlora/models/dropout.h"
#include <c10/util/Exception.h>

namespace tlora::models {

BaseModelImpl::BaseModelImpl(const std::string& name, const EncoderConfig& config,
                             const char* model_type, bool add_pooling_layer)
    : PreTrainedModel(name, config, model_type) {
  embeddings = register_module("embeddings", Embeddings(this->config()));
  encoder = register_module("encoder", Encoder(this->config()));
  if (add_pooling_layer) pooler = register_module("pooler", Pooler(this->config()));
  init_weights(*this, this->config().initializer_range);
}

EncoderOutput BaseModelImpl::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                     const at::Tensor& token_type_ids,
                                     const at::Tensor& position_ids) {
  TORCH_CHECK(input_ids.defined() && input_ids.dim() == 2, name(),
              ": input_ids must have shape [batch, seq], got ",
              input_ids.defined() ? input_ids.sizes() : at::IntArrayRef{});
  TORCH_CHECK(input_ids.scalar_type() == at::kLong || input_ids.scalar_type() == at::kInt, name(),
              ": input_ids must be int64 or int32, got ", input_ids.scalar_type());
  const at::Device device = embeddings->word_embeddings->weight.device();
  TORCH_CHECK(input_ids.device() == device, name(), ": input_ids are on ", input_ids.device(),
              ", the model on ", device);
  const int64_t batch = input_ids.size(0), seq = input_ids.size(1);
  TORCH_CHECK(position_ids.defined() || seq <= config().max_sequence_length(), name(),
              ": a sequence of ", seq, " tokens is longer than the ",
              config().max_sequence_length(), " that max_position_embeddings (",
              config().max_position_embeddings, ") allows");
  const auto on_device = [&](const at::Tensor& t) { return t.defined() ? t.to(device) : t; };

  const at::Tensor embedded =
      embeddings(input_ids, on_device(token_type_ids), on_device(position_ids));
  const at::Tensor mask =
      attention_mask_for(attention_mask, batch, seq, embedded.scalar_type(), device);
  EncoderOutput out;
  out.last_hidden_state = encoder(embedded, mask);
  if (pooler) out.pooler_output = pooler(out.last_hidden_state);
  return out;
}

BertForSequenceClassificationImpl::BertForSequenceClassificationImpl(const EncoderConfig& config)
    : SequenceClassifierImpl("tlora::models::BertForSequenceClassification", config, "bert") {
  bert = register_module("bert", BertModel(this->config()));
  classifier = register_module("classifier", AdaptableLinear(config.hidden_size, config.num_labels));
  init_parameters(*this, {"classifier.weight", "classifier.bias"}, config.initializer_range);
}

at::Tensor BertForSequenceClassificationImpl::forward(const at::Tensor& input_ids,
                                                      const at::Tensor& attention_mask,
                                                      const at::Tensor& token_type_ids,
                                                      const at::Tensor& position_ids) {
  const at::Tensor pooled =
      bert(input_ids, attention_mask, token_type_ids, position_ids).pooler_output;
  return classifier(models::dropout(pooled, config().classifier_dropout_prob(), is_training()));
}

}  // namespace tlora::models
