#include "tlora/adapters/tlora_linear.h"

#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <ostream>

namespace tlora {

TLoRALinearOptions::TLoRALinearOptions(int64_t in_features, int64_t out_features, int64_t rank)
    : in_features_(in_features), out_features_(out_features), rank_(rank) {}

TLoRALinearOptions TLoRALinearOptions::like(const torch::nn::Linear& base, int64_t rank) {
  const auto& o = base->options;
  return TLoRALinearOptions(o.in_features(), o.out_features(), rank).bias(o.bias());
}

namespace {

// The name of a layer whose options left it empty: distinct per layer, reproducible for the same
// order of construction.
std::string default_name() {
  static std::atomic<uint64_t> unnamed{0};
  return "tlora_linear." + std::to_string(unnamed++);
}

TLoRALinearOptions named(TLoRALinearOptions options) {
  if (options.name().empty()) options.name(default_name());
  return options;
}

}  // namespace

// The sizes are clamped so that check_options, not the base class, reports bad ones by layer name.
TLoRALinearImpl::TLoRALinearImpl(TLoRALinearOptions options_)
    : AdaptableLinearImpl(torch::nn::LinearOptions(std::max<int64_t>(options_.in_features(), 1),
                                          std::max<int64_t>(options_.out_features(), 1))
                     .bias(options_.bias())),
      tlora_options_(named(std::move(options_))) {
  check_options();
  weight.requires_grad_(false);
  if (bias.defined()) bias.requires_grad_(false);
  reset_adapter();
}

TLoRALinearImpl::TLoRALinearImpl(const torch::nn::Linear& base, TLoRALinearOptions options_)
    : AdaptableLinearImpl(base->weight, base->bias), tlora_options_(named(std::move(options_))) {
  check_options();
  const auto& o = base->options;
  const TLoRALinearOptions& t = tlora_options_;
  TORCH_CHECK(o.in_features() == t.in_features() && o.out_features() == t.out_features() && o.bias() == t.bias(),
              "TLoRALinear '", t.name(), "': options (in=", t.in_features(), ", out=", t.out_features(),
              ", bias=", t.bias(), ") do not match the AdaptableLinear being adapted (in=", o.in_features(),
              ", out=", o.out_features(), ", bias=", o.bias(), ")");
  weight.requires_grad_(false);
  if (bias.defined()) bias.requires_grad_(false);
  reset_adapter();
}

void TLoRALinearImpl::check_options() const {
  const auto& o = tlora_options_;
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
  if (merged_) unmerge();
  reset_parameters();
  reset_adapter();
}

void TLoRALinearImpl::reset_adapter() {
  if (merged_) unmerge();  // the new adapter must not leave the old ΔW inside W0
  const TLoRALinearOptions& o = tlora_options_;
  AdapterOptions adapter;
  adapter.kind = AdapterKind::TLoRA;
  adapter.rank = o.rank();
  adapter.scale = o.scale_init();
  adapter.train_scale = o.train_scale();
  adapter.dropout = o.dropout();
  adapter.dropout_position = o.dropout_position();
  adapter.init = o.init();
  adapter.seed = o.seed();
  adapter.strategy = o.strategy();
  if (this->adapter("default")) delete_adapter("default");
  add_adapter("default", make_adapter(adapter, o.name(), weight));
  const auto parameters = this->adapter("default")->named_parameters();
  const auto buffers = this->adapter("default")->named_buffers();
  down = buffers["down"];
  up = buffers["up"];
  core = parameters["core"];
  scale = o.train_scale() ? parameters["scale"] : buffers["scale"];
  original_weight_ = at::Tensor();
}

void TLoRALinearImpl::set_strategy(Strategy strategy) {
  tlora_options_.strategy(strategy);
  if (const auto a = adapter("default")) a->set_strategy(strategy);
}

TriLinearWeights TLoRALinearImpl::weights() const {
  return TriLinearWeights{weight, bias, down, up, core, scale};
}

at::Tensor TLoRALinearImpl::forward(const at::Tensor& input) {
  TORCH_CHECK(input.dim() >= 1 && input.size(-1) == tlora_options_.in_features(), "TLoRALinear '",
              tlora_options_.name(), "': input shape ", input.sizes(), " does not end in in_features=",
              tlora_options_.in_features());
  return AdaptableLinearImpl::forward(input);
}

at::Tensor TLoRALinearImpl::delta_weight() const {
  const auto a = adapter("default");
  TORCH_CHECK(a, "TLoRALinear '", tlora_options_.name(), "': its adapter was removed (merge_and_unload or unload)");
  return a->delta_weight();
}

void TLoRALinearImpl::merge(bool keep_original) {
  TORCH_CHECK(!merged_, "TLoRALinear '", tlora_options_.name(), "': already merged");
  at::NoGradGuard no_grad;
  original_weight_ = keep_original ? weight.clone() : at::Tensor();
  tri_add_delta_weight_(weight, up, core.detach(), down, scale.detach(),
                        "TLoRALinear '" + tlora_options_.name() + "'");
  set_adapters_enabled(false);
  merged_ = true;
}

void TLoRALinearImpl::unmerge() {
  TORCH_CHECK(merged_, "TLoRALinear '", tlora_options_.name(), "': unmerge() without merge()");
  at::NoGradGuard no_grad;
  if (original_weight_.defined()) {
    weight.copy_(original_weight_);
    original_weight_ = at::Tensor();
  } else {
    weight.sub_(delta_weight());
  }
  set_adapters_enabled(true);
  merged_ = false;
}

int64_t TLoRALinearImpl::adapter_parameter_count() const {
  return core.numel() + (tlora_options_.train_scale() ? scale.numel() : 0);
}

void TLoRALinearImpl::pretty_print(std::ostream& stream) const {
  const auto& o = tlora_options_;
  stream << "tlora::TLoRALinear(in_features=" << o.in_features()
         << ", out_features=" << o.out_features() << ", rank=" << o.rank()
         << ", bias=" << (o.bias() ? "true" : "false") << ", init=" << to_string(o.init())
         << ", strategy=" << to_string(o.strategy());
  if (o.dropout() > 0) stream << ", dropout=" << o.dropout() << "@" << to_string(o.dropout_position());
  if (merged_) stream << ", merged";
  stream << ")";
}

}  // namespace tlora
