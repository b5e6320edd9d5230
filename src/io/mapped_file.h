// Internal: a whole file mapped read-only, shared by the file-format readers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace tlora::detail {

/// The bytes of a file, mapped for as long as any copy of `owner` lives.
struct MappedFile {
  /// Keeps the mapping alive (null for an empty file, which cannot be mapped).
  std::shared_ptr<const void> owner;
  /// The first byte (null for an empty file).
  const std::byte* bytes = nullptr;
  /// The file's length.
  uint64_t size = 0;
};

/// Maps the regular file `path` read-only. Errors are c10::Errors that start with `kind` and the
/// path ("GGUF file \"m.gguf\": cannot open: No such file or directory").
MappedFile map_file(const std::filesystem::path& path, std::string_view kind);

/// Bytes already in memory, owned the same way, so that the readers parse both alike.
MappedFile own_bytes(std::string bytes);

}  // namespace tlora::detail
