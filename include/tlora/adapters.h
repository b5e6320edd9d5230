// Adapter kinds that a tlora::Linear host can carry: TLoRA and its baselines LoRA, VeRA and
// LoRA-XS, behind one interface so that patching, switching and checkpoints treat them alike.
#pragma once

#include "tlora/functional.h"
#include "tlora/projections.h"

#include <torch/nn/module.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace tlora {

/// Which adapter method.
enum class AdapterKind {
  /// ΔW = α·B·M·A with A, B fixed Gaussian, M and α trainable.
  TLoRA,
  /// ΔW = (alpha/r)·B·A, both trainable (PEFT's defaults).
  LoRA,
  /// ΔW = diag(λ_b)·B·diag(λ_d)·A with A, B frozen and shared by all layers.
  VeRA,
  /// ΔW = B·M·A with A, B from the truncated SVD of W0, M trainable.
  LoRAXS,
};

/// Lower-case name of a kind ("tlora", "lora", "vera", "loraxs").
std::string_view to_string(AdapterKind kind);
/// The kind with that name; throws naming the accepted names otherwise.
AdapterKind adapter_kind_from_string(std::string_view name);

/// Hyper-parameters of one adapter (one layer's; `inject` fills them from its config).
struct AdapterOptions {
  /// The method.
  AdapterKind kind = AdapterKind::TLoRA;
  /// Rank r.
  int64_t rank = 8;
  /// TLoRA: initial α. LoRA: lora_alpha (ΔW is scaled by alpha/r). Unused by VeRA and LoRA-XS.
  double scale = 1.0;
  /// Dropout probability in [0, 1), training mode only.
  double dropout = 0.0;
  /// TLoRA only: where dropout applies. LoRA and VeRA drop the input, as PEFT does.
  DropoutPosition dropout_position = DropoutPosition::Output;
  /// TLoRA only: how A and B are drawn.
  InitScheme init = InitScheme::Paper;
  /// Seed of every random tensor of the adapter (projections, initial values, dropout).
  uint64_t seed = 0;
  /// TLoRA and LoRA-XS: execution strategy.
  Strategy strategy = Strategy::Auto;
  /// VeRA: initial value of λ_d.
  double vera_d_initial = 0.1;
};

/// The base layer an adapter is applied to.
struct BaseLinear {
  /// W0, out×in.
  at::Tensor weight;
  /// b, or undefined.
  at::Tensor bias;
};

/// ΔW = scale·up·core·down, as an adapter holds it: in its own dtype and device, and a function
/// of its parameters (not detached), so that gradients can flow through it.
struct DeltaFactors {
  /// out×r.
  at::Tensor up;
  /// r×r (the identity for LoRA, diag(λ_d) for VeRA).
  at::Tensor core;
  /// r×in.
  at::Tensor down;
  /// 0-dim: TLoRA's α, LoRA's alpha/r, 1 for VeRA and LoRA-XS.
  at::Tensor scale;
};

/// One adapter on one linear layer. Its trainable tensors are parameters and its fixed tensors
/// buffers, so state dicts and optimisers see them as usual.
class AdapterImpl : public torch::nn::Module {
 public:
  /// An adapter for the layer at `path`; the path keys its random streams.
  AdapterImpl(AdapterOptions options, std::string path);

  /// y = x·W0ᵀ + b + adapter(x), for x of shape [..., in].
  virtual at::Tensor forward(const at::Tensor& x, const BaseLinear& base) = 0;
  /// ΔW (out×in), detached.
  virtual at::Tensor delta_weight() const = 0;
  /// ΔW in factored form, differentiable in the adapter's parameters. Patching in place and the
  /// analysis tools derive what they need from it.
  virtual DeltaFactors factors() const = 0;
  /// Whether its buffers (the fixed tensors) are what make_adapter draws for its options, path
  /// and layer shape on any machine, so a checkpoint may leave them out and regenerate them.
  virtual bool buffers_regenerable() const = 0;

  /// The options this adapter was built with.
  const AdapterOptions& options() const { return options_; }
  /// Changes the execution strategy (TLoRA and LoRA-XS); the maths stays the same.
  void set_strategy(Strategy strategy) { options_.strategy = strategy; }
  /// Module path of the adapted layer.
  const std::string& path() const { return path_; }
  /// Number of elements of its parameters (all trainable while the adapter is active).
  int64_t trainable_count() const;
  /// Training calls made so far: the index of the next call's dropout stream. Saving and
  /// restoring it lets a resumed run draw the same dropout masks as an uninterrupted one.
  uint64_t dropout_calls() const { return calls_; }
  /// Sets the index of the next training call's dropout stream (see dropout_calls).
  void set_dropout_calls(uint64_t calls) { calls_ = calls; }

 protected:
  /// Dropout of the next training call: a fresh, reproducible Philox stream per call.
  AdapterDropout next_dropout(DropoutPosition position);

 private:
  AdapterOptions options_;
  std::string path_;
  uint64_t calls_ = 0;
};

/// VeRA's projections, shared by all adapted layers and sliced per layer.
struct VeRAProjections {
  /// A shared by all layers, r×max_in.
  at::Tensor down;
  /// B shared by all layers, max_out×r.
  at::Tensor up;
};
/// The shared VeRA projections for layers up to max_in×max_out, from the options' seed, with
/// PEFT's variance (kaiming-uniform, a=√5).
VeRAProjections draw_vera_projections(int64_t max_in, int64_t max_out, const AdapterOptions& options,
                                      const at::TensorOptions& tensor_options);

/// Builds the adapter of `options.kind` for the layer at `path` whose base weight is `weight`
/// (LoRA-XS takes its SVD). `vera` is required for VeRA and ignored otherwise.
std::shared_ptr<AdapterImpl> make_adapter(const AdapterOptions& options, const std::string& path,
                                          const at::Tensor& weight,
                                          const VeRAProjections* vera = nullptr);

}  // namespace tlora
