#include "tlora/core/finite_check.h"

#include <ATen/ops/all.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/isinf.h>
#include <ATen/ops/isnan.h>
#include <ATen/ops/stack.h>
#include <c10/util/Exception.h>

#include <vector>

namespace tlora {

std::optional<NonFiniteGradient> find_non_finite_gradient(const torch::nn::Module& module) {
  std::vector<std::string> names;
  std::vector<at::Tensor> grads;
  std::vector<at::Tensor> finite;  // one 0-dim flag per gradient, still on its device
  for (const auto& item : module.named_parameters()) {
    const at::Tensor& grad = item.value().grad();
    if (!grad.defined()) continue;
    names.push_back(item.key());
    grads.push_back(grad);
    finite.push_back(at::isfinite(grad).all().to(at::kCPU));
  }
  if (finite.empty()) return std::nullopt;
  // One reduction and one read instead of a synchronising read per parameter.
  const at::Tensor flags = at::stack(finite);
  if (flags.all().item<bool>()) return std::nullopt;
  for (size_t i = 0; i < names.size(); ++i) {
    if (flags[static_cast<int64_t>(i)].item<bool>()) continue;
    const at::Tensor& grad = grads[i];
    return NonFiniteGradient{names[i], at::isnan(grad).sum().item<int64_t>(),
                             at::isinf(grad).sum().item<int64_t>(), grad.numel()};
  }
  return std::nullopt;
}

void check_finite_gradients(const torch::nn::Module& module, int64_t step) {
  const auto bad = find_non_finite_gradient(module);
  TORCH_CHECK(!bad, "non-finite gradient at step ", step, ": parameter '", bad->parameter,
              "' has ", bad->nan_count, " NaN and ", bad->inf_count, " infinite of its ",
              bad->numel, " gradient elements (before the optimizer step; lower the learning rate, "
              "check the inputs, or clip gradients)");
}

}  // namespace tlora
