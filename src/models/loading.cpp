#include "tlora/models/loading.h"

#include "io/json.h"
#include "tlora/adapters/adapter.h"
#include "tlora/io/safetensors.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace tlora::models {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kWeightsFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";
// How many names an error or summary lists per category before "and N more".
constexpr size_t kListed = 20;

// POSIX stat rather than std::filesystem: LibTorch ships its own std::filesystem symbols, built
// with another libstdc++, that can crash the operations when linked together.
bool regular_file_exists(const fs::path& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < kListed; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > kListed) out += ", and " + std::to_string(names.size() - kListed) + " more";
  return out;
}

// The shard files of a sharded checkpoint's index, and which shard each key is in.
struct Index {
  std::vector<fs::path> shards;
  std::map<std::string, std::string> weight_map;  // key -> shard file name
};

Index read_index(const fs::path& path) {
  const json root = tlora::detail::read_json(path, "safetensors index");
  TORCH_CHECK(root.is_object() && root.contains("weight_map") && root["weight_map"].is_object(),
              "safetensors index ", path, ": has no \"weight_map\" object");
  Index index;
  std::set<std::string> seen;
  for (const auto& [key, shard] : root["weight_map"].items()) {
    TORCH_CHECK(shard.is_string(), "safetensors index ", path, ": the shard of '", key,
                "' is not a file name: ", shard.dump());
    const std::string name = shard.get<std::string>();
    TORCH_CHECK(!name.empty() && name.find('/') == std::string::npos && name != "..",
                "safetensors index ", path, ": the shard of '", key,
                "' must be a file name beside ", "the index, got \"", name, "\"");
    index.weight_map.emplace(key, name);
    if (seen.insert(name).second) index.shards.push_back(path.parent_path() / name);
  }
  TORCH_CHECK(!index.shards.empty(), "safetensors index ", path, ": the weight_map is empty");
  return index;
}

// What `source` names: a .safetensors file, an index, or a folder holding one of them.
struct Resolved {
  std::vector<fs::path> files;
  std::optional<Index> index;
  fs::path index_path;
};

Resolved resolve(const fs::path& source) {
  const std::string s = source.string();
  Resolved r;
  if (ends_with(s, ".safetensors")) {
    TORCH_CHECK(regular_file_exists(source), "no safetensors file ", source);
    r.files = {source};
    return r;
  }
  fs::path index_path = source;
  if (!ends_with(s, ".json")) {
    const fs::path single = source / kWeightsFile;
    if (regular_file_exists(single)) {
      r.files = {single};
      return r;
    }
    index_path = source / kIndexFile;
    TORCH_CHECK(regular_file_exists(index_path), "no weights in ", source, ": neither ",
                kWeightsFile, " nor ", kIndexFile,
                " (pytorch_model.bin is not read: convert it to safetensors)");
  }
  r.index = read_index(index_path);
  r.files = r.index->shards;
  r.index_path = index_path;
  return r;
}

// A model's own state: every parameter except those of adapters put in by tlora::inject, in
// registration order.
std::vector<std::pair<std::string, at::Tensor>> model_state(torch::nn::Module& model) {
  std::vector<std::string> adapter_prefixes;
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    if (dynamic_cast<AdapterImpl*>(item.value().get()) != nullptr) {
      adapter_prefixes.push_back(item.key() + ".");
    }
  }
  std::vector<std::pair<std::string, at::Tensor>> state;
  for (const auto& p : model.named_parameters()) {
    bool adapter = false;
    for (const auto& prefix : adapter_prefixes) adapter = adapter || starts_with(p.key(), prefix);
    if (!adapter) state.emplace_back(p.key(), p.value());
  }
  return state;
}

// transformers drops the position_ids buffer that older versions saved (now non-persistent).
bool ignored_key(const std::string& key) {
  return key == "position_ids" || ends_with(key, ".position_ids");
}

}  // namespace

std::vector<fs::path> weight_files(const fs::path& source) { return resolve(source).files; }

std::string LoadReport::summary() const {
  std::ostringstream out;
  out << "loaded " << loaded.size() << " parameters from";
  for (const auto& f : files) out << ' ' << f.string();
  if (!prefix_rule.empty()) out << " (" << prefix_rule << ")";
  if (!missing.empty()) out << "\nmissing: " << join(missing);
  if (!unexpected.empty()) out << "\nunexpected: " << join(unexpected);
  if (!other_head.empty()) out << "\nleft out (another head): " << join(other_head);
  for (size_t i = 0; i < mismatched.size() && i < kListed; ++i) {
    out << "\nshape mismatch: " << mismatched[i].name << " file "
        << shape_string(mismatched[i].file_shape) << " vs model "
        << shape_string(mismatched[i].model_shape);
  }
  if (!ignored.empty()) out << "\nignored: " << join(ignored);
  if (!initialized.empty()) out << "\ninitialised: " << join(initialized);
  return out.str();
}

LoadReport load_weights(PreTrainedModel& model, const fs::path& source,
                        const LoadOptions& options) {
  const Resolved resolved = resolve(source);
  std::vector<safetensors::File> files;
  std::map<std::string, size_t> file_of;  // key -> index into files
  for (const auto& path : resolved.files) {
    files.push_back(safetensors::File::open(path));
    for (const auto& info : files.back().tensors()) {
      const auto [it, inserted] = file_of.emplace(info.name, files.size() - 1);
      TORCH_CHECK(inserted, "key '", info.name, "' is in both ", files[it->second].path(), " and ",
                  path);
    }
  }
  if (resolved.index) {
    for (const auto& [key, shard] : resolved.index->weight_map) {
      const auto it = file_of.find(key);
      TORCH_CHECK(it != file_of.end() && files[it->second].path().filename() == shard,
                  "safetensors index ", resolved.index_path, " puts '", key, "' in ", shard,
                  ", which does not hold it");
    }
  }

  LoadReport report;
  report.files = resolved.files;
  const auto state = model_state(model);
  std::map<std::string, at::Tensor> params(state.begin(), state.end());

  // The base-model prefix, decided for the whole file as transformers does.
  const std::string prefix = model.base_model_prefix() + ".";
  bool any_prefixed = false, any_prefixable = false;
  for (const auto& [key, index] : file_of) {
    any_prefixed = any_prefixed || starts_with(key, prefix);
    any_prefixable = any_prefixable || params.count(prefix + key) > 0;
  }
  enum class Rule { None, Add, Remove } rule = Rule::None;
  if (!model.is_base_model() && !any_prefixed && any_prefixable) {
    rule = Rule::Add;
    report.prefix_rule = "added prefix '" + prefix + "'";
  } else if (model.is_base_model() && any_prefixed) {
    rule = Rule::Remove;
    report.prefix_rule = "removed prefix '" + prefix + "'";
  }

  std::map<std::string, std::string> to_load;  // parameter -> file key
  std::set<std::string> mismatched_names;
  for (const auto& [key, index] : file_of) {
    if (ignored_key(key)) {
      report.ignored.push_back(key);
      continue;
    }
    std::string name = key;
    if (rule == Rule::Add && params.count(prefix + key)) name = prefix + key;
    if (rule == Rule::Remove && starts_with(key, prefix)) name = key.substr(prefix.size());
    const auto param = params.find(name);
    if (param == params.end()) {
      (any_prefixed && !starts_with(key, prefix) ? report.other_head : report.unexpected)
          .push_back(key);
      continue;
    }
    const auto [previous, inserted] = to_load.emplace(name, key);
    TORCH_CHECK(inserted, "file keys '", previous->second, "' and '", key,
                "' both name the parameter '", name, "'");
    const safetensors::TensorInfo& info = *files[index].find(key);
    TORCH_CHECK(at::isFloatingType(info.dtype), "key '", key, "' of ", files[index].path(),
                " has dtype ", info.dtype, "; the parameter '", name, "' is floating point");
    const std::vector<int64_t> model_shape(param->second.sizes().begin(),
                                           param->second.sizes().end());
    if (info.shape != model_shape) {
      report.mismatched.push_back({name, info.shape, model_shape});
      mismatched_names.insert(name);
    }
  }

  std::vector<std::string> missing_head, missing_other;
  for (const auto& [name, tensor] : state) {
    if (to_load.count(name)) continue;
    report.missing.push_back(name);
    bool head = false;
    for (const auto& module : model.head_modules()) head = head || starts_with(name, module + ".");
    (head ? missing_head : missing_other).push_back(name);
  }

  std::vector<std::string> problems;
  if (!missing_other.empty() && !options.allow_missing) {
    problems.push_back("missing keys (the model has them, the file does not): " +
                       join(missing_other) + " [LoadOptions::allow_missing]");
  }
  if (!missing_head.empty() && !options.allow_new_head && !options.allow_missing) {
    problems.push_back("missing head keys: " + join(missing_head) +
                       " [LoadOptions::allow_new_head]");
  }
  if (!report.unexpected.empty() && !options.allow_unexpected) {
    problems.push_back("unexpected keys (the file has them, the model does not): " +
                       join(report.unexpected) + " [LoadOptions::allow_unexpected]");
  }
  if (!report.other_head.empty() && !options.allow_other_head) {
    problems.push_back("keys of a head the model does not have: " + join(report.other_head) +
                       " [LoadOptions::allow_other_head]");
  }
  if (!report.mismatched.empty() && !options.allow_shape_mismatch) {
    std::string list;
    for (size_t i = 0; i < report.mismatched.size() && i < kListed; ++i) {
      const auto& m = report.mismatched[i];
      list += (i ? ", " : "") + m.name + " file " + shape_string(m.file_shape) + " vs model " +
              shape_string(m.model_shape);
    }
    problems.push_back("shape mismatches: " + list + " [LoadOptions::allow_shape_mismatch]");
  }
  if (!problems.empty()) {
    std::string message;
    for (const auto& p : problems) message += "\n  " + p;
    TORCH_CHECK(false, "cannot load ", source, " into ", model.name(), ":", message);
  }

  {
    c10::NoGradGuard no_grad;
    for (const auto& [name, tensor] : state) {
      const auto it = to_load.find(name);
      if (it == to_load.end() || mismatched_names.count(name)) continue;
      at::Tensor target = tensor;
      target.copy_(files[file_of.at(it->second)].get(it->second));
      report.loaded.push_back(name);
    }
  }
  for (const auto& [name, tensor] : state) {
    if (mismatched_names.count(name) || !to_load.count(name)) report.initialized.push_back(name);
  }
  if (!report.initialized.empty()) {
    at::Generator generator;
    if (options.seed) generator = at::make_generator<at::CPUGeneratorImpl>(*options.seed);
    init_parameters(model, report.initialized, model.config().initializer_range, generator);
  }
  return report;
}

}  // namespace tlora::models
