// LoRA as PEFT defines it: ΔW = (alpha/r)·B·A with dropout on the input, both factors trainable.
#include "adapters/method.h"
#include "tlora/core/random.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/eye.h>
#include <ATen/ops/full.h>
#include <ATen/ops/linear.h>
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

at::Tensor LoRAAdapter::forward(const at::Tensor& x, const BaseLinear& base) {
  const AdapterDropout d = next_dropout(DropoutPosition::Input);
  const at::Tensor adapter_in =
      d.p > 0 ? x * philox_dropout_mask(x.sizes(), d.p, d.seed, d.stream, x.options()) : x;
  return at::linear(x, base.weight, base.bias) +
         at::linear(at::linear(adapter_in, lora_a_), lora_b_) * scaling_;
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
