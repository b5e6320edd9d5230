// GGML's tensor types as GGUF files store them: block sizes, names, and dequantization of the
// common ones (F32, F16, BF16, Q8_0, Q4_0, Q4_1 and the K-quants Q4_K, Q5_K, Q6_K) to float32.
#pragma once

#include "tlora/export.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

TLORA_API_BEGIN
namespace tlora::gguf {

/// ggml_type: the numbers GGUF files use.
enum class TensorType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
  NVFP4 = 40,
  Q1_0 = 41,
};

/// How a type lays out its elements: `block_size` elements in `type_size` bytes.
struct TypeTraits {
  /// ggml's name ("Q4_K").
  std::string_view name;
  /// Elements per block (1 for plain types).
  int64_t block_size;
  /// Bytes per block.
  int64_t type_size;
  /// Whether dequantize supports it.
  bool dequantizable;
};

/// The traits of ggml type number `type`, or null for a number this library does not know.
const TypeTraits* type_traits(uint32_t type);

/// ggml's name of `type` ("Q4_K"), or "type <n>" for an unknown number.
std::string type_name(uint32_t type);

/// Dequantizes `n` elements of `type` (n a multiple of its block size) from `src` into `dst`,
/// with the arithmetic of ggml's reference dequantizers. Throws for types it does not support.
void dequantize(TensorType type, const std::byte* src, float* dst, int64_t n);

}  // namespace tlora::gguf
TLORA_API_END
