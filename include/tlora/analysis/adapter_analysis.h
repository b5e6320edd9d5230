// What trained adapters learned, measured on the updates ΔW themselves (not on W0 + ΔW, where
// the shared W0 dominates): per layer norms, spectra, effective ranks and entry statistics, and
// between two adapters on one base the cosine of their updates and the angles between their
// singular subspaces. Everything is computed from the factored form (low_rank.h).
#pragma once

#include "tlora/export.h"

#include "tlora/adapters/adapter.h"
#include "tlora/io/checkpoint.h"
#include "tlora/analysis/low_rank.h"
#include "tlora/analysis/statistics.h"

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

TLORA_API_BEGIN
namespace tlora {

/// Choices of the analysis.
struct AnalysisOptions {
  /// numerical_rank counts singular values above this fraction of the largest.
  double rank_tolerance = 1e-2;
  /// compare_adapters: angles between the top-k left and right singular subspaces.
  int64_t top_k = 4;
};

/// The measures of one adapted layer (all in float64).
struct LayerAnalysis {
  /// Module path.
  std::string path;
  /// The adapter kind.
  AdapterKind kind = AdapterKind::TLoRA;
  /// Sizes of the layer and the adapter's rank.
  int64_t in_features = 0, out_features = 0, rank = 0;
  /// FactoredDelta::scale: TLoRA's α, LoRA's alpha/r, 1 for VeRA and LoRA-XS.
  double alpha = 0;
  /// ‖core‖_F and ‖core‖_2 (TLoRA's and LoRA-XS's M; I for LoRA; diag(λ_d) for VeRA).
  double core_fro = 0, core_spectral = 0;
  /// ‖up‖_2 and ‖down‖_2 (B and A; VeRA's up is diag(λ_b)·B).
  double up_spectral = 0, down_spectral = 0;
  /// Singular values of ΔW, descending (delta_svd).
  at::Tensor singular_values;
  /// ‖ΔW‖_F and ‖W0‖_F.
  double delta_fro = 0, base_fro = 0;
  /// Roy & Vetterli's entropy effective rank of ΔW.
  double effective_rank = 0;
  /// Singular values of ΔW above rank_tolerance·σ_max.
  int64_t numerical_rank = 0;
  /// Statistics of the entries of each trainable tensor with more than one entry, by its name
  /// in the adapter ("core"; "lora_A", "lora_B"; "lambda_b", "lambda_d").
  std::vector<std::pair<std::string, EntryStatistics>> entries;
};

/// Measures of one layer's adapter on the base weight `base_weight` (out×in).
LayerAnalysis analyze_layer(const std::string& path, const AdapterImpl& adapter, const at::Tensor& base_weight,
                            const AnalysisOptions& options = {});

/// analyze_layer for every tlora::AdaptableLinear of `model` that has an adapter named `adapter_name`,
/// in module order. Throws when none has.
std::vector<LayerAnalysis> analyze_adapter(const torch::nn::Module& model, const std::string& adapter_name,
                                           const AnalysisOptions& options = {});

/// Two adapters on the same layer, compared.
struct LayerComparison {
  /// Module path.
  std::string path;
  /// cos(ΔW_a, ΔW_b) (delta_cosine).
  double cosine = 0;
  /// cos(W0 + ΔW_a, W0 + ΔW_b), for contrast: near 1 whatever the adapters learned.
  double full_weight_cosine = 0;
  /// Subspace dimension used: min(top_k, the number of non-negligible singular values of each).
  int64_t k = 0;
  /// Principal angles (radians, ascending) between the top-k left / right singular subspaces.
  at::Tensor left_angles, right_angles;
};

/// compare the adapters `a` and `b` on every tlora::AdaptableLinear of `model` that has both, in module
/// order. Throws when no layer has both.
std::vector<LayerComparison> compare_adapters(const torch::nn::Module& model, const std::string& a,
                                              const std::string& b, const AnalysisOptions& options = {});

/// Throws unless two checkpoints can come from the same base model: every layer both adapt has
/// the same base_checksum in both (when both record one), and when neither records checksums for
/// a shared layer, the recorded base_model names (when both have one) agree. `label_a` and
/// `label_b` name the checkpoints in the message.
void check_same_base(const CheckpointInfo& a, const std::string& label_a, const CheckpointInfo& b,
                     const std::string& label_b);

}  // namespace tlora
TLORA_API_END
