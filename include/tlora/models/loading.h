// Loading a Hugging Face model folder (config.json + model.safetensors, or a sharded
// model.safetensors.index.json) into the BERT and RoBERTa models, with a strict key report.
#pragma once

#include "tlora/export.h"

#include "tlora/models/encoder.h"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

TLORA_API_BEGIN
namespace tlora::models {

/// What load_weights tolerates. By default the heads may differ (the model's head absent from
/// the file is initialised, the file's head of another task is left out, both reported); any
/// other missing key, every other unexpected key and every shape mismatch is an error.
struct LoadOptions {
  /// Parameters of the model's head_modules() that the file lacks (a base checkpoint loaded for
  /// a new task) are initialised as transformers does: weights N(0, initializer_range²), biases
  /// zero. False makes them an error.
  bool allow_new_head = true;
  /// File keys outside the base model that the model has no parameter for (the pretraining
  /// heads `cls.*` of bert-base-uncased, `lm_head.*`, another task's `classifier.*` when
  /// loading a base model) are left out. False makes them an error.
  bool allow_other_head = true;
  /// Initialise any other parameter the file lacks instead of failing.
  bool allow_missing = false;
  /// Ignore any other file key the model has no parameter for instead of failing.
  bool allow_unexpected = false;
  /// Initialise parameters whose shape differs from the file's instead of failing
  /// (transformers' ignore_mismatched_sizes, e.g. a head with another number of labels).
  bool allow_shape_mismatch = false;
  /// Seed of the initialised parameters; unset: the default CPU generator (at::manual_seed).
  std::optional<uint64_t> seed;
};

/// A parameter whose shape in the file differs from the model's.
struct ShapeMismatch {
  /// The model's parameter name.
  std::string name;
  /// Its shape in the file.
  std::vector<int64_t> file_shape;
  /// Its shape in the model.
  std::vector<int64_t> model_shape;
};

/// What load_weights did; names are the model's (as named_parameters() gives them) except
/// `unexpected`, `other_head` and `ignored`, which are the file's keys.
struct LoadReport {
  /// The safetensors files read.
  std::vector<std::filesystem::path> files;
  /// How file keys were renamed: "" (one to one), "added prefix 'bert.'" (a base checkpoint into
  /// a model with a head) or "removed prefix 'bert.'" (a head checkpoint into a base model).
  std::string prefix_rule;
  /// Parameters copied from the file.
  std::vector<std::string> loaded;
  /// Parameters the file lacks.
  std::vector<std::string> missing;
  /// File keys inside the base model (or of a file without base-model prefix) without a
  /// parameter.
  std::vector<std::string> unexpected;
  /// File keys outside the base model without a parameter: a head the model does not have.
  std::vector<std::string> other_head;
  /// Parameters whose shapes differ.
  std::vector<ShapeMismatch> mismatched;
  /// File keys skipped by rule: the `position_ids` buffer older transformers saved.
  std::vector<std::string> ignored;
  /// Parameters initialised instead of loaded (the allowed missing and mismatched ones).
  std::vector<std::string> initialized;
  /// True when the file and the model have the same parameters with the same shapes.
  bool clean() const {
    return missing.empty() && unexpected.empty() && other_head.empty() && mismatched.empty();
  }
  /// A few lines: the files, the counts, and every missing, unexpected, other-head, mismatched,
  /// ignored and initialised name.
  std::string summary() const;
};

/// The safetensors files of `source`: the file itself when it is a .safetensors file, the
/// shards an index (.json) lists, or for a folder its model.safetensors, else the shards of its
/// model.safetensors.index.json. Throws when none exists (naming the paths tried).
std::vector<std::filesystem::path> weight_files(const std::filesystem::path& source);

/// Copies the tensors of `source` (see weight_files) into the parameters of `model` with the
/// same names, converting dtype and device to the parameter's. The optional base-model prefix
/// is handled as transformers does: a file without `bert.` keys loads into a model with a head
/// by adding it, a file with them loads into a base model by removing it (then the keys without
/// it are another head's). Parameters of adapters
/// put in by tlora::inject are not part of the state and stay as they are. Every check runs
/// before anything is copied: on error the model is unchanged, and the message names each
/// missing, unexpected and mismatched key.
LoadReport load_weights(PreTrainedModel& model, const std::filesystem::path& source,
                        const LoadOptions& options = {});


/// Builds a `Holder` (BertModel, RobertaForSequenceClassification, ...) from `<dir>/config.json`
/// and loads its weights; the report goes to `report` when given. To change the configuration
/// first (e.g. num_labels), use sequence_classifier_from_pretrained (sequence_classifier.h), or
/// build the model from EncoderConfig::from_pretrained(dir) and call load_weights.
template <typename Holder>
Holder from_pretrained(const std::filesystem::path& dir, const LoadOptions& options = {},
                       LoadReport* report = nullptr) {
  Holder model(EncoderConfig::from_pretrained(dir));
  LoadReport r = load_weights(*model, dir, options);
  if (report != nullptr) *report = std::move(r);
  return model;
}

}  // namespace tlora::models
TLORA_API_END
