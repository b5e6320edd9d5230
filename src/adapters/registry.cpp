// The adapter methods the library knows: adding one is a file in methods/ and a line here.
#include "adapters/method.h"

#include <c10/util/Exception.h>

#include <array>
#include <string>

namespace tlora::detail {

const Method& tlora_method();
const Method& lora_method();
const Method& vera_method();
const Method& loraxs_method();

std::span<const Method* const> methods() {
  static const std::array<const Method*, 4> registry{&tlora_method(), &lora_method(), &vera_method(), &loraxs_method()};
  return registry;
}

namespace {

std::string registered_names() {
  std::string out;
  for (const Method* m : methods()) out += (out.empty() ? "" : ", ") + std::string(m->kind().name());
  return out;
}

}  // namespace

const Method& method(AdapterKind kind) {
  for (const Method* m : methods()) {
    if (m->kind() == kind) return *m;
  }
  TORCH_CHECK(false, "unknown adapter kind '", kind.name(), "'; expected one of ", registered_names());
}

}  // namespace tlora::detail

namespace tlora {

std::string_view to_string(AdapterKind kind) { return kind.name(); }

AdapterKind adapter_kind_from_string(std::string_view name) {
  for (const detail::Method* m : detail::methods()) {
    if (m->kind().name() == name) return m->kind();
  }
  TORCH_CHECK(false, "unknown adapter kind '", name, "'; expected one of ", detail::registered_names());
}

std::vector<AdapterKind> adapter_kinds() {
  std::vector<AdapterKind> out;
  for (const detail::Method* m : detail::methods()) out.push_back(m->kind());
  return out;
}

}  // namespace tlora
