// tlora::AdaptableLinear: a drop-in for torch::nn::Linear that can carry adapters in place, so a model
// built from it is patched without rebinding any C++ member.
#pragma once

#include "tlora/export.h"

#include "tlora/adapters/host.h"

#include <torch/nn/module.h>
#include <torch/nn/options/linear.h>
#include <torch/nn/pimpl.h>

TLORA_API_BEGIN
namespace tlora {

/// y = x·Wᵀ + b, plus the active adapter's change when one is active and adapters are enabled.
/// Options, initialisation and the parameter names `weight` and `bias` are torch::nn::Linear's.
/// Adapters (see AdapterHost) are applied in forward, the fast way to carry them.
class AdaptableLinearImpl : public torch::nn::Module, public AdapterHost {
 public:
  AdaptableLinearImpl(int64_t in_features, int64_t out_features)
      : AdaptableLinearImpl(torch::nn::LinearOptions(in_features, out_features)) {}
  /// A layer initialised as torch::nn::Linear is.
  explicit AdaptableLinearImpl(const torch::nn::LinearOptions& options);
  /// A layer that shares (does not copy) the given weight and bias.
  AdaptableLinearImpl(at::Tensor weight, at::Tensor bias);

  /// Re-initialises weight and bias as torch::nn::Linear does.
  void reset_parameters();
  /// Applies the layer to x of shape [..., in_features].
  at::Tensor forward(const at::Tensor& input);
  /// Prints `tlora::AdaptableLinear(in_features=…, out_features=…, bias=…, adapters=[…], active=…)`.
  void pretty_print(std::ostream& stream) const override;

  /// W and b.
  BaseLinear base() const override { return {weight, bias}; }

  /// The options (sizes and whether there is a bias).
  torch::nn::LinearOptions options;
  /// W, out×in.
  at::Tensor weight;
  /// b (undefined without bias).
  at::Tensor bias;

 protected:
  torch::nn::Module& owner() override { return *this; }
};

/// A ModuleHolder for LinearImpl.
TORCH_MODULE(AdaptableLinear);

}  // namespace tlora
TLORA_API_END
