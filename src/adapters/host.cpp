#include "tlora/adapters/host.h"

#include "adapters/in_place_host.h"
#include "tlora/adapters/adaptable_linear.h"

#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>
#include <torch/nn/modules/linear.h>

namespace tlora {

void AdapterHost::add_adapter(const std::string& name, std::shared_ptr<AdapterImpl> adapter) {
  TORCH_CHECK(!name.empty() && name.find('.') == std::string::npos && name != "weight" && name != "bias" &&
                  name != detail::InPlaceHost::kName,
              "add_adapter: invalid adapter name '", name, "' (non-empty, no '.', not weight, bias or ",
              detail::InPlaceHost::kName, ")");
  TORCH_CHECK(!adapters_.count(name), "add_adapter: an adapter named '", name, "' already exists");
  TORCH_CHECK(adapter != nullptr, "add_adapter: adapter '", name, "' is null");
  owner().register_module(name, adapter);
  adapters_.emplace(name, std::move(adapter));
  set_active_adapter(active_.empty() ? name : active_);
}

void AdapterHost::delete_adapter(const std::string& name) {
  TORCH_CHECK(adapters_.count(name), "delete_adapter: no adapter named '", name, "'");
  owner().unregister_module(name);
  adapters_.erase(name);
  if (active_ == name) active_.clear();
  adapters_changed();
}

void AdapterHost::set_active_adapter(const std::string& name) {
  TORCH_CHECK(name.empty() || adapters_.count(name), "set_active_adapter: no adapter named '", name, "'");
  active_ = name;
  for (auto& [key, a] : adapters_) {
    const bool active = key == name;
    for (auto& p : a->parameters()) p.requires_grad_(active);
  }
  adapters_changed();
}

std::shared_ptr<AdapterImpl> AdapterHost::adapter(const std::string& name) const {
  const auto it = adapters_.find(name);
  return it == adapters_.end() ? nullptr : it->second;
}

std::vector<std::string> AdapterHost::adapter_names() const {
  std::vector<std::string> names;
  for (const auto& [key, a] : adapters_) names.push_back(key);
  return names;
}

void AdapterHost::set_adapters_enabled(bool enabled) {
  enabled_ = enabled;
  adapters_changed();
}

void AdapterHost::merge_and_unload() {
  if (!active_.empty()) {
    c10::NoGradGuard no_grad;
    at::Tensor weight = base().weight;
    weight.add_(adapters_.at(active_)->delta_weight().to(weight.scalar_type()));
  }
  unload();
}

void AdapterHost::unload() {
  for (const auto& name : adapter_names()) delete_adapter(name);
}

AdapterImpl* AdapterHost::applied() const {
  return enabled_ && !active_.empty() ? adapters_.at(active_).get() : nullptr;
}

std::shared_ptr<AdapterHost> adapter_host(const std::shared_ptr<torch::nn::Module>& module) {
  if (auto host = std::dynamic_pointer_cast<AdaptableLinearImpl>(module)) return host;
  if (dynamic_cast<const torch::nn::LinearImpl*>(module.get()) == nullptr) return nullptr;
  const auto children = module->named_children();
  const auto* found = children.find(detail::InPlaceHost::kName);
  return found ? std::dynamic_pointer_cast<detail::InPlaceHost>(*found) : nullptr;
}

std::vector<std::pair<std::string, std::shared_ptr<AdapterHost>>> adapter_hosts(const torch::nn::Module& model) {
  std::vector<std::pair<std::string, std::shared_ptr<AdapterHost>>> hosts;
  std::map<std::string, std::string> owner_of_key;  // adapter path (the random streams' key) → module path
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    auto host = adapter_host(item.value());
    if (!host) continue;
    for (const auto& name : host->adapter_names()) {
      const std::string& key = host->adapter(name)->path();
      const auto [it, added] = owner_of_key.emplace(key, item.key());
      TORCH_CHECK(added || it->second == item.key(), "the layers '", it->second, "' and '", item.key(),
                  "' are both named '", key, "'; the name keys an adapter's random projections and dropout "
                  "masks, so each layer of a model needs its own (e.g. TLoRALinearOptions::name = its module path)");
    }
    hosts.emplace_back(item.key(), std::move(host));
  }
  return hosts;
}

void refresh_adapted_weights(const torch::nn::Module& model) {
  for (auto& [path, host] : adapter_hosts(model)) host->refresh();
}

}  // namespace tlora
