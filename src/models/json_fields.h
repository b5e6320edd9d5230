// Internal: reading the fields of a model's config.json with errors that name the file and the
// field, shared by the encoder and decoder configurations.
#pragma once

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace tlora::models::detail {

using nlohmann::json;

/// Reads the optional fields of one config.json, each error naming the source and the field.
class Fields {
 public:
  Fields(const json& object, const std::string& source) : object_(object), source_(source) {}

  const json* find(const char* key) const {
    const auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }
  void integer(const char* key, int64_t& out) const {
    if (const json* v = find(key)) {
      TORCH_CHECK(v->is_number_integer(), source_, ": field '", key, "' must be an integer, got ",
                  v->dump());
      out = v->get<int64_t>();
    }
  }
  void number(const char* key, double& out) const {
    if (const json* v = find(key)) {
      TORCH_CHECK(v->is_number(), source_, ": field '", key, "' must be a number, got ", v->dump());
      out = v->get<double>();
    }
  }
  void optional_number(const char* key, std::optional<double>& out) const {
    if (const json* v = find(key)) {
      if (v->is_null()) {
        out.reset();
        return;
      }
      TORCH_CHECK(v->is_number(), source_, ": field '", key, "' must be a number or null, got ",
                  v->dump());
      out = v->get<double>();
    }
  }
  void optional_integer(const char* key, std::optional<int64_t>& out) const {
    if (const json* v = find(key)) {
      if (v->is_null()) {
        out.reset();
        return;
      }
      TORCH_CHECK(v->is_number_integer(), source_, ": field '", key,
                  "' must be an integer or null, got ", v->dump());
      out = v->get<int64_t>();
    }
  }
  void string(const char* key, std::string& out, const char* why_string = "") const {
    if (const json* v = find(key)) {
      TORCH_CHECK(v->is_string(), source_, ": field '", key, "' must be a string", why_string,
                  ", got ", v->dump());
      out = v->get<std::string>();
    }
  }
  void boolean(const char* key, bool& out) const {
    if (const json* v = find(key); v && !v->is_null()) {
      TORCH_CHECK(v->is_boolean(), source_, ": field '", key, "' must be a boolean, got ", v->dump());
      out = v->get<bool>();
    }
  }
  // A boolean feature tlora does not implement: absent, null or false.
  void refuse_true(const char* key, const char* what) const {
    bool on = false;
    boolean(key, on);
    TORCH_CHECK(!on, source_, ": ", key, "=true is not supported (", what, ")");
  }

 private:
  const json& object_;
  const std::string& source_;
};

}  // namespace tlora::models::detail
