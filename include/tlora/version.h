// The library's version. src/CMakeLists.txt refuses to configure when it differs from
// project(VERSION) in the top-level CMakeLists.txt, so the two cannot drift apart.
#pragma once

#include "tlora/export.h"

TLORA_API_BEGIN
namespace tlora {

/// "major.minor.patch" of this library; recorded in the checkpoints it writes.
inline constexpr const char* kVersion = "0.1.0";

}  // namespace tlora
TLORA_API_END
