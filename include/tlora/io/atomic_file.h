// Replacing a file so that readers see either the old contents or the new, never a mixture.
#pragma once

#include "tlora/export.h"

#include <filesystem>
#include <functional>
#include <ostream>
#include <string_view>

TLORA_API_BEGIN
namespace tlora {

/// Writes the output of `write` to `path` atomically: into a new temporary file in the same
/// directory, which is flushed, fsync'ed and then renamed over `path` (and the directory
/// fsync'ed). If anything fails, including `write` throwing or leaving the stream failed, the
/// previous file at `path` is untouched, the temporary file is removed and a c10::Error naming
/// `path` and the system's reason (e.g. "No space left on device") is thrown; an exception from
/// `write` itself propagates unchanged. The new file gets the default mode (0666 less the
/// umask). A symbolic link at `path` is replaced by the file, not followed.
void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(std::ostream&)>& write);

/// Writes `bytes` to `path` atomically, as above.
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

/// Creates `dir` and its missing parents (mkdir -p); throws a c10::Error starting with `caller`
/// and naming the folder that could not be created, or `dir` when it exists but is not a folder.
void create_directories(const std::filesystem::path& dir, std::string_view caller);

}  // namespace tlora
TLORA_API_END
