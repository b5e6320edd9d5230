#include "tlora/io/checkpoint.h"

#include "io/adapter_config.h"
#include "io/adapter_tensors.h"
#include "adapters/method.h"
#include "adapters/host_slot.h"
#include "tlora/io/atomic_file.h"
#include "tlora/io/files.h"
#include "tlora/adapters/host.h"
#include "tlora/io/safetensors.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/equal.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>
#include <c10/util/StringUtil.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <optional>
#include <set>
#include <system_error>

namespace tlora {
namespace {

namespace fs = std::filesystem;
using detail::AdapterConfig;
using detail::Adapted;
using detail::ModuleEntry;
using detail::ModulePtr;
using detail::TensorMap;

// save_adapter stores the config inside the tensor file too, under this metadata key, so that
// the tensor file alone is a complete checkpoint, replaced in one rename.
constexpr const char* kEmbeddedConfigKey = "tlora.adapter_config";

std::string system_error(int error) { return std::system_category().message(error); }

std::string describe(at::ScalarType dtype, at::IntArrayRef shape) {
  return fmt::format("{} [{}]", safetensors::dtype_name(dtype), fmt::join(shape, ", "));
}

// The first option other than rank and scale in which two layers' adapters differ, or "".
std::string differing_option(const AdapterOptions& a, const AdapterOptions& b) {
  if (a.kind != b.kind) return "kind";
  const detail::Method& method = detail::method(a.kind);
  if (method.single_rank() && a.rank != b.rank) return "rank";
  if (a.dropout != b.dropout) return "dropout";
  if (a.dropout_position != b.dropout_position) return "dropout_position";
  if (a.init != b.init) return "init";
  if (a.train_scale != b.train_scale) return "train_scale";
  if (a.seed != b.seed) return "seed";
  if (a.strategy != b.strategy) return "strategy";
  for (const detail::MethodOption& o : method.own_options()) {
    if (a.*o.member != b.*o.member) return o.name;
  }
  return "";
}

void insert_unique(TensorMap& tensors, const std::string& key, const at::Tensor& tensor) {
  TORCH_CHECK(tensors.emplace(key, tensor).second, "save_adapter: two tensors would be saved under the key '",
              key, "'");
}

std::string listing(const std::vector<std::string>& items) {
  constexpr size_t kShown = 8;
  const std::vector<std::string> shown(items.begin(), items.begin() + std::min(items.size(), kShown));
  return fmt::format("{}{}", fmt::join(shown, ", "),
                     items.size() > kShown ? fmt::format(" and {} more", items.size() - kShown) : "");
}

// adapter_config.json; but when it belongs to another save than the tensor file (a save
// interrupted between its two writes leaves the new tensor file beside the old config), the copy
// of the config inside the tensor file, which was renamed into place together with the tensors.
AdapterConfig read_config(const fs::path& config_path, const safetensors::File& file) {
  AdapterConfig config = detail::parse_adapter_config(config_path, read_file(config_path, "load_adapter"));
  const auto embedded = file.metadata().find(kEmbeddedConfigKey);
  if (embedded == file.metadata().end()) return config;
  AdapterConfig own = detail::parse_adapter_config(
      fmt::format("{} (metadata \"{}\")", file.path().string(), kEmbeddedConfigKey), embedded->second);
  if (own.tensors_checksum == config.tensors_checksum) return config;
  TORCH_WARN("load_adapter: ", config_path, " (tensors_checksum ", config.tensors_checksum,
             ") belongs to another save than ", file.path(), " (", own.tensors_checksum,
             "), as a save interrupted between its two writes leaves them; loading the config saved inside ",
             file.path());
  return own;
}

}  // namespace

SaveAdapterOptions SaveAdapterOptions::from(const InjectReport& report) {
  SaveAdapterOptions options;
  options.adapter_name = report.adapter_name;
  options.modules_to_save = report.saved_modules;
  return options;
}

void save_adapter(const torch::nn::Module& model, const fs::path& dir, const SaveAdapterOptions& options) {
  const std::string& name = options.adapter_name;
  const auto named = model.named_modules("", /*include_self=*/false);
  std::vector<Adapted> adapted;
  std::vector<at::Tensor> base_weights;
  for (const auto& [path, host] : adapter_hosts(model)) {
    if (auto adapter = host->adapter(name)) {
      const AdapterOptions& o = adapter->options();
      const at::Tensor weight = host->base().weight;
      adapted.push_back({{path, weight.size(1), weight.size(0), o.rank, o.scale}, std::move(adapter)});
      base_weights.push_back(weight);
    }
  }
  TORCH_CHECK(!adapted.empty(), "save_adapter: no module has an adapter named '", name, "'");

  AdapterConfig config;
  config.adapter_name = name;
  config.base_model = options.base_model;
  config.options = adapted.front().adapter->options();
  const AdapterKind kind = config.options.kind;
  for (const Adapted& a : adapted) {
    const std::string field = differing_option(config.options, a.adapter->options());
    TORCH_CHECK(field.empty(), "save_adapter: the adapters named '", name, "' on '", adapted.front().entry.path,
                "' and '", a.entry.path, "' differ in ", field, "; one checkpoint holds one adapter configuration");
  }

  TensorMap tensors = detail::trainable_tensors(adapted);
  const std::string first_key = tensors.begin()->first;
  config.dtype = tensors.begin()->second.scalar_type();
  TORCH_CHECK(!detail::config_dtype_name(config.dtype).empty(), "save_adapter: tensor '", first_key, "' is ",
              config.dtype, "; adapters are saved as float64, float32, float16 or bfloat16");
  for (size_t i = 0; i < adapted.size(); ++i) {
    adapted[i].entry.base_checksum = detail::base_layer_checksum(base_weights[i], config.dtype);
    config.modules.push_back(adapted[i].entry);
  }

  const TensorMap fixed = detail::fixed_tensors(kind, adapted);
  // load_adapter regenerates projections from the module path; an adapter keyed by another name
  // (a TLoRALinear's own) needs its projections stored.
  const bool regenerable = std::ranges::all_of(adapted, [](const Adapted& a) {
    return a.adapter->buffers_regenerable() && a.adapter->path() == a.entry.path;
  });
  config.projections_stored = options.store_projections || !regenerable || fixed.empty();
  if (config.projections_stored) {
    for (const auto& [key, tensor] : fixed) insert_unique(tensors, key, tensor);
  } else {
    // Regenerate now, so that a checkpoint that could never load is refused while the
    // projections still exist.
    std::vector<at::Tensor> weights;
    for (const Adapted& a : adapted) {
      weights.push_back(at::empty({a.entry.out_features, a.entry.in_features}, fixed.begin()->second.options()));
    }
    const TensorMap regenerated = detail::fixed_tensors(kind, detail::build_adapters(config, weights, std::nullopt));
    for (const auto& [key, tensor] : fixed) {
      TORCH_CHECK(at::equal(tensor, regenerated.at(key)), "save_adapter: '", key,
                  "' differs from what its seed regenerates (were the projections changed, or the model "
                  "cast to another dtype, after injection?); save with store_projections = true");
    }
    config.projection_checksum = detail::checksum(regenerated);
  }

  for (const std::string& path : options.modules_to_save) {
    const ModulePtr* module = named.find(path);
    TORCH_CHECK(module, "save_adapter: modules_to_save entry '", path, "' is not a module of the model");
    for (const auto& [key, tensor] : detail::saved_module_parameters(*module, path)) insert_unique(tensors, key, tensor);
    config.modules_to_save.push_back(path);
  }
  for (const auto& [key, tensor] : tensors) {
    TORCH_CHECK(tensor.scalar_type() == config.dtype, "save_adapter: tensor '", key, "' is ", tensor.scalar_type(),
                " but '", first_key, "' is ", config.dtype,
                "; a checkpoint holds one dtype, so convert the model to one first");
  }
  config.tensors_checksum = detail::checksum(tensors);

  create_directories(dir, "save_adapter");
  // The tensors (with the config inside) first: a failure between the two writes then leaves the
  // new tensor file next to the old config, which load_adapter recognises by tensors_checksum and
  // loads with the config inside; never a config without its tensors.
  const std::string config_text = detail::format_adapter_config(config);
  safetensors::save(dir / kAdapterModelFile, tensors, {{"format", "pt"}, {kEmbeddedConfigKey, config_text}});
  write_file_atomically(dir / kAdapterConfigFile, config_text);
}

CheckpointInfo read_checkpoint_info(const fs::path& dir) {
  const fs::path config_path = dir / kAdapterConfigFile;
  const AdapterConfig config = detail::parse_adapter_config(config_path, read_file(config_path, "read_checkpoint_info"));
  CheckpointInfo info{config.adapter_name, config.options.kind, config.base_model, {}};
  for (const ModuleEntry& m : config.modules) {
    info.modules.push_back({m.path, m.in_features, m.out_features, m.rank, m.scale, m.base_checksum});
  }
  return info;
}

LoadReport load_adapter(torch::nn::Module& model, const fs::path& dir, const LoadAdapterOptions& options) {
  const fs::path config_path = dir / kAdapterConfigFile, model_path = dir / kAdapterModelFile;
  const safetensors::File file = safetensors::File::open(model_path);
  const AdapterConfig config = read_config(config_path, file);
  const AdapterKind kind = config.options.kind;
  const std::string name = options.adapter_name.empty() ? config.adapter_name : options.adapter_name;
  // AdapterHost::add_adapter's rule, checked before anything changes.
  TORCH_CHECK(!name.empty() && name.find('.') == std::string::npos && name != "weight" && name != "bias" &&
                  name != "tlora_host",
              "load_adapter: invalid adapter name '", name, "'",
              options.adapter_name.empty() ? c10::str(" (field \"adapter_name\" of ", config_path, ")") : "",
              "; it must be non-empty, without '.', and not weight, bias or tlora_host");

  // Find every layer and module to save and check that each fits, before anything changes.
  std::vector<detail::HostSlot> slots;
  std::vector<std::pair<std::string, ModulePtr>> saved;
  {
    const auto named = model.named_modules("", /*include_self=*/false);
    for (const ModuleEntry& m : config.modules) {
      const ModulePtr* module = named.find(m.path);
      TORCH_CHECK(module, "load_adapter: ", config_path, ": module '", m.path, "' is not in the model");
      slots.push_back(detail::make_host_slot(named, m.path, *module));
    }
    for (const std::string& path : config.modules_to_save) {
      const ModulePtr* module = named.find(path);
      TORCH_CHECK(module, "load_adapter: ", config_path, ": modules_to_save entry '", path, "' is not in the model");
      saved.emplace_back(path, *module);
    }
  }
  std::vector<at::Tensor> weights;  // in the checkpoint's dtype, on the model's device
  std::vector<at::ScalarType> model_dtypes;
  const std::string subject = c10::str("load_adapter: ", config_path, ": module");
  for (size_t i = 0; i < slots.size(); ++i) {
    const ModuleEntry& m = config.modules[i];
    const at::Tensor weight = detail::host_weight(slots[i], subject, "");
    TORCH_CHECK(weight.size(1) == m.in_features && weight.size(0) == m.out_features, subject, " '", m.path,
                "' has in_features=", weight.size(1), ", out_features=", weight.size(0),
                " but the checkpoint was saved for in_features=", m.in_features, ", out_features=", m.out_features);
    TORCH_CHECK(!slots[i].host || !slots[i].host->adapter(name), subject, " '", m.path,
                "' already has an adapter named '", name, "'; load it under another adapter_name");
    weights.push_back(weight.detach().to(config.dtype));
    model_dtypes.push_back(weight.scalar_type());
    if (options.verify_base && !m.base_checksum.empty()) {
      const std::string found = detail::base_layer_checksum(weights.back(), config.dtype);
      // An adapter trained in bf16-mixed precision saw this base rounded to bfloat16
      // (cast_frozen_matrices_); the same weights, so they match too.
      const bool rounded_match = found != m.base_checksum && weight.scalar_type() != at::kBFloat16 &&
                                 detail::base_layer_checksum(weight.detach().to(at::kBFloat16), config.dtype) ==
                                     m.base_checksum;
      TORCH_CHECK(found == m.base_checksum || rounded_match, subject, " '", m.path, "' has other base weights than the adapter was saved with (base_checksum ",
                  m.base_checksum, ", this model's ", found,
                  "): the checkpoint belongs to another base model; set verify_base = false to load it anyway");
    }
  }

  std::vector<std::string> missing, unexpected;
  std::vector<MismatchedKey> mismatched;
  std::set<std::string> expected, loadable;
  const auto check = [&](const std::string& key, at::IntArrayRef shape) {
    expected.insert(key);
    const safetensors::TensorInfo* info = file.find(key);
    if (info == nullptr) {
      missing.push_back(key);
    } else if (info->dtype != config.dtype || at::IntArrayRef(info->shape) != shape) {
      mismatched.push_back({key, describe(config.dtype, shape), describe(info->dtype, info->shape)});
    } else {
      loadable.insert(key);
    }
  };

  // Tensors the layers share (VeRA's pair) are stored once and build the adapters; the others
  // are loaded into the adapters built.
  const auto [max_in, max_out] = detail::layer_extent(config.modules);
  const auto shared_shapes = detail::method(kind).shared_shapes(max_in, max_out, config.options);
  std::optional<SharedTensors> stored_shared;
  if (config.projections_stored && !shared_shapes.empty()) {
    stored_shared.emplace();
    for (const auto& [key, shape] : shared_shapes) {
      check(key, shape);
      if (loadable.count(key)) stored_shared->emplace(key, file.get(key).to(weights.front().device()));
    }
    if (stored_shared->size() != shared_shapes.size()) stored_shared.reset();
  }
  std::vector<Adapted> adapted = detail::build_adapters(config, weights, stored_shared);
  TensorMap adapter_targets = detail::trainable_tensors(adapted);  // key -> the tensor that receives it
  if (config.projections_stored) {
    for (auto& [key, tensor] : detail::fixed_tensors(kind, adapted)) {
      if (!shared_shapes.count(key)) adapter_targets.emplace(key, tensor);
    }
  }
  for (const auto& [key, tensor] : adapter_targets) check(key, tensor.sizes());
  TensorMap saved_targets;  // key -> the model's parameter that receives it
  for (const auto& [path, module] : saved) {
    for (const auto& [key, parameter] : detail::saved_module_parameters(module, path)) {
      TORCH_CHECK(!expected.count(key), "load_adapter: ", config_path, ": the key '", key,
                  "' names both an adapter tensor and a parameter of modules_to_save");
      check(key, parameter.sizes());
      saved_targets.emplace(key, parameter);
    }
  }
  for (const safetensors::TensorInfo& info : file.tensors()) {
    if (!expected.count(info.name)) unexpected.push_back(info.name);
  }
  std::ranges::sort(missing);
  std::ranges::sort(unexpected);
  std::ranges::sort(mismatched, {}, &MismatchedKey::key);
  if (options.strict && (!missing.empty() || !unexpected.empty() || !mismatched.empty())) {
    std::string problems;
    if (!missing.empty()) problems += "; missing keys: " + listing(missing);
    if (!unexpected.empty()) problems += "; unexpected keys: " + listing(unexpected);
    std::vector<std::string> wrong;
    for (const auto& m : mismatched) wrong.push_back(fmt::format("{} (expected {}, found {})", m.key, m.expected, m.found));
    if (!wrong.empty()) problems += "; mismatched keys: " + listing(wrong);
    TORCH_CHECK(false, "load_adapter: ", model_path, " does not hold the tensors ", config_path, " describes",
                problems);
  }

  TensorMap values;
  for (const safetensors::TensorInfo& info : file.tensors()) values.emplace(info.name, file.get(info.name));
  if (!config.tensors_checksum.empty()) {
    const std::string found = detail::checksum(values);
    TORCH_CHECK(found == config.tensors_checksum, "load_adapter: the tensors of ", model_path,
                " do not match tensors_checksum ", config.tensors_checksum, " of ", config_path, " (found ", found,
                "): the two files come from different saves, or one of them was changed");
  }
  if (!config.projections_stored) {
    const std::string regenerated = detail::checksum(detail::fixed_tensors(kind, adapted));
    TORCH_CHECK(regenerated == config.projection_checksum, "load_adapter: ", config_path,
                ": the projections regenerated on this machine differ from those at save time (projection_checksum ",
                config.projection_checksum, ", regenerated ", regenerated,
                "); save the adapter with store_projections = true to carry them in the file");
  }

  TensorMap staged;  // modules_to_save values, ready to copy
  {
    c10::NoGradGuard no_grad;
    for (const auto& [key, tensor] : adapter_targets) {
      if (loadable.count(key)) tensor.copy_(values.at(key));
    }
    for (size_t i = 0; i < adapted.size(); ++i) {
      if (model_dtypes[i] != config.dtype) adapted[i].adapter->to(model_dtypes[i]);
    }
    for (const auto& [key, parameter] : saved_targets) {
      if (loadable.count(key)) staged.emplace(key, values.at(key).to(parameter.device(), parameter.scalar_type()));
    }
  }

  // Everything is validated and built: commit.
  LoadReport report;
  report.adapter_name = name;
  report.kind = kind;
  for (size_t i = 0; i < slots.size(); ++i) {
    const auto host = detail::install_host(model, slots[i]);
    const std::string previous = host->active_adapter();
    host->add_adapter(name, adapted[i].adapter);
    host->set_active_adapter(options.activate ? name : previous);
    const ModuleEntry& m = adapted[i].entry;
    report.modules.push_back({m.path, m.in_features, m.out_features, m.rank, m.scale, adapted[i].adapter->trainable_count()});
  }
  {
    c10::NoGradGuard no_grad;
    for (const auto& [key, value] : staged) saved_targets.at(key).copy_(value);
  }
  std::vector<ModulePtr> kept;
  for (const auto& [path, module] : saved) {
    kept.push_back(module);
    report.saved_modules.push_back(path);
  }
  detail::freeze_all_but_adapters_and(model, kept);
  report.missing_keys = std::move(missing);
  report.unexpected_keys = std::move(unexpected);
  report.mismatched_keys = std::move(mismatched);
  return report;
}

}  // namespace tlora
