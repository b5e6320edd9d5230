// LoRA-XS: ΔW = B·M·A with B = U_r and A = Σ_r·V_rᵀ from the SVD of W0, M trainable; tri_linear
// with α fixed at 1.
#include "adapters/method.h"
#include "tlora/core/random.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/linalg_svd.h>
#include <ATen/ops/ones.h>
#include <c10/core/GradMode.h>

namespace tlora::detail {
namespace {

class LoRAXSAdapter final : public AdapterImpl {
 public:
  LoRAXSAdapter(const AdapterOptions& options, const std::string& path, const at::Tensor& weight);
  at::Tensor forward(const at::Tensor& x, const BaseLinear& base) override;
  at::Tensor delta_weight() const override;
  DeltaFactors factors() const override;

 private:
  at::Tensor down_, up_, core_, scale_;
};


LoRAXSAdapter::LoRAXSAdapter(const AdapterOptions& options, const std::string& path,
                             const at::Tensor& weight)
    : AdapterImpl(options, path) {
  const int64_t r = options.rank;
  c10::NoGradGuard no_grad;
  // In double, so the truncation is as accurate as the weight allows; the singular values go to
  // the input side (A = Σ_r·V_rᵀ, B = U_r) as in the LoRA-XS paper.
  const auto [u, s, vh] = at::linalg_svd(weight.to(at::kDouble), /*full_matrices=*/false);
  down_ = register_buffer("down", (s.slice(0, 0, r).unsqueeze(1) * vh.slice(0, 0, r)).to(weight.scalar_type()));
  up_ = register_buffer("up", u.slice(1, 0, r).contiguous().to(weight.scalar_type()));
  core_ = register_parameter(
      "core", philox_normal({r, r}, 1e-5, options.seed, stream_id(path + "/core"), weight.scalar_type())
                  .to(weight.device()));
  // LoRA-XS has no learned scale: a fixed α = 1 lets it share tri_linear with TLoRA.
  scale_ = register_buffer("scale", at::ones({}, weight.options()));
}

at::Tensor LoRAXSAdapter::forward(const at::Tensor& x, const BaseLinear& base) {
  return tri_linear(x, {base.weight, base.bias, down_, up_, core_, scale_}, options().strategy,
                    next_dropout(DropoutPosition::Input), path());
}

at::Tensor LoRAXSAdapter::delta_weight() const {
  return tri_delta_weight(up_, core_.detach(), down_, scale_);
}

DeltaFactors LoRAXSAdapter::factors() const { return {up_, core_, down_, scale_}; }

}  // namespace

const Method& loraxs_method() {
  static const LayerLocalMethod<LoRAXSAdapter> method(AdapterKind::LoRAXS, /*regenerable=*/false);
  return method;
}

}  // namespace tlora::detail
