// Internal: adapter_config.json as a struct, and its validating reader and writer.
#pragma once

#include "tlora/adapters/adapter.h"

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace tlora::detail {

/// One adapted layer as the config records it.
struct ModuleEntry {
  /// Module path.
  std::string path;
  /// Sizes of the base layer.
  int64_t in_features = 0, out_features = 0;
  /// Rank and initial scale of this layer's adapter (the per-module overrides applied).
  int64_t rank = 0;
  double scale = 0;
  /// base_layer_checksum of the base weight at save time; empty in checkpoints that predate it.
  std::string base_checksum;
};

/// Everything adapter_config.json holds.
struct AdapterConfig {
  /// Version of the library that wrote the file (informational).
  std::string library_version;
  /// Name the adapter was saved under.
  std::string adapter_name;
  /// Where the base model came from (SaveAdapterOptions::base_model); empty when not recorded.
  std::string base_model;
  /// Options shared by all layers; rank and scale are the first layer's.
  AdapterOptions options;
  /// The dtype of every tensor in adapter_model.safetensors.
  at::ScalarType dtype = at::kFloat;
  /// Whether the fixed projections are in the file (else regenerated from the seed).
  bool projections_stored = true;
  /// When regenerated: the checksum of the projections at save time.
  std::string projection_checksum;
  /// The checksum of all tensors in adapter_model.safetensors; empty when absent.
  std::string tensors_checksum;
  /// Paths of the modules whose parameters are saved.
  std::vector<std::string> modules_to_save;
  /// Every adapted layer, in module order.
  std::vector<ModuleEntry> modules;
};

/// The config as pretty-printed JSON.
std::string format_adapter_config(const AdapterConfig& config);

/// Parses and validates the text of `file`; every refusal is a c10::Error naming the file and
/// the field.
AdapterConfig parse_adapter_config(const std::filesystem::path& file, std::string_view text);

/// The name of a floating dtype in the config ("float32", ...), empty for any other dtype.
std::string_view config_dtype_name(at::ScalarType dtype);

}  // namespace tlora::detail
