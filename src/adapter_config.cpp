#include "adapter_config.h"

#include "tlora/checkpoint.h"
#include "tlora/version.h"

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <utility>

namespace tlora::detail {
namespace {

namespace fs = std::filesystem;
// ordered_json keeps the fields and the modules in the order written, which is module order.
using json = nlohmann::ordered_json;

constexpr std::array<std::pair<std::string_view, at::ScalarType>, 4> kDtypes{{
    {"float64", at::kDouble},
    {"float32", at::kFloat},
    {"float16", at::kHalf},
    {"bfloat16", at::kBFloat16},
}};
constexpr std::array kKinds{AdapterKind::TLoRA, AdapterKind::LoRA, AdapterKind::VeRA, AdapterKind::LoRAXS};
constexpr std::array kPositions{DropoutPosition::Output, DropoutPosition::Input};
constexpr std::array kSchemes{InitScheme::Paper, InitScheme::Unit};
constexpr std::array kStrategies{Strategy::Auto, Strategy::Factored, Strategy::Merged};

// Reads the fields of one JSON object; `where` prefixes the field name in messages (e.g. the
// module an entry describes).
class Fields {
 public:
  Fields(const fs::path& file, const json& object, std::string where)
      : file_(file), object_(object), where_(std::move(where)) {}

  template <typename... Args>
  [[noreturn]] void fail(std::string_view field, const Args&... args) const {
    TORCH_CHECK(false, "adapter config ", file_, ": ", where_, "field \"", field, "\" ", args...);
  }

  bool has(const char* field) const { return object_.contains(field); }

  const json& at(const char* field) const {
    const auto it = object_.find(field);
    if (it == object_.end()) fail(field, "is missing");
    return *it;
  }

  std::string string(const char* field) const {
    const json& value = at(field);
    if (!value.is_string()) fail(field, "must be a string, not ", value.dump());
    return value.get<std::string>();
  }

  int64_t integer(const char* field, int64_t min) const {
    const json& value = at(field);
    if (!value.is_number_integer() || (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) ||
        value.get<int64_t>() < min) {
      fail(field, "must be an integer >= ", min, ", not ", value.dump());
    }
    return value.get<int64_t>();
  }

  uint64_t unsigned_integer(const char* field) const {
    const json& value = at(field);
    if (!value.is_number_unsigned()) fail(field, "must be an integer >= 0, not ", value.dump());
    return value.get<uint64_t>();
  }

  double number(const char* field) const {
    const json& value = at(field);
    if (!value.is_number()) fail(field, "must be a number, not ", value.dump());
    return value.get<double>();
  }

  // A value named by `to_string`, one of `values`.
  template <typename E, size_t N>
  E choice(const char* field, const std::array<E, N>& values) const {
    const std::string name = string(field);
    for (E v : values) {
      if (to_string(v) == name) return v;
    }
    std::string accepted;
    for (E v : values) accepted += (accepted.empty() ? "" : ", ") + std::string(to_string(v));
    fail(field, "is \"", name, "\"; expected one of ", accepted);
  }

  std::string checksum(const char* field) const {
    const std::string value = string(field);
    if (value.size() != 16 || !std::ranges::all_of(value, [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); })) {
      fail(field, "must be 16 hexadecimal digits, not \"", value, "\"");
    }
    return value;
  }

 private:
  const fs::path& file_;
  const json& object_;
  std::string where_;
};

}  // namespace

std::string_view config_dtype_name(at::ScalarType dtype) {
  const auto it = std::ranges::find(kDtypes, dtype, &std::pair<std::string_view, at::ScalarType>::second);
  return it == kDtypes.end() ? std::string_view() : it->first;
}

std::string format_adapter_config(const AdapterConfig& c) {
  const AdapterOptions& o = c.options;
  json j;
  j["format_version"] = kAdapterFormatVersion;
  j["library"] = "tlora";
  j["library_version"] = kVersion;
  j["adapter_name"] = c.adapter_name;
  if (!c.base_model.empty()) j["base_model_name_or_path"] = c.base_model;
  j["kind"] = to_string(o.kind);
  j["rank"] = o.rank;
  j["scale"] = o.scale;
  j["dropout"] = o.dropout;
  j["dropout_position"] = to_string(o.dropout_position);
  j["init"] = to_string(o.init);
  j["seed"] = o.seed;
  j["strategy"] = to_string(o.strategy);
  j["vera_d_initial"] = o.vera_d_initial;
  j["dtype"] = config_dtype_name(c.dtype);
  j["projections"] = c.projections_stored ? "stored" : "regenerated";
  if (!c.projections_stored) j["projection_checksum"] = c.projection_checksum;
  // Absent rather than empty: a config read without one (written before it existed) stays readable.
  if (!c.tensors_checksum.empty()) j["tensors_checksum"] = c.tensors_checksum;
  j["modules_to_save"] = c.modules_to_save;
  json modules = json::object();
  for (const ModuleEntry& m : c.modules) {
    modules[m.path] = {{"in_features", m.in_features},
                       {"out_features", m.out_features},
                       {"rank", m.rank},
                       {"scale", m.scale}};
    if (!m.base_checksum.empty()) modules[m.path]["base_checksum"] = m.base_checksum;
  }
  j["modules"] = std::move(modules);
  return j.dump(2) + "\n";
}

AdapterConfig parse_adapter_config(const fs::path& file, std::string_view text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number past double
    TORCH_CHECK(false, "adapter config ", file, ": not valid JSON: ", e.what());
  }
  TORCH_CHECK(j.is_object(), "adapter config ", file, ": not a JSON object but ", j.type_name());
  const Fields f(file, j, "");

  const std::string library = f.string("library");
  if (library != "tlora") f.fail("library", "is \"", library, "\", not \"tlora\": not a checkpoint written by save_adapter");
  const int64_t version = f.integer("format_version", 1);
  if (version > kAdapterFormatVersion) {
    f.fail("format_version", "is ", version, ": the checkpoint was written by a newer tlora (",
           f.has("library_version") ? f.string("library_version") : "unknown version",
           ") in a format this one (", kVersion, ", format ", kAdapterFormatVersion, ") cannot read");
  }

  AdapterConfig c;
  c.library_version = f.string("library_version");
  c.adapter_name = f.string("adapter_name");
  if (f.has("base_model_name_or_path")) c.base_model = f.string("base_model_name_or_path");
  AdapterOptions& o = c.options;
  o.kind = f.choice("kind", kKinds);
  o.rank = f.integer("rank", 1);
  o.scale = f.number("scale");
  o.dropout = f.number("dropout");
  if (!(o.dropout >= 0.0 && o.dropout < 1.0)) f.fail("dropout", "must be in [0, 1), not ", o.dropout);
  o.dropout_position = f.choice("dropout_position", kPositions);
  o.init = f.choice("init", kSchemes);
  o.seed = f.unsigned_integer("seed");
  o.strategy = f.choice("strategy", kStrategies);
  o.vera_d_initial = f.number("vera_d_initial");

  const std::string dtype = f.string("dtype");
  const auto it = std::ranges::find(kDtypes, dtype, &std::pair<std::string_view, at::ScalarType>::first);
  if (it == kDtypes.end()) f.fail("dtype", "is \"", dtype, "\"; expected float64, float32, float16 or bfloat16");
  c.dtype = it->second;

  const std::string projections = f.string("projections");
  if (projections != "stored" && projections != "regenerated") {
    f.fail("projections", "is \"", projections, "\"; expected stored or regenerated");
  }
  c.projections_stored = projections == "stored";
  if (!c.projections_stored) {
    if (o.kind == AdapterKind::LoRAXS) {
      f.fail("projections", "is \"regenerated\", but LoRA-XS projections come from an SVD and must be stored");
    }
    c.projection_checksum = f.checksum("projection_checksum");
  }
  if (f.has("tensors_checksum")) c.tensors_checksum = f.checksum("tensors_checksum");

  const json& saved = f.at("modules_to_save");
  if (!saved.is_array()) f.fail("modules_to_save", "must be an array of module paths, not ", saved.dump());
  for (const json& path : saved) {
    if (!path.is_string()) f.fail("modules_to_save", "must be an array of module paths, not ", saved.dump());
    c.modules_to_save.push_back(path.get<std::string>());
  }

  const json& modules = f.at("modules");
  if (!modules.is_object() || modules.empty()) {
    f.fail("modules", "must be a non-empty object of module paths, not ", modules.dump());
  }
  for (const auto& [path, entry] : modules.items()) {
    const std::string where = "modules[\"" + path + "\"]: ";
    if (!entry.is_object()) TORCH_CHECK(false, "adapter config ", file, ": ", where, "not a JSON object");
    const Fields m(file, entry, where);
    ModuleEntry e{path, m.integer("in_features", 1), m.integer("out_features", 1), m.integer("rank", 1), m.number("scale")};
    if (m.has("base_checksum")) e.base_checksum = m.checksum("base_checksum");
    if (e.rank > std::min(e.in_features, e.out_features)) {
      m.fail("rank", "is ", e.rank, ", more than min(in_features, out_features) = ",
             std::min(e.in_features, e.out_features));
    }
    if (o.kind == AdapterKind::VeRA && e.rank != o.rank) {
      m.fail("rank", "is ", e.rank, ", but VeRA layers share one pair of projections of rank ", o.rank);
    }
    c.modules.push_back(std::move(e));
  }
  return c;
}

}  // namespace tlora::detail
