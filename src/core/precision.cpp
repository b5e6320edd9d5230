#include "tlora/core/precision.h"

#include "tlora/adapters/adapter.h"

#include <ATen/autocast_mode.h>
#include <ATen/cpu/Utils.h>
#include <c10/util/Exception.h>
#include <torch/nn/module.h>

#include <array>
#include <utility>

namespace tlora {
namespace {

constexpr std::array<std::pair<Precision, std::string_view>, 3> kNames = {{
    {Precision::Float32, "fp32"},
    {Precision::BFloat16Mixed, "bf16-mixed"},
    {Precision::BFloat16, "bf16"},
}};

bool is_frozen_matrix(const at::Tensor& t) {
  return t.defined() && at::isFloatingType(t.scalar_type()) && !t.requires_grad() && t.dim() >= 2;
}

}  // namespace

std::string_view to_string(Precision precision) {
  for (const auto& [p, name] : kNames) {
    if (p == precision) return name;
  }
  return "unknown";
}

Precision parse_precision(std::string_view name) {
  for (const auto& [p, n] : kNames) {
    if (n == name) return p;
  }
  TORCH_CHECK(false, "unknown precision '", name, "'; choose fp32, bf16-mixed or bf16");
}

std::vector<std::string> cpu_bf16_instructions() {
  const auto capabilities = at::cpu::get_cpu_capabilities();
  std::vector<std::string> found;
  for (const char* name : {"amx_bf16", "avx512_bf16"}) {
    const auto it = capabilities.find(name);
    if (it != capabilities.end() && it->second.isBool() && it->second.toBool()) found.emplace_back(name);
  }
  return found;
}

Precision default_precision(c10::DeviceType device) {
  if (device == c10::kCUDA) return Precision::BFloat16Mixed;
  if (device == c10::kCPU && !cpu_bf16_instructions().empty()) return Precision::BFloat16Mixed;
  return Precision::Float32;
}

AutocastGuard::AutocastGuard(c10::DeviceType device, c10::ScalarType dtype, bool enabled)
    : device_(device),
      was_enabled_(at::autocast::is_autocast_enabled(device)),
      was_dtype_(at::autocast::get_autocast_dtype(device)) {
  TORCH_CHECK(at::autocast::is_autocast_available(device), "AutocastGuard: LibTorch has no autocast for ",
              device);
  // As torch.autocast: the cast cache lives while the outermost guard does.
  at::autocast::increment_nesting();
  at::autocast::set_autocast_enabled(device, enabled);
  at::autocast::set_autocast_dtype(device, dtype);
}

AutocastGuard::~AutocastGuard() {
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(device_, was_enabled_);
  at::autocast::set_autocast_dtype(device_, was_dtype_);
}

int64_t cast_frozen_matrices_(torch::nn::Module& model, c10::ScalarType dtype) {
  TORCH_CHECK(at::isFloatingType(dtype), "cast_frozen_matrices_: ", dtype, " is not a floating-point type");
  int64_t cast = 0;
  // set_data keeps each tensor's identity, so modules and optimizers that hold it see the cast.
  const auto cast_one = [&](at::Tensor t) {
    if (!is_frozen_matrix(t) || t.scalar_type() == dtype) return;
    t.set_data(t.to(dtype));
    ++cast;
  };
  for (const auto& item : model.named_modules()) {
    // Adapters are left alone: an inactive adapter's parameters do not require grad either but
    // are trained weights, its fixed projections are small, and a checkpoint holds one dtype.
    if (dynamic_cast<const AdapterImpl*>(item.value().get()) != nullptr) continue;
    for (const auto& p : item.value()->parameters(/*recurse=*/false)) cast_one(p);
    for (const auto& b : item.value()->buffers(/*recurse=*/false)) cast_one(b);
  }
  return cast;
}

}  // namespace tlora
