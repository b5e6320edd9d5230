#include "tlora/linear.h"

#include "tlora/random.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>
#include <torch/nn/init.h>

#include <cmath>
#include <ostream>

namespace tlora {

TLoRALinearOptions::TLoRALinearOptions(int64_t in_features, int64_t out_features, int64_t rank)
    : in_features_(in_features), out_features_(out_features), rank_(rank) {}

TLoRALinearOptions TLoRALinearOptions::like(const torch::nn::Linear& base, int64_t rank) {
  const auto& o = base->options;
  return TLoRALinearOptions(o.in_features(), o.out_features(), rank).bias(o.bias());
}

TLoRALinearImpl::TLoRALinearImpl(TLoRALinearOptions options_) : options(std::move(options_)) {
  reset();
}

TLoRALinearImpl::TLoRALinearImpl(const torch::nn::Linear& base, TLoRALinearOptions options_)
    : options(std::move(options_)) {
  check_options();
  const auto& o = base->options;
  TORCH_CHECK(o.in_features() == options.in_features() && o.out_features() == options.out_features()
                  && o.bias() == options.bias(),
              "TLoRALinear '", options.name(), "': options (in=", options.in_features(),
              ", out=", options.out_features(), ", bias=", options.bias(),
              ") do not match the Linear being adapted (in=", o.in_features(),
              ", out=", o.out_features(), ", bias=", o.bias(), ")");
  weight = register_parameter("weight", base->weight, /*requires_grad=*/false);
  bias = register_parameter("bias", base->bias, /*requires_grad=*/false);
  reset_adapter();
}

void TLoRALinearImpl::check_options() const {
  const auto& o = options;
  const std::string& n = o.name();
  TORCH_CHECK(o.in_features() > 0 && o.out_features() > 0, "TLoRALinear '", n,
              "': in_features and out_features must be positive, got ", o.in_features(), " and ",
              o.out_features());
  TORCH_CHECK(o.rank() >= 1 && o.rank() <= std::min(o.in_features(), o.out_features()),
              "TLoRALinear '", n, "': rank must be in [1, min(in_features, out_features)] = [1, ",
              std::min(o.in_features(), o.out_features()), "], got ", o.rank());
  TORCH_CHECK(o.dropout() >= 0.0 && o.dropout() < 1.0, "TLoRALinear '", n,
              "': dropout must be in [0, 1), got ", o.dropout());
  TORCH_CHECK(std::isfinite(o.scale_init()), "TLoRALinear '", n,
              "': scale_init must be finite, got ", o.scale_init());
}

void TLoRALinearImpl::reset() {
  check_options();
  const int64_t in = options.in_features();
  const int64_t out = options.out_features();
  // torch::nn::Linear's own initialisation, so a fresh layer is the same as a fresh Linear.
  weight = register_parameter("weight", at::empty({out, in}), /*requires_grad=*/false);
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (options.bias()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    bias = register_parameter("bias", at::empty({out}), /*requires_grad=*/false);
    torch::nn::init::uniform_(bias, -bound, bound);
  } else {
    bias = register_parameter("bias", {}, /*requires_grad=*/false);
  }
  reset_adapter();
}

void TLoRALinearImpl::reset_adapter() {
  if (merged_) unmerge();  // the new adapter must not leave the old ΔW inside W0
  const int64_t r = options.rank();
  Projections p = draw_projections(options.in_features(), options.out_features(), r,
                                   options.init(), options.seed(), options.name(),
                                   weight.options());
  down = register_buffer("down", std::move(p.down));
  up = register_buffer("up", std::move(p.up));
  core = register_parameter("core", at::zeros({r, r}, weight.options()));
  scale = register_parameter("scale", at::full({}, options.scale_init(), weight.options()));
  merged_ = false;
  original_weight_ = at::Tensor();
  dropout_calls_ = 0;
}

TriLinearWeights TLoRALinearImpl::weights() const {
  return TriLinearWeights{weight, bias, down, up, core, scale};
}

at::Tensor TLoRALinearImpl::forward(const at::Tensor& input) {
  const std::string label = "TLoRALinear '" + options.name() + "'";
  if (merged_) {
    TORCH_CHECK(input.dim() >= 1 && input.size(-1) == options.in_features(), label,
                ": input shape ", input.sizes(), " does not end in in_features=",
                options.in_features());
    return at::linear(input, weight, bias);
  }
  AdapterDropout dropout;
  if (is_training() && options.dropout() > 0.0) {
    dropout.p = options.dropout();
    dropout.position = options.dropout_position();
    dropout.seed = options.seed();
    // Backward regenerates the mask from the same stream.
    dropout.stream = dropout_stream(options.name(), dropout_calls_++);
  }
  return tri_linear(input, weights(), options.strategy(), dropout, label);
}

at::Tensor TLoRALinearImpl::delta_weight() const {
  return tri_delta_weight(up, core.detach(), down, scale.detach());
}

void TLoRALinearImpl::merge(bool keep_original) {
  TORCH_CHECK(!merged_, "TLoRALinear '", options.name(), "': already merged");
  at::NoGradGuard no_grad;
  original_weight_ = keep_original ? weight.clone() : at::Tensor();
  tri_add_delta_weight_(weight, up, core.detach(), down, scale.detach(),
                        "TLoRALinear '" + options.name() + "'");
  merged_ = true;
}

void TLoRALinearImpl::unmerge() {
  TORCH_CHECK(merged_, "TLoRALinear '", options.name(), "': unmerge() without merge()");
  at::NoGradGuard no_grad;
  if (original_weight_.defined()) {
    weight.copy_(original_weight_);
    original_weight_ = at::Tensor();
  } else {
    weight.sub_(delta_weight());
  }
  merged_ = false;
}

int64_t TLoRALinearImpl::adapter_parameter_count() const { return core.numel() + scale.numel(); }

void TLoRALinearImpl::pretty_print(std::ostream& stream) const {
  const auto& o = options;
  stream << "tlora::TLoRALinear(in_features=" << o.in_features()
         << ", out_features=" << o.out_features() << ", rank=" << o.rank()
         << ", bias=" << (o.bias() ? "true" : "false") << ", init=" << to_string(o.init())
         << ", strategy=" << to_string(o.strategy());
  if (o.dropout() > 0) stream << ", dropout=" << o.dropout() << "@" << to_string(o.dropout_position());
  if (merged_) stream << ", merged";
  stream << ")";
}

}  // namespace tlora
