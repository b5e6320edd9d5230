#include "tlora/models/sequence_classifier.h"

#include "tlora/models/bert.h"
#include "tlora/models/roberta.h"

#include <c10/util/Exception.h>

namespace tlora::models {

std::shared_ptr<SequenceClassifierImpl> make_sequence_classifier(const EncoderConfig& config) {
  if (config.model_type == "bert") return std::make_shared<BertForSequenceClassificationImpl>(config);
  if (config.model_type == "roberta") return std::make_shared<RobertaForSequenceClassificationImpl>(config);
  TORCH_CHECK(false, "make_sequence_classifier: no sequence classifier for model_type '", config.model_type,
              "' (bert and roberta have one)");
}

std::shared_ptr<SequenceClassifierImpl> sequence_classifier_from_pretrained(
    const std::filesystem::path& dir, const std::function<void(EncoderConfig&)>& edit_config,
    const LoadOptions& options, LoadReport* report) {
  EncoderConfig config = EncoderConfig::from_pretrained(dir);
  if (edit_config) edit_config(config);
  auto model = make_sequence_classifier(config);
  LoadReport r = load_weights(*model, dir, options);
  if (report != nullptr) *report = std::move(r);
  return model;
}

}  // namespace tlora::models
