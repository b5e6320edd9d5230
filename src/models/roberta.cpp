#include "tlora/models/roberta.h"

#include "tlora/models/dropout.h"
#include <ATen/ops/tanh.h>

namespace tlora::models {

RobertaClassificationHeadImpl::RobertaClassificationHeadImpl(const EncoderConfig& config)
    : torch::nn::Module("tlora::models::RobertaClassificationHead"),
      dropout_(config.classifier_dropout_prob()) {
  dense = register_module("dense", AdaptableLinear(config.hidden_size, config.hidden_size));
  out_proj = register_module("out_proj", AdaptableLinear(config.hidden_size, config.num_labels));
}

at::Tensor RobertaClassificationHeadImpl::forward(const at::Tensor& hidden_states) {
  at::Tensor x = models::dropout(hidden_states.select(1, 0), dropout_, is_training());
  x = models::dropout(at::tanh(dense(x)), dropout_, is_training());
  return out_proj(x);
}

RobertaForSequenceClassificationImpl::RobertaForSequenceClassificationImpl(
    const EncoderConfig& config)
    : SequenceClassifierImpl("tlora::models::RobertaForSequenceClassification", config, "roberta") {
  roberta = register_module("roberta", RobertaModel(this->config(), /*add_pooling_layer=*/false));
  classifier = register_module("classifier", RobertaClassificationHead(this->config()));
  init_parameters(*this,
                  {"classifier.dense.weight", "classifier.dense.bias", "classifier.out_proj.weight",
                   "classifier.out_proj.bias"},
                  config.initializer_range);
}

at::Tensor RobertaForSequenceClassificationImpl::forward(const at::Tensor& input_ids,
                                                         const at::Tensor& attention_mask,
                                                         const at::Tensor& token_type_ids,
                                                         const at::Tensor& position_ids) {
  return classifier(
      roberta(input_ids, attention_mask, token_type_ids, position_ids).last_hidden_state);
}

}  // namespace tlora::models
