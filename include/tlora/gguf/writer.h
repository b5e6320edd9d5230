// Writing GGUF files (version 3) that llama.cpp and the `gguf` Python package read: metadata in
// the order it was set, then tensors, each aligned as the format requires.
#pragma once

#include "tlora/export.h"

#include "tlora/gguf/file.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

TLORA_API_BEGIN
namespace tlora::gguf {

/// Collects metadata and tensors, then writes them as gguf-py's GGUFWriter lays them out.
class Writer {
 public:
  /// A writer whose tensors are aligned to `alignment` bytes (a power of two; 32 is the default
  /// that readers assume, anything else is recorded as general.alignment).
  explicit Writer(uint64_t alignment = 32);

  /// Adds metadata `key` (refused when already set); the value's data must fit its type.
  void set(const std::string& key, Value value);
  /// Adds a float32, float16 or bfloat16 tensor (stored as F32, F16 or BF16) under `name`; its
  /// shape is PyTorch's, written in ggml's order (reversed). The data is copied now.
  void add_tensor(const std::string& name, const at::Tensor& tensor);

  /// The file's bytes.
  std::string bytes() const;
  /// Writes the file to `path` atomically (write_file_atomically).
  void write(const std::filesystem::path& path) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> ne;
    TensorType type;
    std::string data;
  };
  uint64_t alignment_;
  std::vector<std::pair<std::string, Value>> metadata_;
  std::vector<Tensor> tensors_;
};

}  // namespace tlora::gguf
TLORA_API_END
