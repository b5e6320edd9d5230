#include "adapter_kinds.h"
#include "tlora/adapters.h"
#include "tlora/random.h"

#include <c10/util/Exception.h>

#include <array>
#include <cmath>

namespace tlora {

std::string_view to_string(AdapterKind kind) {
  switch (kind) {
    case AdapterKind::TLoRA: return "tlora";
    case AdapterKind::LoRA: return "lora";
    case AdapterKind::VeRA: return "vera";
    case AdapterKind::LoRAXS: return "loraxs";
  }
  return "unknown";
}

AdapterKind adapter_kind_from_string(std::string_view name) {
  for (AdapterKind k : {AdapterKind::TLoRA, AdapterKind::LoRA, AdapterKind::VeRA, AdapterKind::LoRAXS}) {
    if (to_string(k) == name) return k;
  }
  TORCH_CHECK(false, "unknown adapter kind '", name, "'; expected tlora, lora, vera or loraxs");
}

AdapterImpl::AdapterImpl(AdapterOptions options, std::string path)
    : torch::nn::Module(std::string(to_string(options.kind))),
      options_(std::move(options)),
      path_(std::move(path)) {}

int64_t AdapterImpl::trainable_count() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

AdapterDropout AdapterImpl::next_dropout(DropoutPosition position) {
  AdapterDropout d;
  if (!is_training() || options_.dropout <= 0.0) return d;
  d.p = options_.dropout;
  d.position = position;
  d.seed = options_.seed;
  d.stream = dropout_stream(path_, calls_++);
  return d;
}

VeRAProjections draw_vera_projections(int64_t max_in, int64_t max_out, const AdapterOptions& options,
                                      const at::TensorOptions& tensor_options) {
  // kaiming_uniform_(a=√5) draws U(-1/√fan_in, 1/√fan_in); fan_in is max_in for A, r for B.
  const double bound_a = 1.0 / std::sqrt(static_cast<double>(max_in));
  const double bound_b = 1.0 / std::sqrt(static_cast<double>(options.rank));
  const auto dtype = tensor_options.dtype().toScalarType();
  return VeRAProjections{
      philox_uniform({options.rank, max_in}, -bound_a, bound_a, options.seed, stream_id("vera/down"), dtype)
          .to(tensor_options.device()),
      philox_uniform({max_out, options.rank}, -bound_b, bound_b, options.seed, stream_id("vera/up"), dtype)
          .to(tensor_options.device())};
}

std::shared_ptr<AdapterImpl> make_adapter(const AdapterOptions& options, const std::string& path,
                                          const at::Tensor& weight, const VeRAProjections* vera) {
  TORCH_CHECK(weight.defined() && weight.dim() == 2, "adapter for '", path,
              "': the base weight must be 2-D (out×in)");
  const int64_t out = weight.size(0), in = weight.size(1);
  TORCH_CHECK(options.rank >= 1 && options.rank <= std::min(in, out), "adapter for '", path,
              "': rank must be in [1, min(in, out)] = [1, ", std::min(in, out), "], got ",
              options.rank);
  TORCH_CHECK(options.dropout >= 0.0 && options.dropout < 1.0, "adapter for '", path,
              "': dropout must be in [0, 1), got ", options.dropout);
  switch (options.kind) {
    case AdapterKind::TLoRA: return std::make_shared<detail::TLoRAAdapter>(options, path, weight);
    case AdapterKind::LoRA: return std::make_shared<detail::LoRAAdapter>(options, path, weight);
    case AdapterKind::LoRAXS: return std::make_shared<detail::LoRAXSAdapter>(options, path, weight);
    case AdapterKind::VeRA:
      TORCH_CHECK(vera != nullptr, "adapter for '", path, "': VeRA needs the shared projections");
      TORCH_CHECK(vera->down.size(1) >= in && vera->up.size(0) >= out && vera->down.size(0) == options.rank,
                  "adapter for '", path, "': the shared VeRA projections (", vera->down.sizes(), ", ",
                  vera->up.sizes(), ") do not cover a ", out, "×", in, " layer at rank ", options.rank);
      return std::make_shared<detail::VeRAAdapter>(options, path, weight, *vera);
  }
  TORCH_CHECK(false, "unknown adapter kind");
}

}  // namespace tlora
