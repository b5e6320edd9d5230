#include "base_model.h"

#include "tlora/io/checkpoint.h"
#include "tlora/models/bert.h"
#include "tlora/models/loading.h"
#include "tlora/models/roberta.h"
#include "tlora/models/sequence_classifier.h"
#include "tlora/io/safetensors.h"

#include <c10/util/Exception.h>

#include <optional>
#include <string>

namespace {

namespace fs = std::filesystem;
using tlora::models::EncoderConfig;

// The output size of the classification head saved in `checkpoint` (modules_to_save), if any.
std::optional<int64_t> saved_num_labels(const fs::path& checkpoint, const std::string& model_type) {
  const std::string key = model_type == "roberta" ? "classifier.out_proj.weight" : "classifier.weight";
  const auto file = tlora::safetensors::File::open(checkpoint / tlora::kAdapterModelFile);
  const tlora::safetensors::TensorInfo* info = file.find(key);
  if (info == nullptr) return std::nullopt;
  return info->shape.at(0);
}

template <typename Holder>
std::shared_ptr<torch::nn::Module> load(const EncoderConfig& config, const fs::path& model_dir) {
  Holder model(config);
  tlora::models::load_weights(*model, model_dir);
  return model.ptr();
}

}  // namespace

std::shared_ptr<torch::nn::Module> build_base_model(const fs::path& model_dir, const std::vector<fs::path>& checkpoints) {
  EncoderConfig config = EncoderConfig::from_pretrained(model_dir);
  const std::string prefix = config.model_type + ".";
  bool with_head = false;
  for (const fs::path& dir : checkpoints) {
    for (const tlora::CheckpointModule& m : tlora::read_checkpoint_info(dir).modules) {
      with_head = with_head || m.path.starts_with(prefix);
    }
    if (const auto labels = saved_num_labels(dir, config.model_type)) {
      config.num_labels = *labels;
      // The head is only there to receive the saved one; its loss settings do not matter.
      config.problem_type.clear();
    }
  }
  if (with_head) {
    auto model = tlora::models::make_sequence_classifier(config);
    tlora::models::load_weights(*model, model_dir);
    return model;
  }
  return config.model_type == "roberta" ? load<tlora::models::RobertaModel>(config, model_dir)
                                        : load<tlora::models::BertModel>(config, model_dir);
}
