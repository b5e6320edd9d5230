#include "io/adapter_tensors.h"

#include "adapters/method.h"

#include "tlora/core/random.h"
#include "tlora/io/safetensors.h"

#include <ATen/ops/equal.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>
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

std::pair<int64_t, int64_t> layer_extent(const std::vector<ModuleEntry>& modules) {
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
  std::vector<ModuleEntry> entries;
  for (const Adapted& a : adapted) entries.push_back(a.entry);
  const auto [max_in, max_out] = layer_extent(entries);
  const auto shared = method(kind).shared_shapes(max_in, max_out, adapted.front().adapter->options());
  for (const Adapted& a : adapted) {
    for (const auto& b : a.adapter->named_buffers()) {
      if (!shared.count(b.key())) out.emplace(a.entry.path + "." + b.key(), b.value());
    }
  }
  for (const auto& [name, shape] : shared) {
    // Each layer holds the leading slice of the whole that fits it; the largest slice is the whole.
    at::Tensor whole;
    for (const Adapted& a : adapted) {
      const at::Tensor slice = a.adapter->named_buffers()[name];
      if (!whole.defined() || slice.numel() > whole.numel()) whole = slice;
    }
    TORCH_CHECK(whole.sizes() == at::IntArrayRef(shape), "save_adapter: the shared tensor '", name, "' of the ",
                kind.name(), " adapters is ", whole.sizes(), ", not the ", at::IntArrayRef(shape),
                " their layers need");
    for (const Adapted& a : adapted) {
      const at::Tensor slice = a.adapter->named_buffers()[name];
      at::Tensor lead = whole;
      for (int64_t d = 0; d < slice.dim(); ++d) lead = lead.narrow(d, 0, slice.size(d));
      TORCH_CHECK(at::equal(slice, lead), "save_adapter: the ", kind.name(), " tensor '", name, "' of '",
                  a.entry.path, "' is not a slice of the one the other layers share, so one stored copy cannot hold it");
    }
    out.emplace(name, whole);
  }
  return out;
}

std::vector<Adapted> build_adapters(const AdapterConfig& config, const std::vector<at::Tensor>& weights,
                                    std::optional<SharedTensors> shared) {
  c10::NoGradGuard no_grad;
  if (!shared) {
    const auto [max_in, max_out] = layer_extent(config.modules);
    shared = draw_shared_tensors(config.options, max_in, max_out, weights.front().options());
  }
  std::vector<Adapted> out;
  for (size_t i = 0; i < config.modules.size(); ++i) {
    const ModuleEntry& m = config.modules[i];
    AdapterOptions options = config.options;
    options.rank = m.rank;
    options.scale = m.scale;
    out.push_back({m, make_adapter(options, m.path, weights[i], *shared)});
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
