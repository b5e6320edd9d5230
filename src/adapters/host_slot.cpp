#include "adapters/host_slot.h"

#include "adapters/in_place_host.h"
#include "tlora/adapters/adaptable_linear.h"

#include <c10/util/Exception.h>
#include <torch/nn/modules/linear.h>

namespace tlora::detail {

HostSlot make_host_slot(const torch::OrderedDict<std::string, ModulePtr>& named, std::string path,
                        ModulePtr module) {
  HostSlot slot{std::move(path), std::move(module), nullptr, nullptr};
  slot.host = adapter_host(slot.module);
  slot.in_place = std::dynamic_pointer_cast<InPlaceHost>(slot.host) != nullptr;
  if (const auto dot = slot.path.rfind('.'); dot != std::string::npos) {
    slot.parent = named[slot.path.substr(0, dot)];
  }
  return slot;
}

at::Tensor host_weight(HostSlot& slot, std::string_view subject, std::string_view advice) {
  if (slot.host) return slot.host->base().weight;
  const auto* linear = dynamic_cast<const torch::nn::LinearImpl*>(slot.module.get());
  TORCH_CHECK(linear, subject, " '", slot.path, "' is a ", slot.module->name(), ", not a linear layer",
              advice);
  // The registry (children_) and `slot` hold it; any other owner is a C++ member or a container
  // (Sequential, ModuleList, ModuleDict) whose forward would keep calling it.
  slot.in_place = slot.module.use_count() > 2;
  return linear->weight;
}

std::shared_ptr<AdapterHost> install_host(torch::nn::Module& model, HostSlot& slot) {
  if (slot.host) return slot.host;
  const auto linear = std::dynamic_pointer_cast<torch::nn::LinearImpl>(slot.module);
  if (slot.in_place) {
    slot.host = attach_in_place_host(linear, slot.path);
    return slot.host;
  }
  auto host = std::make_shared<AdaptableLinearImpl>(linear->weight, linear->bias);
  const auto dot = slot.path.rfind('.');
  const std::string key = dot == std::string::npos ? slot.path : slot.path.substr(dot + 1);
  (slot.parent ? *slot.parent : model).replace_module(key, host);
  slot.host = host;
  return slot.host;
}

std::vector<std::shared_ptr<AdapterHost>> hosts_of(torch::nn::Module& model) {
  std::vector<std::shared_ptr<AdapterHost>> hosts;
  for (auto& [path, host] : adapter_hosts(model)) hosts.push_back(std::move(host));
  return hosts;
}

void freeze_all_but_adapters_and(torch::nn::Module& model, const std::vector<ModulePtr>& kept) {
  for (auto& p : model.parameters()) p.requires_grad_(false);
  for (auto& h : hosts_of(model)) h->set_active_adapter(h->active_adapter());
  for (auto& m : kept) {
    for (auto& p : m->parameters()) p.requires_grad_(true);
  }
}

}  // namespace tlora::detail
