#include "host_slot.h"

#include <c10/util/Exception.h>
#include <torch/nn/modules/linear.h>

namespace tlora::detail {

HostSlot make_host_slot(const torch::OrderedDict<std::string, ModulePtr>& named, std::string path,
                        ModulePtr module) {
  HostSlot slot{std::move(path), std::move(module), nullptr, nullptr};
  slot.host = std::dynamic_pointer_cast<LinearImpl>(slot.module);
  if (const auto dot = slot.path.rfind('.'); dot != std::string::npos) {
    slot.parent = named[slot.path.substr(0, dot)];
  }
  return slot;
}

at::Tensor host_weight(const HostSlot& slot, std::string_view subject, std::string_view advice) {
  if (slot.host) return slot.host->weight;
  const auto* linear = dynamic_cast<const torch::nn::LinearImpl*>(slot.module.get());
  TORCH_CHECK(linear, subject, " '", slot.path, "' is a ", slot.module->name(), ", not a linear layer",
              advice);
  // The registry (children_) and `slot` hold it; any other owner is a C++ member or a container
  // (Sequential, ModuleList, ModuleDict) whose forward would keep calling it.
  TORCH_CHECK(slot.module.use_count() <= 2, subject, " '", slot.path,
              "' is a torch::nn::Linear that is still held by a C++ member or a container, so "
              "replacing it in the module registry would not change what forward() calls. Build "
              "the model from tlora::Linear (a drop-in with the same options and parameter "
              "names), which carries adapters in place.");
  return linear->weight;
}

std::shared_ptr<LinearImpl> install_host(torch::nn::Module& model, HostSlot& slot) {
  if (slot.host) return slot.host;
  const auto linear = std::dynamic_pointer_cast<torch::nn::LinearImpl>(slot.module);
  slot.host = std::make_shared<LinearImpl>(linear->weight, linear->bias);
  const auto dot = slot.path.rfind('.');
  const std::string key = dot == std::string::npos ? slot.path : slot.path.substr(dot + 1);
  (slot.parent ? *slot.parent : model).replace_module(key, slot.host);
  return slot.host;
}

std::vector<std::shared_ptr<LinearImpl>> hosts_of(torch::nn::Module& model) {
  std::vector<std::shared_ptr<LinearImpl>> hosts;
  for (const auto& m : model.modules(/*include_self=*/false)) {
    if (auto h = std::dynamic_pointer_cast<LinearImpl>(m)) hosts.push_back(std::move(h));
  }
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
