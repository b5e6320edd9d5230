// Putting adapters into a model: matching modules by name as PEFT does, freezing the rest,
// switching and removing adapters.
#pragma once

#include "tlora/export.h"

#include "tlora/adapters/host.h"

#include <torch/nn/module.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

TLORA_API_BEGIN
namespace tlora {

/// What to adapt and how. Name lists match a module's whole dotted path or a `.`-suffix of it
/// ("query" matches "encoder.layer.0.attention.self.query"); regexes match the whole path.
struct InjectConfig {
  /// Adapter options for every adapted layer (rank and scale may be overridden per pattern).
  AdapterOptions adapter;
  /// Name of the adapter in each host (several named adapters can live on one model).
  std::string adapter_name = "default";
  /// Module names to adapt (whole path or `.`-suffix).
  std::vector<std::string> target_modules;
  /// Alternatively or additionally, a regex matched against the whole path.
  std::string target_regex;
  /// Names (whole path or `.`-suffix) never adapted even when targeted.
  std::vector<std::string> exclude_modules;
  /// A regex of paths never adapted.
  std::string exclude_regex;
  /// If not empty, only layers with these indices are adapted.
  std::vector<int64_t> layers_to_transform;
  /// Where the layer index is read from a path: the first capture group of a regex search.
  std::string layers_pattern = R"((?:^|\.)(?:layer|layers|h|blocks)\.(\d+)(?:\.|$))";
  /// Per-module rank overrides: a pattern matches a path when `(.*\.)?(pattern)` matches it
  /// whole (PEFT's rule). Earlier entries win.
  std::vector<std::pair<std::string, int64_t>> rank_pattern;
  /// Per-module scale overrides, matched like rank_pattern.
  std::vector<std::pair<std::string, double>> scale_pattern;
  /// Modules kept trainable and saved with the adapter (e.g. the classifier head); matched
  /// like target_modules.
  std::vector<std::string> modules_to_save;
};

/// One adapted layer in a report.
struct AdaptedModule {
  /// Module path.
  std::string path;
  /// Input and output sizes of the layer.
  int64_t in_features = 0, out_features = 0;
  /// Rank after overrides.
  int64_t rank = 0;
  /// Scale after overrides.
  double scale = 0;
  /// Trainable elements of its adapter.
  int64_t trainable = 0;
};

/// What `inject` did.
struct InjectReport {
  /// The adapter kind.
  AdapterKind kind = AdapterKind::TLoRA;
  /// Name of the adapter that was added (InjectConfig::adapter_name).
  std::string adapter_name;
  /// Every adapted layer, in module order.
  std::vector<AdaptedModule> modules;
  /// Paths of the modules kept trainable by modules_to_save.
  std::vector<std::string> saved_modules;
  /// Elements of all parameters that require grad after injection.
  int64_t trainable_params = 0;
  /// Elements of all parameters of the model (adapters included; a tensor shared by two modules,
  /// such as a tied head's weight, once).
  int64_t all_params = 0;
  /// `trainable params: N || all params: M || trainable%: P`.
  std::string summary() const;
  /// One line per adapted module with its shapes and trainable count, then the summary.
  std::string table() const;
};

/// Puts an adapter named config.adapter_name into every matching linear layer of `model` and
/// freezes every parameter except the active adapter's and those of modules_to_save. A
/// tlora::AdaptableLinear carries the adapter in its forward. A torch::nn::Linear is replaced by a
/// tlora::AdaptableLinear in its parent's registry when nothing else holds it; one held by a C++ member or
/// a container (Sequential, ModuleList) is patched in place: its `weight` member becomes
/// W0 + ΔW, which refresh_adapted_weights recomputes after each optimizer step
/// (docs/patching.md). Throws, leaving the model unchanged, when nothing matched, a match is not
/// a linear layer, an in-place layer is asked for dropout, or an override/modules_to_save pattern
/// matched nothing.
InjectReport inject(torch::nn::Module& model, const InjectConfig& config);

/// Activates the adapter `name` on every host that has it ("" deactivates all), freezing the
/// others. Throws when no host has an adapter of that name.
void set_active_adapter(torch::nn::Module& model, const std::string& name);
/// Deletes the adapter `name` from every host.
void delete_adapter(torch::nn::Module& model, const std::string& name);
/// Folds every host's active adapter into its weight and removes all adapters: the model is
/// made of plain linear layers again.
void merge_and_unload(torch::nn::Module& model);
/// Removes all adapters without merging: the base model again.
void unload(torch::nn::Module& model);

/// While alive, every host of the model computes its base layer only.
class DisableAdapters {
 public:
  /// Disables the adapters of every host in `model`.
  explicit DisableAdapters(torch::nn::Module& model);
  /// Restores each host's previous state.
  ~DisableAdapters();
  DisableAdapters(const DisableAdapters&) = delete;
  DisableAdapters& operator=(const DisableAdapters&) = delete;

 private:
  std::vector<std::pair<std::shared_ptr<AdapterHost>, bool>> hosts_;
};

/// `trainable params: N || all params: M || trainable%: P` for any module.
std::string trainable_summary(const torch::nn::Module& model);

/// The parameters of `model` that require grad (after inject: the active adapters' and those of
/// modules_to_save), in module order, each tensor once (a tied head's weight is the
/// embedding's): what to give the optimizer.
std::vector<at::Tensor> trainable_parameters(const torch::nn::Module& model);

}  // namespace tlora
TLORA_API_END
