// The config.json reader (EncoderConfig::from_json) on arbitrary text; a config it accepts
// must pass validate() and give a usable head width and sequence length.
#include "fuzz_check.h"

#include "tlora/models/config.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace {
constexpr std::string_view kName = "fuzz/config.json";
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using tlora::models::EncoderConfig;
  try {
    const EncoderConfig c =
        EncoderConfig::from_json(std::string(reinterpret_cast<const char*>(data), size),
                                 std::string(kName));
    c.validate();
    c.activation();
    tlora::fuzz::require(c.head_dim() > 0 && c.max_sequence_length() > 0,
                         "an accepted config has no head width or no positions");
  } catch (const c10::Error& e) {
    tlora::fuzz::require_names(e, kName);
  }
  return 0;
}
