// Philox4x32-10 counter-based generator (Salmon et al., SC'11), shared by host and device code.
//
// A counter-based generator is a pure function of (counter, key): element i of any tensor can be
// drawn independently, so the same values come out on every machine, thread count and device.
#pragma once

#include "tlora/export.h"

#include <array>
#include <cstdint>

#if defined(__CUDACC__)
#define TLORA_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define TLORA_HOST_DEVICE inline
#endif

TLORA_API_BEGIN
namespace tlora::philox {

/// Four 32-bit counter words (the input block, and the output block).
using Block = std::array<uint32_t, 4>;
/// Two 32-bit key words.
using Key = std::array<uint32_t, 2>;

inline constexpr uint32_t kMul0 = 0xD2511F53u;
inline constexpr uint32_t kMul1 = 0xCD9E8D57u;
inline constexpr uint32_t kWeyl0 = 0x9E3779B9u;
inline constexpr uint32_t kWeyl1 = 0xBB67AE85u;

/// One Philox4x32 round.
TLORA_HOST_DEVICE constexpr Block round(Block c, Key k) {
  const uint64_t p0 = static_cast<uint64_t>(kMul0) * c[0];
  const uint64_t p1 = static_cast<uint64_t>(kMul1) * c[2];
  return Block{static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
               static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
}

/// Philox4x32 with `Rounds` rounds (10 is the standard, known-answer-tested variant).
template <int Rounds = 10>
TLORA_HOST_DEVICE constexpr Block philox4x32(Block counter, Key key) {
  for (int i = 0; i < Rounds; ++i) {
    if (i > 0) {
      key[0] += kWeyl0;
      key[1] += kWeyl1;
    }
    counter = round(counter, key);
  }
  return counter;
}

/// The block for element group `index` of the stream `stream` under `seed`: the seed is the key,
/// the low counter half is the index and the high half the stream, so streams never overlap.
TLORA_HOST_DEVICE constexpr Block draw(uint64_t seed, uint64_t stream, uint64_t index) {
  return philox4x32<10>(
      Block{static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
            static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32)},
      Key{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
}

/// Keep decision for inverted dropout with drop probability p: an element survives when its
/// 32-bit word is at least this threshold, an integer test that is identical on every device.
TLORA_HOST_DEVICE constexpr uint32_t drop_threshold(double p) {
  return p <= 0.0 ? 0u : static_cast<uint32_t>(p * 4294967296.0);
}

}  // namespace tlora::philox
TLORA_API_END
