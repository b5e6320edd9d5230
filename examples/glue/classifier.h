// The model being fine-tuned: a BERT or RoBERTa sequence classifier from a Hugging Face folder,
// prepared for one method (an adapter kind, full fine-tuning or the head alone), and its trained
// weights on disk.
#pragma once

#include "options.h"

#include "tlora/adapters/inject.h"
#include "tlora/models/sequence_classifier.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace glue_app {

// The sequence classifier being fine-tuned, and what the run knows about it.
struct Classifier {
  // BERT's or RoBERTa's: forward gives logits [batch, num_labels], loss the model's loss.
  std::shared_ptr<tlora::models::SequenceClassifierImpl> module;
  // Paths of the head modules (trained by every method).
  std::vector<std::string> head_modules;
  // Identifies the base model (its config.json and weight files) so an adapter trained on
  // another one is refused.
  std::string base_digest;
  // What the method set up: the adapter report for adapter methods.
  std::optional<tlora::InjectReport> adapter;
};

// Loads the model in `model_dir` with a new head of `num_labels` outputs (1: regression),
// initialised from `seed`.
Classifier load_classifier(const std::string& model_dir, int64_t num_labels, uint64_t seed);

// Applies `config.method`: injects the adapter (head in modules_to_save), or freezes all but the
// head (head-only), or leaves everything trainable (full).
void prepare_method(Classifier& classifier, const RunConfig& config);

// Moves the classifier to `device` in `precision` (RunConfig::precision): fp32 as it is, bf16 and
// fp16 the whole model cast, bf16-mixed the frozen matrices cast to bfloat16 (trainable weights
// stay float32; run the forward passes under uses_autocast's tlora::AutocastGuard). Call it after
// the adapter is in place.
void to_precision(Classifier& classifier, const std::string& precision, c10::Device device);

// Whether the forward passes of `precision` run under autocast (bf16-mixed).
inline bool uses_autocast(const std::string& precision) { return precision == "bf16-mixed"; }

// Whether the parameter `name` lies inside one of the module paths `modules`.
bool in_modules(const std::string& name, const std::vector<std::string>& modules);

// The parameters that require grad, by name.
std::vector<std::pair<std::string, at::Tensor>> trainable_parameters(const Classifier& classifier);

// Writes every trainable parameter, by name, to the safetensors `file` (atomically).
void save_trainable_tensors(const Classifier& classifier, const std::string& file);

// Copies save_trainable_tensors' file into a classifier prepared the same way; refuses a file
// that lacks a trainable parameter, has another shape, or holds more.
void load_trainable_tensors(Classifier& classifier, const std::string& file);

// Writes what training changed into the folder `dir`: the adapter checkpoint (PEFT layout, head
// included) for adapter methods, `trainable.safetensors` for full and head-only; plus
// `tlora_glue.json` with `info` and the base digest.
void save_trained(const Classifier& classifier, const std::string& dir, nlohmann::ordered_json info);

// Reads `dir`/tlora_glue.json, refusing a folder without it.
nlohmann::ordered_json read_trained_info(const std::string& dir);

// Loads what save_trained wrote into a classifier fresh from load_classifier (not prepared):
// adds the adapter, or copies the full/head-only weights. Refuses a folder trained on another
// base model.
void load_trained(Classifier& classifier, const std::string& dir);

// α and ‖M‖_F (or the Frobenius norm of the trainable tensors for kinds without a core) of
// every adapted layer, by module path.
nlohmann::ordered_json adapter_summary(const Classifier& classifier);

}  // namespace glue_app
