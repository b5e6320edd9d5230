// A linear layer that carries adapters: the bookkeeping every host shares (named adapters, the
// active one, enabling, merging), whether the host is a tlora::AdaptableLinear or a torch::nn::Linear
// patched in place.
#pragma once

#include "tlora/export.h"

#include "tlora/adapters/adapter.h"

#include <torch/nn/module.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

TLORA_API_BEGIN
namespace tlora {

/// The adapters of one linear layer. Adapters are registered as child modules of the layer,
/// named after the adapter ("default", "sst2", ...), so the layer's parameters include them.
class AdapterHost {
 public:
  virtual ~AdapterHost() = default;

  /// The frozen base layer the adapters change.
  virtual BaseLinear base() const = 0;
  /// Brings what the layer computes up to date with its adapters' parameters. A no-op for a
  /// tlora::AdaptableLinear, which applies its adapter in forward; a torch::nn::Linear patched in place
  /// needs it after every change of the adapter's parameters (see refresh_adapted_weights).
  virtual void refresh() {}

  /// Adds an adapter under `name` (no '.', not empty, not taken, not weight or bias). The first
  /// adapter becomes active; later ones are added inactive.
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
  void set_adapters_enabled(bool enabled);
  /// Whether adapters are applied.
  bool adapters_enabled() const { return enabled_; }
  /// Folds the active adapter's ΔW into the base weight and removes all adapters.
  void merge_and_unload();
  /// Removes all adapters without merging: the base layer again.
  void unload();

 protected:
  /// The module the adapters are registered under.
  virtual torch::nn::Module& owner() = 0;
  /// Called after every change of the adapters, the active one or enabling.
  virtual void adapters_changed() {}
  /// The adapter forward applies: the active one while adapters are enabled, else null.
  AdapterImpl* applied() const;
  /// The adapters by name.
  const std::map<std::string, std::shared_ptr<AdapterImpl>>& adapters() const { return adapters_; }

 private:
  std::map<std::string, std::shared_ptr<AdapterImpl>> adapters_;
  std::string active_;
  bool enabled_ = true;
};

/// The adapter host at `module`: the module itself when it is a tlora::AdaptableLinear, the in-place host
/// of a patched torch::nn::Linear, or null.
std::shared_ptr<AdapterHost> adapter_host(const std::shared_ptr<torch::nn::Module>& module);

/// Every adapter host of `model` with its module path, in module order.
std::vector<std::pair<std::string, std::shared_ptr<AdapterHost>>> adapter_hosts(const torch::nn::Module& model);

/// Recomputes the weight of every torch::nn::Linear that `inject` or `load_adapter` patched in
/// place from its frozen W0 and its active adapter. Call it after each optimizer step (and after
/// changing adapter parameters by hand); a backward pass through a weight older than its
/// adapter's parameters throws instead of computing wrong gradients. Layers built from
/// tlora::AdaptableLinear never need it.
void refresh_adapted_weights(const torch::nn::Module& model);

}  // namespace tlora
TLORA_API_END
