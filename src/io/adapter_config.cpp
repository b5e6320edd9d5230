#include "io/adapter_config.h"

#include "adapters/method.h"
#include "io/json.h"
#include "io/json_fields.h"

#include "tlora/io/checkpoint.h"
#include "tlora/version.h"

#include <c10/util/Exception.h>
#include <c10/util/StringUtil.h>
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
constexpr std::array kPositions{DropoutPosition::Output, DropoutPosition::Input};
constexpr std::array kStrategies{Strategy::Auto, Strategy::Factored, Strategy::Merged};

using Fields = BasicJsonFields<json>;

// A value named by `to_string`, one of `values`.
template <typename E, size_t N>
E choice(const Fields& f, const char* field, const std::array<E, N>& values) {
  const std::string name = f.required_string(field);
  for (E v : values) {
    if (to_string(v) == name) return v;
  }
  std::string accepted;
  for (E v : values) accepted += (accepted.empty() ? "" : ", ") + std::string(to_string(v));
  f.fail(field, "is \"", name, "\"; expected one of ", accepted);
}

std::string checksum(const Fields& f, const char* field) {
  const std::string value = f.required_string(field);
  if (value.size() != 16 || !std::ranges::all_of(value, [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); })) {
    f.fail(field, "must be 16 hexadecimal digits, not \"", value, "\"");
  }
  return value;
}

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
  j["train_scale"] = o.train_scale;
  j["dropout"] = o.dropout;
  j["dropout_position"] = to_string(o.dropout_position);
  j["init"] = to_string(o.init);
  j["seed"] = o.seed;
  j["strategy"] = to_string(o.strategy);
  for (const MethodOption& option : method(o.kind).own_options()) j[option.name] = o.*option.member;
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
  const json j = parse_json<json>(text, c10::str("adapter config ", file));
  TORCH_CHECK(j.is_object(), "adapter config ", file, ": not a JSON object but ", j.type_name());
  const Fields f(j, c10::str("adapter config ", file));

  const std::string library = f.required_string("library");
  if (library != "tlora") f.fail("library", "is \"", library, "\", not \"tlora\": not a checkpoint written by save_adapter");
  const int64_t version = f.required_integer("format_version", 1);
  if (version > kAdapterFormatVersion) {
    f.fail("format_version", "is ", version, ": the checkpoint was written by a newer tlora (",
           f.has("library_version") ? f.required_string("library_version") : "unknown version",
           ") in a format this one (", kVersion, ", format ", kAdapterFormatVersion, ") cannot read");
  }

  AdapterConfig c;
  c.library_version = f.required_string("library_version");
  c.adapter_name = f.required_string("adapter_name");
  if (f.has("base_model_name_or_path")) c.base_model = f.required_string("base_model_name_or_path");
  AdapterOptions& o = c.options;
  const std::string kind = f.required_string("kind");
  const std::vector<AdapterKind> kinds = adapter_kinds();
  const auto known = std::ranges::find(kinds, std::string_view(kind), &AdapterKind::name);
  if (known == kinds.end()) {
    std::string accepted;
    for (const AdapterKind k : kinds) accepted += (accepted.empty() ? "" : ", ") + std::string(k.name());
    f.fail("kind", "is \"", kind, "\"; expected one of ", accepted);
  }
  o.kind = *known;
  const Method& kind_method = method(o.kind);
  o.rank = f.required_integer("rank", 1);
  o.scale = f.required_number("scale");
  f.boolean("train_scale", o.train_scale);  // absent in configs written before it existed: trained
  o.dropout = f.required_number("dropout");
  if (!(o.dropout >= 0.0 && o.dropout < 1.0)) f.fail("dropout", "must be in [0, 1), not ", o.dropout);
  o.dropout_position = choice(f, "dropout_position", kPositions);
  o.init = choice(f, "init", kInitSchemes);
  o.seed = f.required_unsigned("seed");
  o.strategy = choice(f, "strategy", kStrategies);
  for (const MethodOption& option : kind_method.own_options()) o.*option.member = f.required_number(option.name);

  const std::string dtype = f.required_string("dtype");
  const auto it = std::ranges::find(kDtypes, dtype, &std::pair<std::string_view, at::ScalarType>::first);
  if (it == kDtypes.end()) f.fail("dtype", "is \"", dtype, "\"; expected float64, float32, float16 or bfloat16");
  c.dtype = it->second;

  const std::string projections = f.required_string("projections");
  if (projections != "stored" && projections != "regenerated") {
    f.fail("projections", "is \"", projections, "\"; expected stored or regenerated");
  }
  c.projections_stored = projections == "stored";
  if (!c.projections_stored) {
    if (!kind_method.regenerable()) {
      f.fail("projections", "is \"regenerated\", but ", o.kind.name(),
             " projections come from the base weights and must be stored");
    }
    c.projection_checksum = checksum(f, "projection_checksum");
  }
  if (f.has("tensors_checksum")) c.tensors_checksum = checksum(f, "tensors_checksum");

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
    const std::string where = c10::str("adapter config ", file, ": modules[\"", path, "\"]");
    TORCH_CHECK(entry.is_object(), where, ": not a JSON object");
    const Fields m(entry, where);
    ModuleEntry e{path, m.required_integer("in_features", 1), m.required_integer("out_features", 1), m.required_integer("rank", 1), m.required_number("scale")};
    if (m.has("base_checksum")) e.base_checksum = checksum(m, "base_checksum");
    if (e.rank > std::min(e.in_features, e.out_features)) {
      m.fail("rank", "is ", e.rank, ", more than min(in_features, out_features) = ",
             std::min(e.in_features, e.out_features));
    }
    if (kind_method.single_rank() && e.rank != o.rank) {
      m.fail("rank", "is ", e.rank, ", but ", o.kind.name(), " layers share tensors of rank ", o.rank);
    }
    c.modules.push_back(std::move(e));
  }
  return c;
}

}  // namespace tlora::detail
