// The safetensors reader on arbitrary bytes: File::from_bytes validates them as a file would
// be; whatever it accepts, every tensor must then copy out at exactly its declared size.
#include "fuzz_check.h"

#include "tlora/io/safetensors.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace {
constexpr std::string_view kName = "fuzz.safetensors";
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tlora;
  std::optional<safetensors::File> file;
  try {
    file = safetensors::File::from_bytes(std::string(reinterpret_cast<const char*>(data), size),
                                         std::string(kName));
  } catch (const c10::Error& e) {
    fuzz::require_names(e, kName);
    return 0;
  }
  for (const safetensors::TensorInfo& info : file->tensors()) {
    try {
      const at::Tensor t = file->get(info.name);
      fuzz::require(t.nbytes() == info.end - info.begin, "a tensor's bytes differ from its offsets");
      fuzz::require(t.scalar_type() == info.dtype, "a tensor's dtype differs from its entry");
    } catch (const c10::Error& e) {
      fuzz::require_names(e, kName);  // BOOL bytes other than 0 and 1
    }
  }
  return 0;
}
