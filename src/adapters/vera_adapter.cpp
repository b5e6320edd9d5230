#include "adapter_kinds.h"
#include "tlora/random.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/diag.h>
#include <ATen/ops/full.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/zeros.h>

namespace tlora::detail {

VeRAAdapter::VeRAAdapter(const AdapterOptions& options, const std::string& path,
                         const at::Tensor& weight, const VeRAProjections& shared)
    : AdapterImpl(options, path) {
  const int64_t in = weight.size(1), out = weight.size(0);
  down_ = register_buffer("vera_A", shared.down.slice(1, 0, in));
  up_ = register_buffer("vera_B", shared.up.slice(0, 0, out));
  lambda_d_ = register_parameter("lambda_d", at::full({options.rank}, options.vera_d_initial, weight.options()));
  lambda_b_ = register_parameter("lambda_b", at::zeros({out}, weight.options()));
}

at::Tensor VeRAAdapter::forward(const at::Tensor& x, const BaseLinear& base) {
  const AdapterDropout d = next_dropout(DropoutPosition::Input);
  const at::Tensor adapter_in =
      d.p > 0 ? x * philox_dropout_mask(x.sizes(), d.p, d.seed, d.stream, x.options()) : x;
  return at::linear(x, base.weight, base.bias) +
         at::linear(at::linear(adapter_in, down_) * lambda_d_, up_) * lambda_b_;
}

at::Tensor VeRAAdapter::delta_weight() const {
  return (up_ * lambda_b_.detach().unsqueeze(1)).mm(down_ * lambda_d_.detach().unsqueeze(1));
}

DeltaFactors VeRAAdapter::factors() const {
  return {up_ * lambda_b_.unsqueeze(1), at::diag(lambda_d_), down_, at::ones({}, down_.options())};
}

}  // namespace tlora::detail
