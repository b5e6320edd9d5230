// Internal: which tensors an adapter checkpoint holds and under which keys, building the
// adapters a config describes, and the checksums that bind a config to its tensors.
#pragma once

#include "io/adapter_config.h"
#include "adapters/host_slot.h"
#include "tlora/adapters/adapter.h"

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tlora::detail {

/// Tensors by key, in key order.
using TensorMap = std::map<std::string, at::Tensor>;

/// One adapted layer being saved or loaded.
struct Adapted {
  /// The layer as the config records it.
  ModuleEntry entry;
  /// Its adapter.
  std::shared_ptr<AdapterImpl> adapter;
};

/// FNV-1a-64 over each tensor's key, dtype, shape and bytes, in key order, as 16 hex digits.
std::string checksum(const TensorMap& tensors);

/// The checksum a config records for the base weight of an adapted layer: `checksum` of the
/// weight converted to the checkpoint's dtype (so that a model cast to that dtype still matches).
std::string base_layer_checksum(const at::Tensor& weight, at::ScalarType dtype);

/// The largest in_features and out_features of the layers: the extent of the tensors a method's
/// adapters share.
std::pair<int64_t, int64_t> layer_extent(const std::vector<ModuleEntry>& modules);

/// The adapters' trainable tensors under "<path>.<parameter>".
TensorMap trainable_tensors(const std::vector<Adapted>& adapted);

/// The adapters' fixed tensors under "<path>.<buffer>", except those the method shares between
/// layers (VeRA's pair), which are returned once under their own names, whole. Throws when a
/// layer's slice of a shared tensor is not the leading part of the whole.
TensorMap fixed_tensors(AdapterKind kind, const std::vector<Adapted>& adapted);

/// The adapters `config` describes, on layers with these base weights (which fix device and
/// dtype; their values matter only to LoRA-XS's SVD). A method that shares tensors between
/// layers uses `shared`, or draws them.
std::vector<Adapted> build_adapters(const AdapterConfig& config, const std::vector<at::Tensor>& weights,
                                    std::optional<SharedTensors> shared);

/// The parameters of a module to save, under "<path>.<name>", without those of adapters it may
/// carry (they belong to their own checkpoints).
TensorMap saved_module_parameters(const ModulePtr& module, const std::string& path);

}  // namespace tlora::detail
