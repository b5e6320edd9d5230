// Catching NaN and infinite gradients at the step they first appear, before an optimizer step
// spreads them into every weight (after which the cause is hard to find).
#pragma once

#include "tlora/export.h"

#include <torch/nn/module.h>

#include <cstdint>
#include <optional>
#include <string>

TLORA_API_BEGIN
namespace tlora {

/// A parameter whose gradient holds NaN or infinite values.
struct NonFiniteGradient {
  /// The parameter's name in the module (e.g. "encoder.layer.0.attention.self.query.core").
  std::string parameter;
  /// How many of its gradient's elements are NaN.
  int64_t nan_count = 0;
  /// How many are +inf or -inf.
  int64_t inf_count = 0;
  /// The number of elements of the gradient.
  int64_t numel = 0;
};

/// The first parameter of `module` (in named_parameters() order) whose gradient is not finite
/// everywhere, or nullopt when all are finite. Parameters without a gradient are skipped. Costs
/// one device synchronisation when every gradient is finite.
std::optional<NonFiniteGradient> find_non_finite_gradient(const torch::nn::Module& module);

/// Throws a c10::Error naming `step`, the first parameter with a non-finite gradient and its
/// NaN and inf counts; does nothing when every gradient is finite. Call it after backward and
/// before the optimizer step.
void check_finite_gradients(const torch::nn::Module& module, int64_t step);

}  // namespace tlora
TLORA_API_END
