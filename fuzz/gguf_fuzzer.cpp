// The GGUF reader on arbitrary bytes: File::from_bytes validates them as a file would be;
// whatever it accepts, every tensor must lie inside the input and every supported type must
// dequantize.
#include "fuzz_check.h"

#include "tlora/gguf/file.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace {
constexpr std::string_view kName = "fuzz.gguf";
// Dequantizing a huge tensor proves nothing the first blocks do not; keep each input fast.
constexpr int64_t kMaxElements = 1 << 16;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tlora;
  std::optional<gguf::File> file;
  try {
    file = gguf::File::from_bytes(std::string(reinterpret_cast<const char*>(data), size), std::string(kName));
  } catch (const c10::Error& e) {
    fuzz::require_names(e, kName);
    return 0;
  }
  for (const gguf::TensorInfo& info : file->tensors()) {
    fuzz::require(info.offset >= file->data_offset() && info.offset + info.nbytes <= size,
                  "an accepted tensor lies outside the file");
    const gguf::TypeTraits* traits = gguf::type_traits(info.type);
    fuzz::require(traits != nullptr, "an accepted tensor has an unknown type");
    if (!traits->dequantizable || info.numel() > kMaxElements) continue;
    const at::Tensor t = file->load(info.name);
    fuzz::require(t.numel() == info.numel(), "a loaded tensor has another number of elements");
  }
  return 0;
}
