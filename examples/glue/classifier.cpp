// Building, preparing, saving and loading the fine-tuned classifier.
#include "classifier.h"

#include "files.h"

#include "tlora/adapters/adapter.h"
#include "tlora/io/atomic_file.h"
#include "tlora/io/checkpoint.h"
#include "tlora/adapters/adaptable_linear.h"
#include "tlora/models/config.h"
#include "tlora/models/loading.h"
#include "tlora/models/sequence_classifier.h"
#include "tlora/core/precision.h"
#include "tlora/core/random.h"
#include "tlora/io/safetensors.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <sys/stat.h>

namespace glue_app {
namespace {

constexpr const char* kInfoFile = "tlora_glue.json";
constexpr const char* kTrainableFile = "trainable.safetensors";

bool is_adapter_method(const std::string& method) {
  return method != "full" && method != "head-only";
}

// config.json's bytes and the weight files' sizes: cheap, and different for any other model.
std::string base_digest(const std::string& model_dir) {
  const std::string config = read_text(model_dir + "/config.json");
  uint64_t h = tlora::fnv1a64(config.data(), config.size());
  for (const auto& file : tlora::models::weight_files(model_dir)) {
    struct stat s {};
    TORCH_CHECK(::stat(file.c_str(), &s) == 0, "cannot stat ", file.string());
    const auto size = static_cast<uint64_t>(s.st_size);
    h = tlora::fnv1a64(&size, sizeof size, h);
  }
  return fmt::format("{:016x}", h);
}

}  // namespace

void to_precision(Classifier& classifier, const std::string& precision, c10::Device device) {
  if (precision == "fp16") {
    classifier.module->to(device, at::kHalf);
    return;
  }
  switch (tlora::parse_precision(precision)) {
    case tlora::Precision::Float32: classifier.module->to(device); break;
    case tlora::Precision::BFloat16: classifier.module->to(device, at::kBFloat16); break;
    case tlora::Precision::BFloat16Mixed:
      classifier.module->to(device);
      tlora::cast_frozen_matrices_(*classifier.module, at::kBFloat16);
      break;
  }
}

bool in_modules(const std::string& name, const std::vector<std::string>& modules) {
  for (const auto& m : modules)
    if (name.size() > m.size() && name.compare(0, m.size(), m) == 0 && name[m.size()] == '.') return true;
  return false;
}

Classifier load_classifier(const std::string& model_dir, int64_t num_labels, uint64_t seed) {
  TORCH_CHECK(is_directory(model_dir), "model folder ", model_dir,
              " does not exist (give --model-dir, or set TLORA_MODEL_DIR)");
  auto config = tlora::models::EncoderConfig::from_pretrained(model_dir);
  config.num_labels = num_labels;
  config.problem_type = num_labels == 1 ? "regression" : "single_label_classification";
  tlora::models::LoadOptions options;
  options.seed = seed;
  Classifier c;
  c.module = tlora::models::make_sequence_classifier(config);
  tlora::models::load_weights(*c.module, model_dir, options);
  c.head_modules = c.module->head_modules();
  c.base_digest = base_digest(model_dir);
  return c;
}

void prepare_method(Classifier& c, const RunConfig& config) {
  if (is_adapter_method(config.method)) {
    tlora::InjectConfig inject;
    inject.adapter.kind = tlora::adapter_kind_from_string(config.method);
    inject.adapter.rank = config.rank;
    inject.adapter.scale = config.scale;
    inject.adapter.dropout = config.dropout;
    inject.adapter.train_scale = config.train_scale;
    inject.adapter.init = tlora::init_scheme_from_string(config.init);
    inject.adapter.seed = config.seed;
    inject.target_modules = config.targets;
    inject.modules_to_save = c.head_modules;
    c.adapter = tlora::inject(*c.module, inject);
    return;
  }
  for (auto& item : c.module->named_parameters()) {
    item.value().set_requires_grad(config.method == "full" || in_modules(item.key(), c.head_modules));
  }
}

std::vector<std::pair<std::string, at::Tensor>> trainable_parameters(const Classifier& c) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& item : c.module->named_parameters())
    if (item.value().requires_grad()) out.emplace_back(item.key(), item.value());
  return out;
}

void save_trainable_tensors(const Classifier& c, const std::string& file) {
  std::map<std::string, at::Tensor> tensors;
  for (const auto& [name, p] : trainable_parameters(c)) tensors[name] = p.detach();
  tlora::safetensors::save(file, tensors, {{"format", "tlora-glue-trainable"}});
}

void load_trainable_tensors(Classifier& c, const std::string& file) {
  const auto tensors = tlora::safetensors::load(file);
  const auto trainable = trainable_parameters(c);
  for (const auto& [name, p] : trainable) {
    const auto it = tensors.find(name);
    TORCH_CHECK(it != tensors.end(), file, ": has no tensor for the trainable parameter '", name, "'");
    TORCH_CHECK(it->second.sizes() == p.sizes(), file, ": '", name, "' has shape ",
                it->second.sizes(), " but the model's is ", p.sizes());
  }
  TORCH_CHECK(tensors.size() == trainable.size(), file, ": holds ", tensors.size(),
              " tensors but the model trains ", trainable.size(), " parameters");
  at::NoGradGuard no_grad;
  for (const auto& [name, p] : trainable) p.copy_(tensors.at(name));
}

void save_trained(const Classifier& c, const std::string& dir, nlohmann::ordered_json info) {
  make_directories(dir);
  if (c.adapter) {
    auto options = tlora::SaveAdapterOptions::from(*c.adapter);
    // TLoRA's and VeRA's projections are a function of the seed, so they are regenerated and
    // checksummed on load — unless the model was cast, which changes their bits.
    options.store_projections = c.module->parameters().front().scalar_type() != at::kFloat;
    tlora::save_adapter(*c.module, dir, options);
  } else {
    save_trainable_tensors(c, dir + "/" + kTrainableFile);
  }
  info["base_digest"] = c.base_digest;
  tlora::write_file_atomically(dir + "/" + kInfoFile, info.dump(2) + "\n");
}

nlohmann::ordered_json read_trained_info(const std::string& dir) {
  const std::string path = dir + "/" + kInfoFile;
  TORCH_CHECK(exists(path), dir, " is not a tlora-glue output: it has no ", kInfoFile,
              " (use a folder written by tlora-glue, e.g. <output-dir>/best)");
  try {
    auto info = nlohmann::ordered_json::parse(read_text(path));
    TORCH_CHECK(info.is_object() && info.contains("task") && info["task"].is_string() &&
                    info.contains("method") && info["method"].is_string() &&
                    info.contains("base_digest") && info["base_digest"].is_string(),
                path, ": needs string fields task, method and base_digest");
    return info;
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, path, ": not valid JSON: ", e.what());
  }
}

void load_trained(Classifier& c, const std::string& dir) {
  const auto info = read_trained_info(dir);
  TORCH_CHECK(info["base_digest"].get<std::string>() == c.base_digest, dir,
              " was trained on another base model (digest ", info["base_digest"].get<std::string>(),
              ", this model's is ", c.base_digest, "; was it trained with --model-dir ",
              info.value("model_dir", std::string("?")), "?)");
  if (is_adapter_method(info["method"].get<std::string>())) {
    tlora::load_adapter(*c.module, dir);
    return;
  }
  const auto tensors = tlora::safetensors::load(dir + "/" + kTrainableFile);
  auto params = c.module->named_parameters();
  for (const auto& [name, t] : tensors) {
    const at::Tensor* p = params.find(name);
    TORCH_CHECK(p != nullptr, dir, "/", kTrainableFile, ": '", name, "' is not a parameter of the model");
    TORCH_CHECK(p->sizes() == t.sizes(), dir, "/", kTrainableFile, ": '", name, "' has shape ",
                t.sizes(), " but the model's is ", p->sizes());
  }
  at::NoGradGuard no_grad;
  for (const auto& [name, t] : tensors) params[name].copy_(t);
}

nlohmann::ordered_json adapter_summary(const Classifier& c) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  if (!c.adapter) return out;
  at::NoGradGuard no_grad;
  for (const auto& item : c.module->named_modules()) {
    const auto host = std::dynamic_pointer_cast<tlora::AdaptableLinearImpl>(item.value());
    if (!host) continue;
    const auto adapter = host->adapter(c.adapter->adapter_name);
    if (!adapter) continue;
    nlohmann::ordered_json layer;
    const auto params = adapter->named_parameters(false);
    if (const at::Tensor* scale = params.find("scale")) layer["alpha"] = scale->item<double>();
    if (const at::Tensor* core = params.find("core")) {
      layer["core_fro"] = at::linalg_vector_norm(*core, 2).item<double>();
    } else {
      double sum = 0;
      for (const auto& p : params) sum += p.value().square().sum().item<double>();
      layer["params_fro"] = std::sqrt(sum);
    }
    out[item.key()] = layer;
  }
  return out;
}

}  // namespace glue_app
