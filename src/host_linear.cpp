#include "tlora/host_linear.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/linear.h>
#include <c10/util/Exception.h>
#include <torch/nn/init.h>

#include <cmath>
#include <ostream>

namespace tlora {

LinearImpl::LinearImpl(const torch::nn::LinearOptions& options_)
    : torch::nn::Module("tlora::Linear"), options(options_) {
  TORCH_CHECK(options.in_features() > 0 && options.out_features() > 0,
              "tlora::Linear: in_features and out_features must be positive, got ",
              options.in_features(), " and ", options.out_features());
  weight = register_parameter("weight", at::empty({options.out_features(), options.in_features()}));
  bias = register_parameter("bias", options.bias() ? at::empty({options.out_features()}) : at::Tensor(),
                            /*requires_grad=*/options.bias());
  reset_parameters();
}

LinearImpl::LinearImpl(at::Tensor weight_, at::Tensor bias_)
    : torch::nn::Module("tlora::Linear"),
      options(weight_.defined() && weight_.dim() == 2 ? weight_.size(1) : 0,
              weight_.defined() && weight_.dim() == 2 ? weight_.size(0) : 0) {
  TORCH_CHECK(weight_.defined() && weight_.dim() == 2, "tlora::Linear: weight must be 2-D");
  TORCH_CHECK(!bias_.defined() || (bias_.dim() == 1 && bias_.size(0) == weight_.size(0)),
              "tlora::Linear: bias must have shape [", weight_.size(0), "], got ", bias_.sizes());
  options.bias(bias_.defined());
  const bool weight_grad = weight_.requires_grad(), bias_grad = bias_.defined() && bias_.requires_grad();
  weight = register_parameter("weight", std::move(weight_), weight_grad);
  bias = register_parameter("bias", std::move(bias_), bias_grad);
}

void LinearImpl::reset_parameters() {
  c10::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(options.in_features()));
    torch::nn::init::uniform_(bias, -bound, bound);
  }
}

at::Tensor LinearImpl::forward(const at::Tensor& input) {
  if (!enabled_ || active_.empty()) return at::linear(input, weight, bias);
  return adapters_.at(active_)->forward(input, BaseLinear{weight, bias});
}

void LinearImpl::add_adapter(const std::string& name, std::shared_ptr<AdapterImpl> adapter) {
  TORCH_CHECK(!name.empty() && name.find('.') == std::string::npos && name != "weight" && name != "bias",
              "tlora::Linear: invalid adapter name '", name, "' (non-empty, no '.', not weight/bias)");
  TORCH_CHECK(!adapters_.count(name), "tlora::Linear: an adapter named '", name, "' already exists");
  TORCH_CHECK(adapter != nullptr, "tlora::Linear: adapter '", name, "' is null");
  register_module(name, adapter);
  adapters_.emplace(name, std::move(adapter));
  set_active_adapter(active_.empty() ? name : active_);
}

void LinearImpl::delete_adapter(const std::string& name) {
  TORCH_CHECK(adapters_.count(name), "tlora::Linear: no adapter named '", name, "'");
  unregister_module(name);
  adapters_.erase(name);
  if (active_ == name) active_.clear();
}

void LinearImpl::set_active_adapter(const std::string& name) {
  TORCH_CHECK(name.empty() || adapters_.count(name), "tlora::Linear: no adapter named '", name, "'");
  active_ = name;
  for (auto& [key, a] : adapters_) {
    const bool active = key == name;
    for (auto& p : a->parameters()) p.requires_grad_(active);
  }
}

std::shared_ptr<AdapterImpl> LinearImpl::adapter(const std::string& name) const {
  const auto it = adapters_.find(name);
  return it == adapters_.end() ? nullptr : it->second;
}

std::vector<std::string> LinearImpl::adapter_names() const {
  std::vector<std::string> names;
  for (const auto& [key, a] : adapters_) names.push_back(key);
  return names;
}

void LinearImpl::merge_and_unload() {
  if (!active_.empty()) {
    c10::NoGradGuard no_grad;
    weight.add_(adapters_.at(active_)->delta_weight().to(weight.scalar_type()));
  }
  unload();
}

void LinearImpl::unload() {
  for (const auto& name : adapter_names()) delete_adapter(name);
}

void LinearImpl::pretty_print(std::ostream& stream) const {
  stream << "tlora::Linear(in_features=" << options.in_features()
         << ", out_features=" << options.out_features()
         << ", bias=" << (options.bias() ? "true" : "false");
  if (!adapters_.empty()) {
    stream << ", adapters=[";
    const char* sep = "";
    for (const auto& [key, a] : adapters_) {
      stream << sep << key << ":" << to_string(a->options().kind) << "(r=" << a->options().rank << ")";
      sep = ", ";
    }
    stream << "], active=" << (active_.empty() ? "none" : active_);
    if (!enabled_) stream << ", disabled";
  }
  stream << ")";
}

}  // namespace tlora
