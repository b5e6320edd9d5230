// The dropout mask element by element, for kernels that apply it on the fly instead of reading
// a stored mask. Element `flat` of a row-major tensor gets the same keep decision and value as
// tlora::philox_dropout_mask (32-bit word flat mod 4 of Philox block flat/4), so a fused kernel,
// the mask kernel and the CPU path agree for one (seed, stream).
#pragma once

#include "tlora/core/philox.h"

#include <cstdint>

namespace tlora::kernels {

/// The mask of one call in the form the kernels take it; inactive means p = 0 (all ones).
struct DropMask {
  uint64_t seed = 0;
  uint64_t stream = 0;
  uint32_t threshold = 0;
  float keep = 1.f;
  bool active = false;
};

/// The kernels' form of the inverted-dropout mask with drop probability p in [0, 1).
inline DropMask make_drop_mask(double p, uint64_t seed, uint64_t stream) {
  return DropMask{seed, stream, philox::drop_threshold(p), static_cast<float>(1.0 / (1.0 - p)),
                  p > 0.0};
}

/// Mask value (0 or 1/(1-p)) of element `flat`; 1 when the mask is inactive.
TLORA_HOST_DEVICE float mask_at(const DropMask& m, int64_t flat) {
  if (!m.active) return 1.f;
  const philox::Block w = philox::draw(m.seed, m.stream, static_cast<uint64_t>(flat) >> 2);
  return w[flat & 3] >= m.threshold ? m.keep : 0.f;
}

}  // namespace tlora::kernels
