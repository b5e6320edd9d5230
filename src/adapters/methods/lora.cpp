// LoRA as PEFT defines it: ΔW = (alpha/r)·B·A with dropout on the input, both factors trainable.
#include "adapters/method.h"
#include "tlora/core/functional.h"
#include "tlora/core/random.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/eye.h>
#include <ATen/ops/full.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/zeros.h>

#include <cmath>

namespace tlora::detail {
namespace {

class LoRAAdapter final : public AdapterImpl {
 public:
  LoRAAdapter(const AdapterOptions& options, const std::string& path, const at::Tensor& weight);
  at::Tensor forward(const at::Tensor& x, const BaseLinear& base) override;
  at::Tensor delta_weight() const override;
  DeltaFactors factors() const override;

 private:
  at::Tensor lora_a_, lora_b_;
  double scaling_;
};


LoRAAdapter::LoRAAdapter(const AdapterOptions& options, const std::string& path,
                         const at::Tensor& weight)
    : AdapterImpl(options, path), scaling_(options.scale / static_cast<double>(options.rank)) {
  const int64_t in = weight.size(1), out = weight.size(0), r = options.rank;
  // PEFT: kaiming_uniform_(a=√5) on the r×in matrix, i.e. U(-1/√in, 1/√in); B starts at zero.
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  lora_a_ = register_parameter(
      "lora_A", philox_uniform({r, in}, -bound, bound, options.seed, stream_id(path + "/lora_A"),
                               weight.scalar_type())
                    .to(weight.device()));
  lora_b_ = register_parameter("lora_B", at::zeros({out, r}, weight.options()));
}

// tri_linear with M = I adds the update into the base product in place (y += s·(x·Aᵀ)·Bᵀ, and
// the same for dx in backward) where the chain of ops would pass over y and dx twice more.
at::Tensor LoRAAdapter::forward(const at::Tensor& x, const BaseLinear& base) {
  const auto fixed = lora_a_.options().requires_grad(false);
  return tri_linear(x,
                    {base.weight, base.bias, lora_a_, lora_b_, at::eye(options().rank, fixed),
                     at::scalar_tensor(scaling_, fixed)},
                    options().strategy, next_dropout(DropoutPosition::Input), path());
}

at::Tensor LoRAAdapter::delta_weight() const {
  return lora_b_.detach().mm(lora_a_.detach()) * scaling_;
}

DeltaFactors LoRAAdapter::factors() const {
  return {lora_b_, at::eye(options().rank, lora_a_.options()), lora_a_, at::full({}, scaling_, lora_a_.options())};
}

}  // namespace

const Method& lora_method() {
  static const LayerLocalMethod<LoRAAdapter> method(AdapterKind::LoRA);
  return method;
}

}  // namespace tlora::detail
