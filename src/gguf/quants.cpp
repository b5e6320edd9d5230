#include "tlora/gguf/quants.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>

#include <array>
#include <cstring>

namespace tlora::gguf {
namespace {

// GGUF is little-endian, as the hosts this library builds for are.
float half(const std::byte* p) {
  uint16_t bits;
  std::memcpy(&bits, p, 2);
  return c10::detail::fp16_ieee_to_fp32_value(bits);
}

// ggml's table (ggml.c type_traits), which gguf-py's GGML_QUANT_SIZES repeats.
struct Entry {
  uint32_t type;
  TypeTraits traits;
};
constexpr std::array<Entry, 34> kTypes{{
    {0, {"F32", 1, 4, true}},         {1, {"F16", 1, 2, true}},        {2, {"Q4_0", 32, 18, true}},
    {3, {"Q4_1", 32, 20, true}},      {6, {"Q5_0", 32, 22, false}},    {7, {"Q5_1", 32, 24, false}},
    {8, {"Q8_0", 32, 34, true}},      {9, {"Q8_1", 32, 40, false}},    {10, {"Q2_K", 256, 84, false}},
    {11, {"Q3_K", 256, 110, false}},  {12, {"Q4_K", 256, 144, true}},  {13, {"Q5_K", 256, 176, true}},
    {14, {"Q6_K", 256, 210, true}},   {15, {"Q8_K", 256, 292, false}}, {16, {"IQ2_XXS", 256, 66, false}},
    {17, {"IQ2_XS", 256, 74, false}}, {18, {"IQ3_XXS", 256, 98, false}}, {19, {"IQ1_S", 256, 50, false}},
    {20, {"IQ4_NL", 32, 18, false}},  {21, {"IQ3_S", 256, 110, false}}, {22, {"IQ2_S", 256, 82, false}},
    {23, {"IQ4_XS", 256, 136, false}}, {24, {"I8", 1, 1, false}},      {25, {"I16", 1, 2, false}},
    {26, {"I32", 1, 4, false}},       {27, {"I64", 1, 8, false}},      {28, {"F64", 1, 8, false}},
    {29, {"IQ1_M", 256, 56, false}},  {30, {"BF16", 1, 2, true}},      {34, {"TQ1_0", 256, 54, false}},
    {35, {"TQ2_0", 256, 66, false}},  {39, {"MXFP4", 32, 17, false}},  {40, {"NVFP4", 64, 36, false}},
    {41, {"Q1_0", 128, 18, false}},
}};

// One block each, as ggml-quants.c dequantize_row_* computes it (the same operations in the
// same order, so the results are the reference's bit for bit).

void block_q4_0(const std::byte* b, float* y) {
  const float d = half(b);
  const auto* qs = reinterpret_cast<const uint8_t*>(b + 2);
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

void block_q4_1(const std::byte* b, float* y) {
  const float d = half(b), m = half(b + 2);
  const auto* qs = reinterpret_cast<const uint8_t*>(b + 4);
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(qs[j] & 0x0F) * d + m;
    y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}

void block_q8_0(const std::byte* b, float* y) {
  const float d = half(b);
  const auto* qs = reinterpret_cast<const int8_t*>(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(qs[j]) * d;
}

// The 6-bit scale and min of sub-block j from the 12 packed bytes of a Q4_K/Q5_K block.
void scale_min_k4(int j, const uint8_t* q, uint8_t& scale, uint8_t& min) {
  if (j < 4) {
    scale = q[j] & 63;
    min = q[j + 4] & 63;
  } else {
    scale = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void block_q4_k(const std::byte* b, float* y) {
  const float d = half(b), dmin = half(b + 2);
  const auto* scales = reinterpret_cast<const uint8_t*>(b + 4);
  const auto* q = reinterpret_cast<const uint8_t*>(b + 16);
  for (int j = 0, is = 0; j < 256; j += 64, is += 2, q += 32) {
    uint8_t sc, m;
    scale_min_k4(is, scales, sc, m);
    const float d1 = d * sc, m1 = dmin * m;
    scale_min_k4(is + 1, scales, sc, m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
  }
}

void block_q5_k(const std::byte* b, float* y) {
  const float d = half(b), dmin = half(b + 2);
  const auto* scales = reinterpret_cast<const uint8_t*>(b + 4);
  const auto* qh = reinterpret_cast<const uint8_t*>(b + 16);
  const auto* ql = reinterpret_cast<const uint8_t*>(b + 48);
  uint8_t u1 = 1, u2 = 2;
  for (int j = 0, is = 0; j < 256; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
    uint8_t sc, m;
    scale_min_k4(is, scales, sc, m);
    const float d1 = d * sc, m1 = dmin * m;
    scale_min_k4(is + 1, scales, sc, m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
  }
}

void block_q6_k(const std::byte* b, float* y) {
  const auto* ql = reinterpret_cast<const uint8_t*>(b);
  const auto* qh = reinterpret_cast<const uint8_t*>(b + 128);
  const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = half(b + 208);
  for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
      y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
      y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
      y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
    }
  }
}

void block_f32(const std::byte* b, float* y) { std::memcpy(y, b, 4); }
void block_f16(const std::byte* b, float* y) { *y = half(b); }
void block_bf16(const std::byte* b, float* y) {
  uint16_t bits;
  std::memcpy(&bits, b, 2);
  *y = c10::detail::f32_from_bits(bits);
}

using BlockFn = void (*)(const std::byte*, float*);

BlockFn block_function(TensorType type) {
  switch (type) {
    case TensorType::F32: return block_f32;
    case TensorType::F16: return block_f16;
    case TensorType::BF16: return block_bf16;
    case TensorType::Q4_0: return block_q4_0;
    case TensorType::Q4_1: return block_q4_1;
    case TensorType::Q8_0: return block_q8_0;
    case TensorType::Q4_K: return block_q4_k;
    case TensorType::Q5_K: return block_q5_k;
    case TensorType::Q6_K: return block_q6_k;
    default: return nullptr;
  }
}

}  // namespace

const TypeTraits* type_traits(uint32_t type) {
  for (const Entry& e : kTypes) {
    if (e.type == type) return &e.traits;
  }
  return nullptr;
}

std::string type_name(uint32_t type) {
  const TypeTraits* t = type_traits(type);
  return t ? std::string(t->name) : "type " + std::to_string(type);
}

void dequantize(TensorType type, const std::byte* src, float* dst, int64_t n) {
  const TypeTraits* traits = type_traits(static_cast<uint32_t>(type));
  const BlockFn block = block_function(type);
  TORCH_CHECK(traits && block, "gguf: dequantizing ", type_name(static_cast<uint32_t>(type)),
              " is not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K and Q6_K are)");
  TORCH_CHECK(n % traits->block_size == 0, "gguf: ", n, " elements of ", traits->name,
              " are not a whole number of its ", traits->block_size, "-element blocks");
  const int64_t blocks = n / traits->block_size;
  at::parallel_for(0, blocks, 4096 / traits->block_size + 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) block(src + i * traits->type_size, dst + i * traits->block_size);
  });
}

}  // namespace tlora::gguf
