// Batched inference and scoring.
#include "evaluate.h"

#include "tlora/glue/scores.h"
#include "tlora/core/precision.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/argmax.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

namespace glue_app {

std::vector<double> predict(const Classifier& c, const tlora::glue::Features& features,
                            const InputSpec& spec, const tlora::dist::Context& dist) {
  const bool was_training = c.module->is_training();
  c.module->eval();
  at::NoGradGuard no_grad;
  std::vector<int64_t> mine, lengths;
  const auto all_lengths = tlora::glue::lengths(features);
  for (int64_t i = dist.rank(); i < features.size(); i += dist.world_size()) {
    mine.push_back(i);
    lengths.push_back(all_lengths[static_cast<size_t>(i)]);
  }
  // Rows of (example index, prediction), gathered from every rank.
  at::Tensor rows = at::empty({static_cast<int64_t>(mine.size()), 2}, at::kDouble);
  auto* r = rows.data_ptr<double>();
  for (const auto& positions : tlora::glue::eval_batches(lengths, spec.batch_size)) {
    std::vector<int64_t> indices;
    for (int64_t p : positions) indices.push_back(mine[static_cast<size_t>(p)]);
    const auto batch = tlora::glue::collate(features, indices, spec.pad_id, spec.regression);
    const tlora::AutocastGuard autocast(spec.device.type(), at::kBFloat16, spec.autocast);
    const at::Tensor logits = c.module->forward(batch.input_ids.to(spec.device),
                                        batch.attention_mask.to(spec.device),
                                        batch.token_type_ids.to(spec.device));
    const at::Tensor values =
        (spec.regression ? logits.select(1, 0) : logits.argmax(1)).to(at::kDouble).cpu();
    const double* v = values.data_ptr<double>();
    for (size_t i = 0; i < positions.size(); ++i) {
      r[2 * positions[i]] = static_cast<double>(indices[i]);
      r[2 * positions[i] + 1] = v[i];
    }
  }
  c.module->train(was_training);
  if (dist.world_size() > 1) rows = dist.all_gather(rows);
  std::vector<double> out(static_cast<size_t>(features.size()));
  const auto* g = rows.data_ptr<double>();
  for (int64_t i = 0; i < rows.size(0); ++i) out[static_cast<size_t>(g[2 * i])] = g[2 * i + 1];
  return out;
}

std::map<std::string, double> evaluate(tlora::glue::Task task, const Classifier& c,
                                       const std::vector<EvalSet>& sets, const InputSpec& spec,
                                       const tlora::dist::Context& dist) {
  std::map<std::string, double> metrics;
  for (size_t s = 0; s < sets.size(); ++s) {
    const auto& set = sets[s];
    TORCH_CHECK(set.features.labelled(), set.file, ": has examples without labels; it cannot be scored");
    const auto scores = tlora::glue::score(task, predict(c, set.features, spec, dist), set.features.labels);
    // "dev_mismatched" → "_mismatched"; the first set keeps the plain names.
    const std::string suffix =
        s == 0 ? "" : "_" + (set.name.rfind("dev_", 0) == 0 ? set.name.substr(4) : set.name);
    for (const auto& [name, value] : scores) metrics[name + suffix] = value;
  }
  return metrics;
}

}  // namespace glue_app
