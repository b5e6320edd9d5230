#include "tlora/core/random.h"

#include "tlora/core/philox.h"

#include "kernels.h"

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
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
  if (options.device().is_cuda()) {
    at::Tensor mask = at::empty(shape, options.dtype(at::kFloat));
    kernels::philox_dropout_mask_cuda(mask, p, seed, stream);
    return mask.to(options.dtype());
  }
  at::Tensor mask = at::empty(shape, at::TensorOptions().dtype(at::kFloat));
  float* data = mask.data_ptr<float>();
  const int64_t n = mask.numel();
  const uint32_t threshold = philox::drop_threshold(p);
  const auto keep = static_cast<float>(1.0 / (1.0 - p));
  const int64_t full_blocks = n / 4;
  at::parallel_for(0, (n + 3) / 4, kGrain / 4, [&](int64_t begin, int64_t end) {
    // Whole blocks without a bounds test per element, which lets the compiler vectorise the
    // loop: a third faster, and the models draw every training dropout mask here.
    const int64_t whole_end = std::min(end, full_blocks);
    for (int64_t b = begin; b < whole_end; ++b) {
      const philox::Block w = philox::draw(seed, stream, static_cast<uint64_t>(b));
      for (int j = 0; j < 4; ++j) data[4 * b + j] = w[j] >= threshold ? keep : 0.f;
    }
    for (int64_t b = std::max(begin, full_blocks); b < end; ++b) {
      const philox::Block w = philox::draw(seed, stream, static_cast<uint64_t>(b));
      for (int64_t j = 0; 4 * b + j < n; ++j) data[4 * b + j] = w[j] >= threshold ? keep : 0.f;
    }
  });
  return mask.to(options);
}

}  // namespace tlora
