// Internal: finding the layer at a module path that is, or can become, a tlora::Linear host, and
// putting a host there. Shared by inject and load_adapter so that both refuse and swap alike.
#pragma once

#include "tlora/host_linear.h"

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/ordered_dict.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tlora::detail {

using ModulePtr = std::shared_ptr<torch::nn::Module>;

/// A layer of a model at a module path, before anything is changed.
struct HostSlot {
  /// Module path.
  std::string path;
  /// The module there.
  ModulePtr module;
  /// Its parent; null when the parent is the root.
  ModulePtr parent;
  /// The module as a tlora::Linear, or null when it is something else.
  std::shared_ptr<LinearImpl> host;
};

/// The slot of `module` at `path`; `named` is the root's named_modules(), where the parent is
/// looked up.
HostSlot make_host_slot(const torch::OrderedDict<std::string, ModulePtr>& named, std::string path,
                        ModulePtr module);

/// The base weight of a slot that can carry adapters: a tlora::Linear, or a torch::nn::Linear
/// that only its parent's registry and `slot` hold, so that replacing it there changes what
/// forward() calls. Otherwise throws "<subject> '<path>' is a …", adding `advice` when the
/// module is not a linear layer at all. Call it after dropping every other copy of the module
/// pointer (e.g. the named_modules() dictionary), which would count as a holder.
at::Tensor host_weight(const HostSlot& slot, std::string_view subject, std::string_view advice);

/// The slot's tlora::Linear: the one already there, or a new one sharing the torch::nn::Linear's
/// weight and bias, put in its place in the parent's registry. Call host_weight first.
std::shared_ptr<LinearImpl> install_host(torch::nn::Module& model, HostSlot& slot);

/// Every tlora::Linear in `model`, in module order.
std::vector<std::shared_ptr<LinearImpl>> hosts_of(torch::nn::Module& model);

/// Freezes every parameter except those of each host's active adapter and those of `kept`.
void freeze_all_but_adapters_and(torch::nn::Module& model, const std::vector<ModulePtr>& kept);

}  // namespace tlora::detail
