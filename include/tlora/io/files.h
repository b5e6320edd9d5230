// Reading a whole file with an error that says which file, for what, and why not.
#pragma once

#include "tlora/export.h"

#include <filesystem>
#include <string>
#include <string_view>

TLORA_API_BEGIN
namespace tlora {

/// The bytes of the regular file `path`. Throws a c10::Error starting with `what` (the caller, or
/// what the file is for) that names the path and the system's reason: "<what>: cannot open
/// <path>: <reason>", "<what>: <path> is not a regular file" or "<what>: cannot read <path>".
std::string read_file(const std::filesystem::path& path, std::string_view what);

}  // namespace tlora
TLORA_API_END
