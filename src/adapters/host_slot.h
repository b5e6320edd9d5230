// Internal: finding the layer at a module path that is, or can become, an adapter host, and
// putting a host there. Shared by inject and load_adapter so that both refuse and patch alike.
#pragma once

#include "tlora/adapters/host.h"

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
  /// The module's adapter host, or null when it has none yet.
  std::shared_ptr<AdapterHost> host;
  /// A torch::nn::Linear that something besides its parent's registry holds (a C++ member, a
  /// Sequential), so it is (or will be, see host_weight) patched in place rather than replaced.
  bool in_place = false;
};

/// The slot of `module` at `path`; `named` is the root's named_modules(), where the parent is
/// looked up.
HostSlot make_host_slot(const torch::OrderedDict<std::string, ModulePtr>& named, std::string path,
                        ModulePtr module);

/// The base weight of a slot that can carry adapters: a host, or a torch::nn::Linear. Decides
/// how a Linear will be patched (slot.in_place). Otherwise throws "<subject> '<path>' is a …",
/// adding `advice`. Call it after dropping every other copy of the module pointer (e.g. the
/// named_modules() dictionary), which would count as a holder.
at::Tensor host_weight(HostSlot& slot, std::string_view subject, std::string_view advice);

/// The slot's host: the one already there; for a torch::nn::Linear that only its parent's
/// registry holds, a tlora::AdaptableLinear sharing its weight and bias, put in its place (the fast way);
/// for one held elsewhere, an in-place host attached to it. Call host_weight first.
std::shared_ptr<AdapterHost> install_host(torch::nn::Module& model, HostSlot& slot);

/// Every adapter host in `model`, in module order.
std::vector<std::shared_ptr<AdapterHost>> hosts_of(torch::nn::Module& model);

/// Freezes every parameter except those of each host's active adapter and those of `kept`.
void freeze_all_but_adapters_and(torch::nn::Module& model, const std::vector<ModulePtr>& kept);

}  // namespace tlora::detail
