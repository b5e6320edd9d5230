#include "tlora/adapters/adaptable_linear.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/linear.h>
#include <c10/util/Exception.h>
#include <torch/nn/init.h>

#include <cmath>
#include <ostream>

namespace tlora {

AdaptableLinearImpl::AdaptableLinearImpl(const torch::nn::LinearOptions& options_)
    : torch::nn::Module("tlora::AdaptableLinear"), options(options_) {
  TORCH_CHECK(options.in_features() > 0 && options.out_features() > 0,
              "tlora::AdaptableLinear: in_features and out_features must be positive, got ",
              options.in_features(), " and ", options.out_features());
  weight = register_parameter("weight", at::empty({options.out_features(), options.in_features()}));
  bias = register_parameter("bias", options.bias() ? at::empty({options.out_features()}) : at::Tensor(),
                            /*requires_grad=*/options.bias());
  reset_parameters();
}

AdaptableLinearImpl::AdaptableLinearImpl(at::Tensor weight_, at::Tensor bias_)
    : torch::nn::Module("tlora::AdaptableLinear"),
      options(weight_.defined() && weight_.dim() == 2 ? weight_.size(1) : 0,
              weight_.defined() && weight_.dim() == 2 ? weight_.size(0) : 0) {
  TORCH_CHECK(weight_.defined() && weight_.dim() == 2, "tlora::AdaptableLinear: weight must be 2-D");
  TORCH_CHECK(!bias_.defined() || (bias_.dim() == 1 && bias_.size(0) == weight_.size(0)),
              "tlora::AdaptableLinear: bias must have shape [", weight_.size(0), "], got ", bias_.sizes());
  options.bias(bias_.defined());
  const bool weight_grad = weight_.requires_grad(), bias_grad = bias_.defined() && bias_.requires_grad();
  weight = register_parameter("weight", std::move(weight_), weight_grad);
  bias = register_parameter("bias", std::move(bias_), bias_grad);
}

void AdaptableLinearImpl::reset_parameters() {
  c10::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(options.in_features()));
    torch::nn::init::uniform_(bias, -bound, bound);
  }
}

at::Tensor AdaptableLinearImpl::forward(const at::Tensor& input) {
  AdapterImpl* adapter = applied();
  return adapter ? adapter->forward(input, BaseLinear{weight, bias}) : at::linear(input, weight, bias);
}

void AdaptableLinearImpl::pretty_print(std::ostream& stream) const {
  stream << "tlora::AdaptableLinear(in_features=" << options.in_features()
         << ", out_features=" << options.out_features()
         << ", bias=" << (options.bias() ? "true" : "false");
  if (!adapters().empty()) {
    stream << ", adapters=[";
    const char* sep = "";
    for (const auto& [key, a] : adapters()) {
      stream << sep << key << ":" << to_string(a->options().kind) << "(r=" << a->options().rank << ")";
      sep = ", ";
    }
    stream << "], active=" << (active_adapter().empty() ? "none" : active_adapter());
    if (!adapters_enabled()) stream << ", disabled";
  }
  stream << ")";
}

}  // namespace tlora
