#include "tlora/core/random.h"

#include "tlora/core/philox.h"

#include "kernels.h"

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numbers>
#include <string>
#include <utility>

namespace tlora {
namespace {

// 53 uniform bits from two words: enough that log() never sees 0 and the tails are not cut.
double unit_interval(uint32_t hi, uint32_t lo) {
  const uint64_t bits = ((static_cast<uint64_t>(hi) << 32) | lo) >> 11;
  return static_cast<double>(bits) * 0x1.0p-53;
}

constexpr int64_t kGrain = 1 << 14;

// Fills a double tensor two elements per Philox block: element 2b and 2b+1 come from `pair`
// applied to block b, so a value never depends on the shape or the thread split.
template <typename Pair>
at::Tensor fill_pairs(at::IntArrayRef shape, uint64_t seed, uint64_t stream, at::ScalarType dtype,
                      const Pair& pair) {
  at::Tensor out = at::empty(shape, at::TensorOptions().dtype(at::kDouble));
  double* data = out.data_ptr<double>();
  const int64_t n = out.numel();
  at::parallel_for(0, (n + 1) / 2, kGrain / 2, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const auto [first, second] = pair(philox::draw(seed, stream, static_cast<uint64_t>(b)));
      data[2 * b] = first;
      if (2 * b + 1 < n) data[2 * b + 1] = second;
    }
  });
  return dtype == at::kDouble ? out : out.to(dtype);
}

// Writes the mask of Philox blocks [begin, end), all whole, as the bits of `keep` or of +0 (all
// zero bits in every IEEE format) in a word of the element's width: a select between two
// constants, which vectorises for any dtype.
template <typename Word>
inline void fill_whole_blocks(Word* data, int64_t begin, int64_t end, uint32_t threshold, Word keep,
                              uint64_t seed, uint64_t stream) {
  for (int64_t b = begin; b < end; ++b) {
    const philox::Block w = philox::draw(seed, stream, static_cast<uint64_t>(b));
    for (int j = 0; j < 4; ++j) data[4 * b + j] = w[j] >= threshold ? keep : Word{0};
  }
}

// Drawing the words is most of a dropout's cost, and the library is built for baseline x86-64:
// these loops are also built for AVX2 and AVX-512 machines and picked when the library loads
// (AVX-512 draws a bfloat16 mask 2.3x faster on an AMD EPYC).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TLORA_WIDEST_VECTORS \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TLORA_WIDEST_VECTORS
#endif

TLORA_WIDEST_VECTORS void fill_whole_blocks16(uint16_t* data, int64_t begin, int64_t end,
                                              uint32_t threshold, uint16_t keep, uint64_t seed,
                                              uint64_t stream) {
  fill_whole_blocks(data, begin, end, threshold, keep, seed, stream);
}
TLORA_WIDEST_VECTORS void fill_whole_blocks32(uint32_t* data, int64_t begin, int64_t end,
                                              uint32_t threshold, uint32_t keep, uint64_t seed,
                                              uint64_t stream) {
  fill_whole_blocks(data, begin, end, threshold, keep, seed, stream);
}
TLORA_WIDEST_VECTORS void fill_whole_blocks64(uint64_t* data, int64_t begin, int64_t end,
                                              uint32_t threshold, uint64_t keep, uint64_t seed,
                                              uint64_t stream) {
  fill_whole_blocks(data, begin, end, threshold, keep, seed, stream);
}

// The mask of `mask`'s dtype, whose element is `keep` (that dtype, zero-dimensional) or zero.
template <typename Word>
void fill_mask(at::Tensor& mask, const at::Tensor& keep, uint32_t threshold, uint64_t seed,
               uint64_t stream) {
  Word keep_bits = 0;
  std::memcpy(&keep_bits, keep.data_ptr(), sizeof(Word));
  auto* data = static_cast<Word*>(mask.data_ptr());
  const int64_t n = mask.numel();
  const int64_t full_blocks = n / 4;
  at::parallel_for(0, (n + 3) / 4, kGrain / 4, [&](int64_t begin, int64_t end) {
    const int64_t whole_end = std::min(end, full_blocks);
    if constexpr (sizeof(Word) == 2) {
      fill_whole_blocks16(data, begin, whole_end, threshold, keep_bits, seed, stream);
    } else if constexpr (sizeof(Word) == 4) {
      fill_whole_blocks32(data, begin, whole_end, threshold, keep_bits, seed, stream);
    } else {
      fill_whole_blocks64(data, begin, whole_end, threshold, keep_bits, seed, stream);
    }
    for (int64_t b = std::max(begin, full_blocks); b < end; ++b) {
      const philox::Block w = philox::draw(seed, stream, static_cast<uint64_t>(b));
      for (int64_t j = 0; 4 * b + j < n; ++j) data[4 * b + j] = w[j] >= threshold ? keep_bits : Word{0};
    }
  });
}

}  // namespace

uint64_t fnv1a64(const void* data, size_t size, uint64_t hash) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) hash = (hash ^ bytes[i]) * 0x100000001b3ull;
  return hash;
}

uint64_t stream_id(std::string_view name) { return fnv1a64(name.data(), name.size()); }

uint64_t dropout_stream(std::string_view name, uint64_t call) {
  constexpr std::string_view kInfix = "/dropout/";
  const std::string index = std::to_string(call);
  return fnv1a64(index.data(), index.size(),
                 fnv1a64(kInfix.data(), kInfix.size(), stream_id(name)));
}

at::Tensor philox_normal(at::IntArrayRef shape, double std, uint64_t seed, uint64_t stream,
                         at::ScalarType dtype) {
  TORCH_CHECK(std >= 0.0 && std::isfinite(std), "philox_normal: std must be finite and >= 0, got ",
              std);
  return fill_pairs(shape, seed, stream, dtype, [std](const philox::Block& w) {
    const double radius = std::sqrt(-2.0 * std::log(1.0 - unit_interval(w[0], w[1])));
    const double angle = 2.0 * std::numbers::pi * unit_interval(w[2], w[3]);
    return std::pair(std * radius * std::cos(angle), std * radius * std::sin(angle));
  });
}

at::Tensor philox_uniform(at::IntArrayRef shape, double low, double high, uint64_t seed,
                          uint64_t stream, at::ScalarType dtype) {
  TORCH_CHECK(std::isfinite(low) && std::isfinite(high) && low <= high,
              "philox_uniform: need finite low <= high, got [", low, ", ", high, ")");
  return fill_pairs(shape, seed, stream, dtype, [low, high](const philox::Block& w) {
    return std::pair(low + (high - low) * unit_interval(w[0], w[1]),
                     low + (high - low) * unit_interval(w[2], w[3]));
  });
}

at::Tensor philox_dropout_mask(at::IntArrayRef shape, double p, uint64_t seed, uint64_t stream,
                               const at::TensorOptions& options) {
  TORCH_CHECK(p >= 0.0 && p < 1.0, "philox_dropout_mask: p must be in [0, 1), got ", p);
  const at::ScalarType dtype = c10::typeMetaToScalarType(options.dtype());
  TORCH_CHECK(at::isFloatingType(dtype), "philox_dropout_mask: the mask's dtype must be floating, got ",
              dtype);
  if (options.device().is_cuda()) {
    at::Tensor mask = at::empty(shape, options.dtype(at::kFloat));
    kernels::philox_dropout_mask_cuda(mask, p, seed, stream);
    return mask.to(options.dtype());
  }
  // Drawn straight in the tensor's dtype: a bfloat16 step would otherwise write a float mask and
  // convert it, three passes over memory instead of one. The kept value is 1/(1-p) rounded to
  // float and then to the dtype, so every dtype gets the float mask's values, converted.
  at::Tensor mask = at::empty(shape, at::TensorOptions().dtype(dtype));
  const at::Tensor keep =
      at::full({}, static_cast<float>(1.0 / (1.0 - p)), at::TensorOptions().dtype(at::kFloat)).to(dtype);
  const uint32_t threshold = philox::drop_threshold(p);
  switch (mask.element_size()) {
    case 2: fill_mask<uint16_t>(mask, keep, threshold, seed, stream); break;
    case 4: fill_mask<uint32_t>(mask, keep, threshold, seed, stream); break;
    case 8: fill_mask<uint64_t>(mask, keep, threshold, seed, stream); break;
    default: TORCH_CHECK(false, "philox_dropout_mask: no mask of dtype ", dtype);
  }
  return mask.to(options);
}

}  // namespace tlora
