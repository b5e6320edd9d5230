#include "adapters/in_place_host.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/equal.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>

namespace tlora::detail {
namespace {

// The backward of W = W0 + scale·up·core·down for the adapter's parameters. It keeps the adapter,
// not saved tensors, so several backward passes may go through one refresh (gradient
// accumulation), and checks that the parameters still hold the values of the refresh. (Values,
// not version counters: LibTorch's C++ optimizers update `p.data()`, which has its own counter.)
class MergedWeightBackward final : public torch::autograd::Node {
 public:
  MergedWeightBackward(std::shared_ptr<AdapterImpl> adapter, std::vector<at::Tensor> parameters, std::string path)
      : adapter_(std::move(adapter)), parameters_(std::move(parameters)), path_(std::move(path)) {
    for (const auto& p : parameters_) values_.push_back(p.detach().clone());
    set_next_edges(torch::autograd::collect_next_edges(parameters_));
  }

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    for (size_t i = 0; i < parameters_.size(); ++i) {
      TORCH_CHECK(at::equal(parameters_[i], values_[i]), "the torch::nn::Linear '", path_,
                  "' was patched in place, and its adapter's parameters changed after its weight was "
                  "computed (an optimizer step?): call tlora::refresh_adapted_weights(model) after every "
                  "change of the adapter, before the next forward");
    }
    torch::autograd::variable_list out(parameters_.size());
    if (!grads[0].defined()) return out;
    c10::AutoGradMode enable_grad(true);
    const DeltaFactors f = adapter_->factors();
    // ΔW = q·p with q = scale·up (out×r) and p = core·down (r×in): dq = G·pᵀ, dp = qᵀ·G.
    const at::Tensor q = f.up * f.scale, p = f.core.mm(f.down);
    const at::Tensor g = grads[0].to(p.scalar_type());
    std::vector<at::Tensor> outputs, output_grads;
    if (q.requires_grad()) {
      outputs.push_back(q);
      output_grads.push_back(g.mm(p.detach().t()));
    }
    if (p.requires_grad()) {
      outputs.push_back(p);
      output_grads.push_back(q.detach().t().mm(g));
    }
    if (outputs.empty()) return out;
    return torch::autograd::grad(outputs, parameters_, output_grads, /*retain_graph=*/false,
                                 /*create_graph=*/false, /*allow_unused=*/true);
  }

  std::string name() const override { return "tlora::MergedWeightBackward"; }

 private:
  std::shared_ptr<AdapterImpl> adapter_;
  std::vector<at::Tensor> parameters_;
  std::vector<at::Tensor> values_;
  std::string path_;
};

}  // namespace

InPlaceHost::InPlaceHost(const std::shared_ptr<torch::nn::LinearImpl>& linear, std::string path)
    : torch::nn::Module("tlora::InPlaceHost"), linear_(linear), path_(std::move(path)) {
  const auto parameters = linear->named_parameters(/*recurse=*/false);
  const at::Tensor* weight = parameters.find("weight");
  TORCH_CHECK(weight != nullptr && weight->dim() == 2, "'", path_, "' has no 2-D weight parameter");
  base_weight_ = *weight;
}

BaseLinear InPlaceHost::base() const { return {base_weight_, linear()->bias}; }

torch::nn::Module& InPlaceHost::owner() { return *linear(); }

std::shared_ptr<torch::nn::LinearImpl> InPlaceHost::linear() const {
  auto linear = linear_.lock();
  TORCH_CHECK(linear, "the torch::nn::Linear '", path_, "' that this adapter host patched no longer exists");
  return linear;
}

void InPlaceHost::refresh() {
  const auto linear = this->linear();
  AdapterImpl* adapter = applied();
  if (adapter == nullptr) {
    linear->weight = base_weight_;
    return;
  }
  at::Tensor weight;
  {
    c10::NoGradGuard no_grad;
    weight = base_weight_ + adapter->delta_weight().to(base_weight_.scalar_type());
  }
  std::vector<at::Tensor> trainable;
  for (const auto& p : adapter->parameters()) {
    if (p.requires_grad()) trainable.push_back(p);
  }
  if (!trainable.empty()) {
    const auto self = adapters().at(active_adapter());
    torch::autograd::create_gradient_edge(
        weight, std::make_shared<MergedWeightBackward>(self, std::move(trainable), path_));
  }
  linear->weight = weight;
}

void InPlaceHost::adapters_changed() {
  if (!adapters().empty()) {
    refresh();
    return;
  }
  // The last adapter is gone: the Linear is a plain one again.
  const auto keep_alive = shared_from_this();
  const auto linear = this->linear();
  linear->weight = base_weight_;
  linear->unregister_module(kName);
}

std::shared_ptr<InPlaceHost> attach_in_place_host(const std::shared_ptr<torch::nn::LinearImpl>& linear,
                                                  const std::string& path) {
  auto host = std::make_shared<InPlaceHost>(linear, path);
  linear->register_module(InPlaceHost::kName, host);
  return host;
}

}  // namespace tlora::detail
