// Batched inference and scoring.
#include "evaluate.h"

#include "tlora/glue/scores.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/argmax.h>
#include <c10/util/Exception.h>

namespace glue_app {

std::vector<double> predict(const Classifier& c, const tlora::glue::Features& features,
                            const InputSpec& spec) {
  const bool was_training = c.module->is_training();
  c.module->eval();
  at::NoGradGuard no_grad;
  std::vector<double> out(static_cast<size_t>(features.size()));
  const auto lengths = tlora::glue::lengths(features);
  for (const auto& indices : tlora::glue::eval_batches(lengths, spec.batch_size)) {
    const auto batch = tlora::glue::collate(features, indices, spec.pad_id, spec.regression);
    const at::Tensor logits = c.forward(batch.input_ids.to(spec.device),
                                        batch.attention_mask.to(spec.device),
                                        batch.token_type_ids.to(spec.device));
    const at::Tensor values =
        (spec.regression ? logits.select(1, 0) : logits.argmax(1)).to(at::kDouble).cpu();
    const double* v = values.data_ptr<double>();
    for (size_t i = 0; i < indices.size(); ++i) out[static_cast<size_t>(indices[i])] = v[i];
  }
  c.module->train(was_training);
  return out;
}

std::map<std::string, double> evaluate(tlora::glue::Task task, const Classifier& c,
                                       const std::vector<EvalSet>& sets, const InputSpec& spec) {
  std::map<std::string, double> metrics;
  for (size_t s = 0; s < sets.size(); ++s) {
    const auto& set = sets[s];
    TORCH_CHECK(set.features.labelled(), set.file, ": has examples without labels; it cannot be scored");
    const auto scores = tlora::glue::score(task, predict(c, set.features, spec), set.features.labels);
    // "dev_mismatched" → "_mismatched"; the first set keeps the plain names.
    const std::string suffix =
        s == 0 ? "" : "_" + (set.name.rfind("dev_", 0) == 0 ? set.name.substr(4) : set.name);
    for (const auto& [name, value] : scores) metrics[name + suffix] = value;
  }
  return metrics;
}

}  // namespace glue_app
