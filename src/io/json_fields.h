// Internal: the fields of a JSON object read with errors that name the source and the field, for
// every JSON file the library reads (model configs, adapter configs, trainer states).
// Header-only, so every component can use it without exporting nlohmann's types.
#pragma once

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace tlora::detail {

/// Reads the fields of one object of `Json` (nlohmann::json or ordered_json). Every message
/// reads "<source>: field '<name>' ...". Required fields are returned; optional ones are read
/// into `out`, which keeps its value when the field is absent.
template <typename Json>
class BasicJsonFields {
 public:
  BasicJsonFields(const Json& object, std::string source) : object_(object), source_(std::move(source)) {}

  template <typename... Args>
  [[noreturn]] void fail(std::string_view field, const Args&... args) const {
    TORCH_CHECK(false, source_, ": field '", field, "' ", args...);
  }

  /// The field, or null when absent.
  const Json* find(const char* key) const {
    const auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }
  bool has(const char* key) const { return find(key) != nullptr; }
  /// The field; refuses its absence.
  const Json& at(const char* key) const {
    const Json* v = find(key);
    if (v == nullptr) fail(key, "is missing");
    return *v;
  }

  std::string required_string(const char* key) const {
    const Json& v = at(key);
    if (!v.is_string()) fail(key, "must be a string, got ", v.dump());
    return v.template get<std::string>();
  }
  int64_t required_integer(const char* key, int64_t min = std::numeric_limits<int64_t>::min()) const {
    const Json& v = at(key);
    const bool fits = v.is_number_integer() &&
                      !(v.is_number_unsigned() && v.template get<uint64_t>() > static_cast<uint64_t>(INT64_MAX));
    if (!fits || v.template get<int64_t>() < min) {
      if (min == std::numeric_limits<int64_t>::min()) fail(key, "must be an integer, got ", v.dump());
      fail(key, "must be an integer >= ", min, ", got ", v.dump());
    }
    return v.template get<int64_t>();
  }
  uint64_t required_unsigned(const char* key) const {
    const Json& v = at(key);
    if (!v.is_number_unsigned()) fail(key, "must be an integer >= 0, got ", v.dump());
    return v.template get<uint64_t>();
  }
  double required_number(const char* key) const {
    const Json& v = at(key);
    if (!v.is_number()) fail(key, "must be a number, got ", v.dump());
    return v.template get<double>();
  }

  void integer(const char* key, int64_t& out) const {
    if (has(key)) out = required_integer(key);
  }
  void number(const char* key, double& out) const {
    if (has(key)) out = required_number(key);
  }
  /// `why_string` explains, after "must be a string", why nothing else is accepted.
  void string(const char* key, std::string& out, const char* why_string = "") const {
    if (const Json* v = find(key)) {
      if (!v->is_string()) fail(key, "must be a string", why_string, ", got ", v->dump());
      out = v->template get<std::string>();
    }
  }
  /// Null counts as absent.
  void boolean(const char* key, bool& out) const {
    if (const Json* v = find(key); v && !v->is_null()) {
      if (!v->is_boolean()) fail(key, "must be a boolean, got ", v->dump());
      out = v->template get<bool>();
    }
  }
  /// Null resets `out`.
  void optional_number(const char* key, std::optional<double>& out) const {
    if (const Json* v = find(key)) {
      if (v->is_null()) {
        out.reset();
        return;
      }
      if (!v->is_number()) fail(key, "must be a number or null, got ", v->dump());
      out = v->template get<double>();
    }
  }
  /// Null resets `out`.
  void optional_integer(const char* key, std::optional<int64_t>& out) const {
    if (const Json* v = find(key)) {
      if (v->is_null()) {
        out.reset();
        return;
      }
      if (!v->is_number_integer()) fail(key, "must be an integer or null, got ", v->dump());
      out = v->template get<int64_t>();
    }
  }
  /// A boolean feature tlora does not implement: absent, null or false.
  void refuse_true(const char* key, const char* what) const {
    bool on = false;
    boolean(key, on);
    TORCH_CHECK(!on, source_, ": ", key, "=true is not supported (", what, ")");
  }

 private:
  const Json& object_;
  std::string source_;
};

/// The fields of a nlohmann::json object.
using JsonFields = BasicJsonFields<nlohmann::json>;

}  // namespace tlora::detail
