// Reading GGUF files (v2 and v3), the format of llama.cpp and Ollama models: metadata of every
// value type, tensor infos, and the tensors dequantized to float32 or bfloat16. The file is
// memory-mapped, never read whole.
#pragma once

#include "tlora/export.h"

#include "tlora/gguf/quants.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

TLORA_API_BEGIN
namespace tlora::gguf {

/// gguf_type: the type of a metadata value.
enum class ValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

/// The name of a value type ("UINT32"), or "type <n>" for an unknown number.
std::string value_type_name(uint32_t type);

/// A metadata value: a scalar, a string, or an array of values of one type.
class Value {
 public:
  /// An array's element type and items.
  struct Array {
    /// The type of every item.
    ValueType type;
    /// The items.
    std::vector<Value> items;
  };

  /// A value of `type` holding `data` (an integer of any width as int64_t or uint64_t, a float
  /// as double, a bool, a string, or an Array).
  Value(ValueType type, std::variant<uint64_t, int64_t, double, bool, std::string, Array> data)
      : type_(type), data_(std::move(data)) {}

  /// The value's type.
  ValueType type() const { return type_; }
  /// Whether it is an integer of any width and signedness.
  bool is_integer() const;
  /// An integer value as int64_t; throws for other types and for a UINT64 above INT64_MAX.
  int64_t as_int() const;
  /// A FLOAT32 or FLOAT64 value (integers too) as double.
  double as_float() const;
  /// A BOOL.
  bool as_bool() const;
  /// A STRING.
  const std::string& as_string() const;
  /// An ARRAY.
  const Array& as_array() const;

 private:
  ValueType type_;
  std::variant<uint64_t, int64_t, double, bool, std::string, Array> data_;
};

/// One tensor of the file.
struct TensorInfo {
  /// Its name ("blk.0.attn_q.weight").
  std::string name;
  /// Its dimensions in ggml's order: ne[0] is the fastest-varying (a row's length).
  std::vector<int64_t> ne;
  /// Its ggml type number (TensorType for the known ones).
  uint32_t type = 0;
  /// Where its data starts, from the start of the file.
  uint64_t offset = 0;
  /// How many bytes its data takes.
  uint64_t nbytes = 0;

  /// The shape in PyTorch's order (ne reversed): [out, in] for a weight matrix.
  std::vector<int64_t> shape() const;
  /// Number of elements.
  int64_t numel() const;
};

/// A validated, memory-mapped GGUF file. Every refusal is a c10::Error naming the file and the
/// problem: bad magic or version, counts, string or array lengths larger than the file, unknown
/// value or tensor types, dimensions that are not whole blocks or overflow, a misaligned
/// alignment or offset, tensor data outside the file or overlapping another tensor, repeated
/// keys or tensor names. Copies share the mapping; the file must not be truncated while open.
class File {
 public:
  /// Maps and validates the file at `path`.
  static File open(const std::filesystem::path& path);
  /// Validates `bytes`, the contents of a GGUF file, without file I/O (for the fuzzer); `name`
  /// stands for the file in errors.
  static File from_bytes(std::string bytes, const std::filesystem::path& name = "<memory>");

  /// The path the file was opened with.
  const std::filesystem::path& path() const { return path_; }
  /// The format version (2 or 3).
  uint32_t version() const { return version_; }
  /// general.alignment, or 32 when absent.
  uint64_t alignment() const { return alignment_; }
  /// Where the tensor data section starts.
  uint64_t data_offset() const { return data_offset_; }

  /// Every metadata key and value.
  const std::map<std::string, Value, std::less<>>& metadata() const { return metadata_; }
  /// The metadata keys in the order of the file.
  const std::vector<std::string>& keys() const { return keys_; }
  /// The value of `key`, or null.
  const Value* find(std::string_view key) const;
  /// The value of `key`; throws naming the file and the key when it is absent.
  const Value& at(std::string_view key) const;
  /// at(key).as_string(), with the file and key in any error.
  std::string get_string(std::string_view key) const;
  /// at(key).as_int(), with the file and key in any error.
  int64_t get_int(std::string_view key) const;
  /// at(key).as_float(), with the file and key in any error.
  double get_float(std::string_view key) const;
  /// The strings of an ARRAY of STRING, with the file and key in any error.
  std::vector<std::string> get_strings(std::string_view key) const;

  /// Every tensor, in the order of the file's tensor infos.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  /// The tensor named `name`, or null.
  const TensorInfo* find_tensor(std::string_view name) const;
  /// The raw bytes of a tensor of this file.
  const std::byte* tensor_data(const TensorInfo& info) const { return bytes_ + info.offset; }
  /// The tensor named `name` dequantized to a new CPU tensor of shape info.shape() in `dtype`
  /// (float32 or bfloat16); throws when there is no such tensor or its type is not supported.
  at::Tensor load(std::string_view name, at::ScalarType dtype = at::kFloat) const;

 private:
  File() = default;
  static File parse(const std::filesystem::path& path, std::shared_ptr<const void> owner, const std::byte* bytes,
                    uint64_t size);

  std::filesystem::path path_;
  std::shared_ptr<const void> owner_;
  const std::byte* bytes_ = nullptr;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, Value, std::less<>> metadata_;
  std::vector<std::string> keys_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
};

}  // namespace tlora::gguf
TLORA_API_END
