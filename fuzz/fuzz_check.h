// What every fuzz target checks besides "no crash, no sanitizer report": a refusal is a
// c10::Error that names its input, and a property that fails is a crash libFuzzer keeps.
#pragma once

#include <c10/util/Exception.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace tlora::fuzz {

/// Aborts, printing `what`, unless `condition` holds (assert() would vanish under NDEBUG).
inline void require(bool condition, std::string_view what) {
  if (condition) return;
  std::fprintf(stderr, "fuzz property violated: %.*s\n", static_cast<int>(what.size()),
               what.data());
  std::abort();
}

/// Aborts unless the refusal `error` names `source` (the file a user would have to fix).
inline void require_names(const c10::Error& error, std::string_view source) {
  const std::string_view message = error.what_without_backtrace();
  if (message.find(source) != std::string_view::npos) return;
  std::fprintf(stderr, "refusal does not name \"%.*s\": %.*s\n", static_cast<int>(source.size()),
               source.data(), static_cast<int>(message.size()), message.data());
  std::abort();
}

}  // namespace tlora::fuzz
