// Reading and writing the safetensors format (https://github.com/huggingface/safetensors): an
// 8-byte little-endian header length, a JSON header, then the raw little-endian tensor data.
#pragma once

#include "tlora/export.h"

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

TLORA_API_BEGIN
namespace tlora::safetensors {

/// One tensor's entry in a file's header.
struct TensorInfo {
  /// The key in the header.
  std::string name;
  /// The element type.
  at::ScalarType dtype;
  /// The sizes; empty for a 0-dim tensor.
  std::vector<int64_t> shape;
  /// Start of the tensor's bytes, relative to the start of the data section.
  uint64_t begin;
  /// One past the end of the tensor's bytes, relative to the start of the data section.
  uint64_t end;
};

/// The supported dtypes and their names in the format: F64, F32, F16, BF16, I64, I32, I16, I8,
/// U8 and BOOL. Returns the format's name of `dtype`, or an empty view if it is not supported.
std::string_view dtype_name(at::ScalarType dtype);

/// A safetensors file, memory-mapped and validated when opened: the header length, the JSON
/// (which must be an object without duplicate keys), every entry's dtype, shape and offsets, and
/// that the tensors tile the data section exactly, without overlaps, gaps or trailing bytes
/// (as the reference implementation requires). Unknown fields inside an entry are ignored, as
/// the reference implementation does. Every refusal is a c10::Error naming the file and the
/// problem. Copies share the mapping. The file must not be truncated while it is open (writers
/// that use write_file_atomically replace it instead, which is safe).
class File {
 public:
  /// Maps and validates the file at `path`.
  static File open(const std::filesystem::path& path);
  /// Validates `bytes`, the contents of a safetensors file, without any file I/O (for data that
  /// arrived another way, and for fuzzing the reader); `name` stands for the file in errors and
  /// is what path() returns. The File keeps `bytes`.
  static File from_bytes(std::string bytes, const std::filesystem::path& name = "<memory>");

  /// The path the file was opened with.
  const std::filesystem::path& path() const { return path_; }
  /// All tensors, in the order of their data in the file.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  /// The entry named `name`, or nullptr if there is none.
  const TensorInfo* find(std::string_view name) const;
  /// A new CPU tensor holding a copy of the data of `name` (so it outlives the File); throws if
  /// there is no such tensor, or if a BOOL tensor holds a byte other than 0 or 1.
  at::Tensor get(std::string_view name) const;
  /// The header's "__metadata__" object (empty if absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  File() = default;
  // Validates the `size` bytes at `bytes` (kept alive by `owner`) as the file `path`.
  static File parse(const std::filesystem::path& path, std::shared_ptr<const void> owner,
                    const std::byte* bytes, uint64_t size);

  std::filesystem::path path_;
  std::shared_ptr<const void> mapping_;
  const std::byte* data_ = nullptr;  // start of the data section inside the mapping
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

/// Every tensor of the file at `path`, as owned CPU tensors keyed by name.
std::map<std::string, at::Tensor> load(const std::filesystem::path& path);

/// Writes `tensors` and `metadata` to `path` with write_file_atomically, byte for byte as the
/// reference implementation does: compact JSON with "__metadata__" first, tensors ordered by
/// descending dtype alignment and then by name (their data in the same order), the header padded
/// with spaces to a multiple of 8 bytes. Empty `metadata` writes no "__metadata__". Metadata
/// keys are written sorted (the reference writes them in hash order, so files with more than one
/// key match it only up to that order). Tensors may live on any device and be non-contiguous:
/// their contiguous CPU copies are written. Refuses unsupported dtypes, non-strided tensors and
/// the key "__metadata__", naming the key.
void save(const std::filesystem::path& path, const std::map<std::string, at::Tensor>& tensors,
          const std::map<std::string, std::string>& metadata = {});

}  // namespace tlora::safetensors
TLORA_API_END
