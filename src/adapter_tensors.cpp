#include "adapter_tensors.h"

#include "tlora/random.h"
#include "tlora/safetensors.h"

#include <c10/core/GradMode.h>
#include <fmt/format.h>

#include <algorithm>

namespace tlora::detail {

std::string checksum(const TensorMap& tensors) {
  uint64_t hash = fnv1a64(nullptr, 0);
  const auto feed = [&hash](const void* data, size_t size) { hash = fnv1a64(data, size, hash); };
  for (const auto& [key, tensor] : tensors) {
    feed(key.c_str(), key.size() + 1);  // with the NUL, so that key and dtype cannot run together
    const std::string_view dtype = safetensors::dtype_name(tensor.scalar_type());
    feed(dtype.data(), dtype.size());
    const int64_t dims = tensor.dim();
    feed(&dims, sizeof dims);
    for (const int64_t size : tensor.sizes()) feed(&size, sizeof size);
    const at::Tensor data = tensor.cpu().contiguous();
    feed(data.const_data_ptr(), data.nbytes());
  }
  return fmt::format("{:016x}", hash);
}

std::string base_layer_checksum(const at::Tensor& weight, at::ScalarType dtype) {
  return checksum({{"weight", weight.detach().to(dtype)}});
}

std::pair<int64_t, int64_t> vera_extent(const std::vector<ModuleEntry>& modules) {
  int64_t max_in = 0, max_out = 0;
  for (const ModuleEntry& m : modules) {
    max_in = std::max(max_in, m.in_features);
    max_out = std::max(max_out, m.out_features);
  }
  return {max_in, max_out};
}

TensorMap trainable_tensors(const std::vector<Adapted>& adapted) {
  TensorMap out;
  for (const Adapted& a : adapted) {
    for (const auto& p : a.adapter->named_parameters()) out.emplace(a.entry.path + "." + p.key(), p.value());
  }
  return out;
}

TensorMap fixed_tensors(AdapterKind kind, const std::vector<Adapted>& adapted) {
  TensorMap out;
  if (kind == AdapterKind::VeRA) {
    // Each layer holds a slice of the shared pair; the widest slices are the whole of it.
    at::Tensor down, up;
    for (const Adapted& a : adapted) {
      const auto buffers = a.adapter->named_buffers();
      if (!down.defined() || buffers["vera_A"].size(1) > down.size(1)) down = buffers["vera_A"];
      if (!up.defined() || buffers["vera_B"].size(0) > up.size(0)) up = buffers["vera_B"];
    }
    out.emplace(kVeraDown, down);
    out.emplace(kVeraUp, up);
    return out;
  }
  for (const Adapted& a : adapted) {
    for (const auto& b : a.adapter->named_buffers()) out.emplace(a.entry.path + "." + b.key(), b.value());
  }
  return out;
}

std::vector<Adapted> build_adapters(const AdapterConfig& config, const std::vector<at::Tensor>& weights,
                                    std::optional<VeRAProjections> vera) {
  c10::NoGradGuard no_grad;
  if (config.options.kind == AdapterKind::VeRA && !vera) {
    const auto [max_in, max_out] = vera_extent(config.modules);
    vera = draw_vera_projections(max_in, max_out, config.options, weights.front().options());
  }
  std::vector<Adapted> out;
  for (size_t i = 0; i < config.modules.size(); ++i) {
    const ModuleEntry& m = config.modules[i];
    AdapterOptions options = config.options;
    options.rank = m.rank;
    options.scale = m.scale;
    out.push_back({m, make_adapter(options, m.path, weights[i], vera ? &*vera : nullptr)});
  }
  return out;
}

TensorMap saved_module_parameters(const ModulePtr& module, const std::string& path) {
  TensorMap out;
  for (const auto& item : module->named_modules(path)) {
    if (dynamic_cast<const AdapterImpl*>(item.value().get())) continue;
    for (const auto& p : item.value()->named_parameters(/*recurse=*/false)) {
      out.emplace(item.key() + "." + p.key(), p.value());
    }
  }
  return out;
}

}  // namespace tlora::detail
