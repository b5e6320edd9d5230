// VeRA: ΔW = diag(λ_b)·B·diag(λ_d)·A with A and B frozen, drawn once per model and shared by
// every layer (each takes the leading slice that fits it); only the vectors λ_b, λ_d train.
#include "adapters/method.h"
#include "tlora/core/random.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/diag.h>
#include <ATen/ops/full.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

#include <array>
#include <cmath>

namespace tlora::detail {
namespace {

// The names of the shared pair, in the adapters and (once) in checkpoints.
constexpr const char* kDown = "vera_A";
constexpr const char* kUp = "vera_B";

class VeRAAdapter final : public AdapterImpl {
 public:
  VeRAAdapter(const AdapterOptions& options, const std::string& path, const at::Tensor& weight,
              const SharedTensors& shared)
      : AdapterImpl(options, path) {
    const int64_t in = weight.size(1), out = weight.size(0);
    down_ = register_buffer(kDown, shared.at(kDown).slice(1, 0, in));
    up_ = register_buffer(kUp, shared.at(kUp).slice(0, 0, out));
    lambda_d_ = register_parameter("lambda_d", at::full({options.rank}, options.vera_d_initial, weight.options()));
    lambda_b_ = register_parameter("lambda_b", at::zeros({out}, weight.options()));
  }

  at::Tensor forward(const at::Tensor& x, const BaseLinear& base) override {
    const AdapterDropout d = next_dropout(DropoutPosition::Input);
    const at::Tensor adapter_in =
        d.p > 0 ? x * philox_dropout_mask(x.sizes(), d.p, d.seed, d.stream, x.options()) : x;
    return at::linear(x, base.weight, base.bias) +
           at::linear(at::linear(adapter_in, down_) * lambda_d_, up_) * lambda_b_;
  }

  at::Tensor delta_weight() const override {
    return (up_ * lambda_b_.detach().unsqueeze(1)).mm(down_ * lambda_d_.detach().unsqueeze(1));
  }

  DeltaFactors factors() const override {
    return {up_ * lambda_b_.unsqueeze(1), at::diag(lambda_d_), down_, at::ones({}, down_.options())};
  }


 private:
  at::Tensor down_, up_, lambda_d_, lambda_b_;
};

constexpr std::array<MethodOption, 1> kOptions{{{"vera_d_initial", &AdapterOptions::vera_d_initial}}};

class VeRAMethod final : public Method {
 public:
  AdapterKind kind() const override { return AdapterKind::VeRA; }

  std::shared_ptr<AdapterImpl> make(const AdapterOptions& options, const std::string& path, const at::Tensor& weight,
                                    const SharedTensors& shared) const override {
    const int64_t out = weight.size(0), in = weight.size(1);
    const auto down = shared.find(kDown), up = shared.find(kUp);
    TORCH_CHECK(down != shared.end() && up != shared.end(), "adapter for '", path,
                "': VeRA needs the shared projections (draw_shared_tensors)");
    TORCH_CHECK(down->second.size(1) >= in && up->second.size(0) >= out && down->second.size(0) == options.rank,
                "adapter for '", path, "': the shared VeRA projections (", down->second.sizes(), ", ",
                up->second.sizes(), ") do not cover a ", out, "×", in, " layer at rank ", options.rank);
    return std::make_shared<VeRAAdapter>(options, path, weight, shared);
  }

  std::map<std::string, std::vector<int64_t>> shared_shapes(int64_t max_in, int64_t max_out,
                                                            const AdapterOptions& options) const override {
    return {{kDown, {options.rank, max_in}}, {kUp, {max_out, options.rank}}};
  }

  SharedTensors draw_shared(int64_t max_in, int64_t max_out, const AdapterOptions& options,
                            const at::TensorOptions& tensor_options) const override {
    // PEFT's kaiming_uniform_(a=√5) draws U(-1/√fan_in, 1/√fan_in); fan_in is max_in for A, r for B.
    const double bound_a = 1.0 / std::sqrt(static_cast<double>(max_in));
    const double bound_b = 1.0 / std::sqrt(static_cast<double>(options.rank));
    const auto dtype = tensor_options.dtype().toScalarType();
    return {{kDown, philox_uniform({options.rank, max_in}, -bound_a, bound_a, options.seed, stream_id("vera/down"), dtype)
                        .to(tensor_options.device())},
            {kUp, philox_uniform({max_out, options.rank}, -bound_b, bound_b, options.seed, stream_id("vera/up"), dtype)
                      .to(tensor_options.device())}};
  }

  bool single_rank() const override { return true; }
  std::span<const MethodOption> own_options() const override { return kOptions; }
};

}  // namespace

const Method& vera_method() {
  static const VeRAMethod method;
  return method;
}

}  // namespace tlora::detail
