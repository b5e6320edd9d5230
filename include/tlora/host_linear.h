// tlora::Linear: a drop-in for torch::nn::Linear that can carry adapters in place, so a model
// built from it is patched without rebinding any C++ member.
#pragma once

#include "tlora/adapters.h"

#include <torch/nn/module.h>
#include <torch/nn/options/linear.h>
#include <torch/nn/pimpl.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tlora {

/// y = x·Wᵀ + b, plus the active adapter's change when one is active and adapters are enabled.
/// Options, initialisation and the parameter names `weight` and `bias` are torch::nn::Linear's.
/// Adapters are child modules named after the adapter ("default", "sst2", ...).
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features)
      : LinearImpl(torch::nn::LinearOptions(in_features, out_features)) {}
  /// A layer initialised as torch::nn::Linear is.
  explicit LinearImpl(const torch::nn::LinearOptions& options);
  /// A layer that shares (does not copy) the given weight and bias.
  LinearImpl(at::Tensor weight, at::Tensor bias);

  /// Re-initialises weight and bias as torch::nn::Linear does.
  void reset_parameters();
  /// Applies the layer to x of shape [..., in_features].
  at::Tensor forward(const at::Tensor& input);
  /// Prints `tlora::Linear(in_features=…, out_features=…, bias=…, adapters=[…], active=…)`.
  void pretty_print(std::ostream& stream) const override;

  /// Adds an adapter under `name` (no '.', not empty, not taken). The first adapter becomes
  /// active; later ones are added inactive.
  void add_adapter(const std::string& name, std::shared_ptr<AdapterImpl> adapter);
  /// Removes an adapter; removing the active one leaves none active.
  void delete_adapter(const std::string& name);
  /// Makes `name` the active adapter, or none for "". Only the active adapter's parameters
  /// require grad. Switching copies no weights.
  void set_active_adapter(const std::string& name);
  /// Name of the active adapter ("" for none).
  const std::string& active_adapter() const { return active_; }
  /// The adapter called `name`, or nullptr.
  std::shared_ptr<AdapterImpl> adapter(const std::string& name) const;
  /// Names of all adapters, sorted.
  std::vector<std::string> adapter_names() const;
  /// Turns every adapter off (base outputs) or back on, without forgetting the active one.
  void set_adapters_enabled(bool enabled) { enabled_ = enabled; }
  /// Whether adapters are applied.
  bool adapters_enabled() const { return enabled_; }
  /// Folds the active adapter's ΔW into the weight and removes all adapters.
  void merge_and_unload();
  /// Removes all adapters without merging: the base layer again.
  void unload();

  /// The options (sizes and whether there is a bias).
  torch::nn::LinearOptions options;
  /// W, out×in.
  at::Tensor weight;
  /// b (undefined without bias).
  at::Tensor bias;

 private:
  std::map<std::string, std::shared_ptr<AdapterImpl>> adapters_;
  std::string active_;
  bool enabled_ = true;
};

/// A ModuleHolder for LinearImpl.
TORCH_MODULE(Linear);

}  // namespace tlora
