// TLoRA: ΔW = α·B·M·A with A, B fixed (drawn from the layer path), M trainable, α trainable unless
// train_scale is off.
#include "adapters/method.h"

#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>

namespace tlora::detail {
namespace {

class TLoRAAdapter final : public AdapterImpl {
 public:
  TLoRAAdapter(const AdapterOptions& options, const std::string& path, const at::Tensor& weight);
  at::Tensor forward(const at::Tensor& x, const BaseLinear& base) override;
  at::Tensor delta_weight() const override;
  DeltaFactors factors() const override;

 private:
  at::Tensor down_, up_, core_, scale_;
};


TLoRAAdapter::TLoRAAdapter(const AdapterOptions& options, const std::string& path,
                           const at::Tensor& weight)
    : AdapterImpl(options, path) {
  const int64_t r = options.rank;
  Projections p = draw_projections(weight.size(1), weight.size(0), r, options.init, options.seed,
                                   path, weight.options());
  down_ = register_buffer("down", std::move(p.down));
  up_ = register_buffer("up", std::move(p.up));
  core_ = register_parameter("core", at::zeros({r, r}, weight.options()));
  at::Tensor scale = at::full({}, options.scale, weight.options());
  scale_ = options.train_scale ? register_parameter("scale", std::move(scale))
                               : register_buffer("scale", std::move(scale));
}

at::Tensor TLoRAAdapter::forward(const at::Tensor& x, const BaseLinear& base) {
  return tri_linear(x, {base.weight, base.bias, down_, up_, core_, scale_}, options().strategy,
                    next_dropout(options().dropout_position), path());
}

at::Tensor TLoRAAdapter::delta_weight() const {
  return tri_delta_weight(up_, core_.detach(), down_, scale_.detach());
}

DeltaFactors TLoRAAdapter::factors() const { return {up_, core_, down_, scale_}; }

}  // namespace

const Method& tlora_method() {
  static const LayerLocalMethod<TLoRAAdapter> method(AdapterKind::TLoRA);
  return method;
}

}  // namespace tlora::detail
