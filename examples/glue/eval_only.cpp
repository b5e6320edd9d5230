// --eval-only: a saved adapter (or head-only/full weights) on any GLUE-format file.
#include "classifier.h"
#include "data.h"
#include "evaluate.h"
#include "trainer.h"

#include "tlora/io/atomic_file.h"
#include "tlora/glue/scores.h"
#include "tlora/core/precision.h"
#include "tlora/text/tokenizer.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <cstdio>

namespace glue_app {

int run_evaluation(RunConfig config) {
  if (config.threads > 0) at::set_num_threads(config.threads);
  const auto info = read_trained_info(config.adapter_dir);
  const std::string trained_task = info["task"].get<std::string>();
  if (config.task.empty()) config.task = trained_task;
  const auto task = tlora::glue::task_from_name(config.task);
  const auto& task_info = tlora::glue::info(task);
  TORCH_CHECK(task_info.name == tlora::glue::info(tlora::glue::task_from_name(trained_task)).name,
              config.adapter_dir, " was trained on ", trained_task, ", not on ", config.task);
  if (config.model_dir.empty() && info.contains("model_dir") && info["model_dir"].is_string())
    config.model_dir = info["model_dir"].get<std::string>();
  // Evaluated as it was trained, unless --precision says otherwise.
  if (config.precision == "auto") {
    config.precision = info.contains("precision") && info["precision"].is_string()
                           ? info["precision"].get<std::string>()
                           : tlora::to_string(tlora::default_precision(config.device == "cuda" ? c10::kCUDA : c10::kCPU));
  }
  const std::string model_dir = resolve_model_dir(config);
  const int64_t max_length = info.value("max_seq_length", config.max_seq_length);

  auto tokenizer = tlora::text::load_tokenizer(model_dir);
  const auto pad = tokenizer->token_to_id(tokenizer->pad_token());
  TORCH_CHECK(pad.has_value(), model_dir, ": the tokenizer has no pad token");
  std::vector<EvalSet> sets;
  if (config.eval_file.empty()) {
    sets = load_dev_sets(task, resolve_data_dir(config), *tokenizer, max_length, config.max_eval_samples);
  } else {
    EvalSet set;
    set.file = config.eval_file;
    set.name = "eval";
    set.features = load_features(task, config.eval_file, *tokenizer, max_length, config.max_eval_samples);
    sets.push_back(std::move(set));
  }

  const auto num_labels = task_info.is_regression ? 1 : static_cast<int64_t>(task_info.label_names.size());
  Classifier classifier = load_classifier(model_dir, num_labels, config.seed);
  load_trained(classifier, config.adapter_dir);
  const c10::Device device(config.device == "cuda" ? c10::kCUDA : c10::kCPU);
  to_precision(classifier, config.precision, device);
  const InputSpec spec{*pad, task_info.is_regression, device, config.eval_batch_size,
                       uses_autocast(config.precision)};

  nlohmann::ordered_json report;
  report["adapter"] = config.adapter_dir;
  report["task"] = task_info.name;
  for (size_t s = 0; s < sets.size(); ++s) {
    const auto& set = sets[s];
    const auto predictions = predict(classifier, set.features, spec);
    std::string out_file = config.predictions_file;
    if (out_file.empty()) out_file = config.adapter_dir + "/predictions_" + set.name + ".tsv";
    else if (sets.size() > 1) out_file += "." + set.name;
    // The GLUE submission layout: index, then the label's name (or the score).
    std::string text = "index\tprediction\n";
    for (size_t i = 0; i < predictions.size(); ++i) {
      const std::string value = task_info.is_regression
                                    ? fmt::format("{:.6f}", predictions[i])
                                    : task_info.label_names[static_cast<size_t>(predictions[i])];
      text += fmt::format("{}\t{}\n", i, value);
    }
    tlora::write_file_atomically(out_file, text);
    nlohmann::ordered_json entry;
    entry["file"] = set.file;
    entry["examples"] = set.features.size();
    entry["predictions_file"] = out_file;
    if (set.features.labelled()) {
      const auto metrics = tlora::glue::score(task, predictions, set.features.labels);
      entry["metrics"] = metrics;
      std::string shown;
      for (const auto& [name, value] : metrics) shown += fmt::format(" {} {:.4f}", name, value);
      std::printf("%s:%s\n", set.file.c_str(), shown.c_str());
    } else {
      std::printf("%s: %zu predictions (no labels to score) in %s\n", set.file.c_str(),
                  predictions.size(), out_file.c_str());
    }
    report["sets"].push_back(entry);
  }
  std::printf("%s\n", report.dump(2).c_str());
  return 0;
}

}  // namespace glue_app
