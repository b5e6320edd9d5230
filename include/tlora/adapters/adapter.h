// Adapters that a tlora::AdaptableLinear host can carry: TLoRA and its baselines LoRA, VeRA and
// LoRA-XS, behind one interface so that patching, switching, checkpoints and analysis treat them
// alike.
#pragma once

#include "tlora/export.h"

#include "tlora/core/functional.h"
#include "tlora/core/projections.h"

#include <torch/nn/module.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

TLORA_API_BEGIN
namespace tlora {

/// Which adapter method: a name that the method registry knows. The library's methods are the
/// constants below; each method lives in its own file under src/adapters/methods/.
class AdapterKind {
 public:
  /// The kind named `name` (a literal). Names are checked where an adapter is made; parse
  /// names from users with adapter_kind_from_string.
  consteval explicit AdapterKind(std::string_view name) : name_(name) {}
  /// Lower-case name ("tlora", "lora", "vera", "loraxs").
  constexpr std::string_view name() const { return name_; }
  /// Kinds are equal when their names are.
  constexpr bool operator==(const AdapterKind& other) const { return name_ == other.name_; }

  /// ΔW = α·B·M·A with A, B fixed Gaussian, M and α trainable.
  static const AdapterKind TLoRA;
  /// ΔW = (alpha/r)·B·A, both trainable (PEFT's defaults).
  static const AdapterKind LoRA;
  /// ΔW = diag(λ_b)·B·diag(λ_d)·A with A, B frozen and shared by all layers.
  static const AdapterKind VeRA;
  /// ΔW = B·M·A with A, B from the truncated SVD of W0, M trainable.
  static const AdapterKind LoRAXS;

 private:
  std::string_view name_;
};
inline constexpr AdapterKind AdapterKind::TLoRA{"tlora"};
inline constexpr AdapterKind AdapterKind::LoRA{"lora"};
inline constexpr AdapterKind AdapterKind::VeRA{"vera"};
inline constexpr AdapterKind AdapterKind::LoRAXS{"loraxs"};

/// Lower-case name of a kind.
std::string_view to_string(AdapterKind kind);
/// The registered kind with that name; throws naming the accepted names otherwise.
AdapterKind adapter_kind_from_string(std::string_view name);
/// Every registered kind, in the registry's order.
std::vector<AdapterKind> adapter_kinds();

/// Hyper-parameters of one adapter (one layer's; `inject` fills them from its config).
struct AdapterOptions {
  /// The method.
  AdapterKind kind = AdapterKind::TLoRA;
  /// Rank r.
  int64_t rank = 8;
  /// TLoRA: initial α. LoRA: lora_alpha (ΔW is scaled by alpha/r). Unused by VeRA and LoRA-XS.
  double scale = 1.0;
  /// TLoRA only: whether α is trained (a parameter) or stays at `scale` (a buffer).
  bool train_scale = true;
  /// Dropout probability in [0, 1), training mode only.
  double dropout = 0.0;
  /// TLoRA only: where dropout applies. LoRA and VeRA drop the input, as PEFT does.
  DropoutPosition dropout_position = DropoutPosition::Output;
  /// TLoRA only: how A and B are drawn.
  InitScheme init = InitScheme::Paper;
  /// Seed of every random tensor of the adapter (projections, initial values, dropout).
  uint64_t seed = 0;
  /// TLoRA, LoRA-XS and LoRA: execution strategy (see `tri_linear`).
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
  bool buffers_regenerable() const;

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
  // The stream index of this training call (see dropout_calls and train::split_backward).
  uint64_t next_call();

  AdapterOptions options_;
  std::string path_;
  uint64_t calls_ = 0;
  // Inside a split step: its generation, calls_ when it began, and each part's calls so far.
  uint64_t split_generation_ = 0;
  uint64_t split_base_ = 0;
  std::vector<uint64_t> split_calls_;
};

/// Tensors that one model's adapters of a method share, by name (VeRA's A and B): each layer holds
/// the leading slice that fits its own sizes, as the buffer of the same name.
using SharedTensors = std::map<std::string, at::Tensor>;

/// The tensors shared by the adapters of `options.kind` on layers up to max_in×max_out, drawn
/// from the options' seed (empty for methods that share nothing).
SharedTensors draw_shared_tensors(const AdapterOptions& options, int64_t max_in, int64_t max_out,
                                  const at::TensorOptions& tensor_options);

/// Builds the adapter of `options.kind` for the layer at `path` whose base weight is `weight`
/// (LoRA-XS takes its SVD). `shared` holds draw_shared_tensors' result for the methods that
/// share tensors (required for them, ignored otherwise).
std::shared_ptr<AdapterImpl> make_adapter(const AdapterOptions& options, const std::string& path,
                                          const at::Tensor& weight, const SharedTensors& shared = {});

}  // namespace tlora
TLORA_API_END
