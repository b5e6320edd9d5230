// The adapter_config.json reader on arbitrary text; a config it accepts must survive a write
// and a second read unchanged (format(parse(format(c))) == format(c)).
#include "fuzz_check.h"

#include "io/adapter_config.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {
constexpr std::string_view kName = "fuzz/adapter_config.json";
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace detail = tlora::detail;
  namespace fuzz = tlora::fuzz;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string written;
  try {
    written = detail::format_adapter_config(detail::parse_adapter_config(kName, text));
  } catch (const c10::Error& e) {
    fuzz::require_names(e, kName);
    return 0;
  }
  try {
    const std::string rewritten =
        detail::format_adapter_config(detail::parse_adapter_config(kName, written));
    fuzz::require(rewritten == written, "an accepted config changes when written and read back");
  } catch (const c10::Error& e) {
    fuzz::require(false, std::string("an accepted config, written back, is refused: ") +
                             e.what_without_backtrace());
  }
  return 0;
}
