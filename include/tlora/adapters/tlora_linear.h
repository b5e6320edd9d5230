// TLoRALinear: a frozen linear layer adapted by ΔW = α·B·M·A (TLoRA, arXiv 2504.18735).
#pragma once

#include "tlora/export.h"

#include "tlora/core/functional.h"
#include "tlora/adapters/adaptable_linear.h"
#include "tlora/core/projections.h"

#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>

TLORA_API_BEGIN
namespace tlora {

/// Options for TLoRALinear, in LibTorch's style: `TLoRALinearOptions(768, 768, 32).dropout(0.5)`.
struct TLoRALinearOptions {
  TLoRALinearOptions(int64_t in_features, int64_t out_features, int64_t rank);

  /// Options matching an existing torch::nn::Linear (its sizes and whether it has a bias).
  static TLoRALinearOptions like(const torch::nn::Linear& base, int64_t rank);

  /// Size of each input sample.
  TORCH_ARG(int64_t, in_features);
  /// Size of each output sample.
  TORCH_ARG(int64_t, out_features);
  /// Rank r of the adapter: 1 ≤ r ≤ min(in, out).
  TORCH_ARG(int64_t, rank);
  /// Whether the base layer has a bias.
  TORCH_ARG(bool, bias) = true;
  /// Initial value of the scale α.
  TORCH_ARG(double, scale_init) = 1.0;
  /// Whether α is trained (parameter `default.scale`) or stays at scale_init (a buffer).
  TORCH_ARG(bool, train_scale) = true;
  /// Adapter dropout probability in [0, 1), active in training mode only.
  TORCH_ARG(double, dropout) = 0.0;
  /// Whether dropout applies to the adapter's output (the paper) or its input.
  TORCH_ARG(DropoutPosition, dropout_position) = DropoutPosition::Output;
  /// How A and B are drawn.
  TORCH_ARG(InitScheme, init) = InitScheme::Paper;
  /// Seed of A, B and the dropout masks.
  TORCH_ARG(uint64_t, seed) = 0;
  /// Layer name, e.g. its module path: it keys the Philox streams of A, B and the dropout masks
  /// (so each layer of a model differs under one seed) and names the layer in error messages.
  /// Names must be unique within a model (functions that walk a model refuse duplicates). Left
  /// empty, the layer is named "tlora_linear.<n>", n counting such layers in the process from 0,
  /// so distinct layers never share A and B.
  TORCH_ARG(std::string, name);
  /// Execution strategy of forward and backward.
  TORCH_ARG(Strategy, strategy) = Strategy::Auto;
};

/// A linear layer y = x·W0ᵀ + b + α·((x·Aᵀ)·Mᵀ)·Bᵀ with W0 and b frozen, A and B fixed Gaussian
/// buffers, and only M (r×r) and α trainable: a tlora::AdaptableLinear carrying one TLoRA adapter named
/// "default", built from TLoRALinearOptions. Being a host like any other, it is seen by
/// save_adapter, load_adapter, set_active_adapter, merge_and_unload, the analysis tools and
/// resume. Parameter names: `weight`, `bias` (a Linear's state dict loads into them),
/// `default.core`, `default.scale`; buffers `default.down`, `default.up`.
class TLoRALinearImpl : public AdaptableLinearImpl {
 public:
  TLoRALinearImpl(int64_t in_features, int64_t out_features, int64_t rank)
      : TLoRALinearImpl(TLoRALinearOptions(in_features, out_features, rank)) {}
  /// A new layer: W0 and b initialised as torch::nn::Linear does, A and B from (seed, name).
  explicit TLoRALinearImpl(TLoRALinearOptions options);
  /// Adapts an existing Linear. Its weight and bias are shared, not copied, and frozen; the
  /// options' sizes and bias flag must match the Linear.
  TLoRALinearImpl(const torch::nn::Linear& base, TLoRALinearOptions options);

  /// Re-initialises W0 and b as torch::nn::Linear does, then the adapter (reset_adapter).
  void reset();
  /// Redraws A and B from (seed, name), zeroes M and sets α to scale_init; W0 is untouched.
  void reset_adapter();

  /// Applies the adapted layer to x of shape [..., in_features].
  at::Tensor forward(const at::Tensor& input);

  /// ΔW = α·B·M·A (out×in).
  at::Tensor delta_weight() const;
  /// Folds ΔW into W0, after which forward is a plain linear layer. With `keep_original` the
  /// original W0 is kept so that `unmerge` restores it bit-exactly.
  void merge(bool keep_original = true);
  /// Undoes `merge`: restores the kept W0, or subtracts ΔW (exact up to rounding).
  void unmerge();
  /// Whether ΔW is currently folded into the weight.
  bool merged() const { return merged_; }

  /// Number of trainable adapter parameters: r² + 1 (r² with train_scale off).
  int64_t adapter_parameter_count() const;

  /// The tensors as the functional API takes them.
  TriLinearWeights weights() const;

  /// The options this layer was built with (its name filled in when it was left empty).
  const TLoRALinearOptions& tlora_options() const { return tlora_options_; }
  /// Changes the execution strategy of forward and backward; the maths stays the same.
  void set_strategy(Strategy strategy);

  /// Prints `tlora::TLoRALinear(in_features=..., out_features=..., rank=..., ...)`.
  void pretty_print(std::ostream& stream) const override;

  /// Fixed down-projection A, r×in (the adapter's buffer).
  at::Tensor down;
  /// Fixed up-projection B, out×r (the adapter's buffer).
  at::Tensor up;
  /// Trainable core M, r×r (the adapter's parameter).
  at::Tensor core;
  /// Scale α, 0-dim (the adapter's parameter, or its buffer when train_scale is off).
  at::Tensor scale;

 private:
  void check_options() const;

  TLoRALinearOptions tlora_options_;
  bool merged_ = false;
  at::Tensor original_weight_;
};

/// A ModuleHolder for TLoRALinearImpl (see LibTorch's module ownership semantics).
TORCH_MODULE(TLoRALinear);

}  // namespace tlora
TLORA_API_END
