// Tensors drawn from the library's Philox4x32-10 generator, keyed by (seed, stream).
#pragma once

#include "tlora/export.h"

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

TLORA_API_BEGIN
namespace tlora {

/// FNV-1a 64 of `size` bytes, continuing from `hash` (the FNV offset basis for a fresh hash), so
/// several pieces can be hashed in sequence.
uint64_t fnv1a64(const void* data, size_t size, uint64_t hash = 0xcbf29ce484222325ull);

/// A 64-bit stream id from a name such as a module path (FNV-1a), so that each adapted module
/// gets its own non-overlapping stream under one seed.
uint64_t stream_id(std::string_view name);

/// The dropout stream of the `call`-th training call of the layer `name`:
/// stream_id(name + "/dropout/" + call), so every call draws a fresh, reproducible mask.
uint64_t dropout_stream(std::string_view name, uint64_t call);

/// A tensor of the given shape filled with N(0, std²) draws. Element i is the (i mod 2)-th
/// Box-Muller output of Philox block i/2 of (seed, stream), computed in double on the CPU and
/// rounded to `dtype`, so the values are bit-identical everywhere for the same arguments.
at::Tensor philox_normal(at::IntArrayRef shape, double std, uint64_t seed, uint64_t stream,
                         at::ScalarType dtype = at::kFloat);

/// A tensor of the given shape filled with U(low, high) draws: element i uses the 53-bit uniform
/// from words 0–1 (i even) or 2–3 (i odd) of Philox block i/2, in double, rounded to `dtype`.
at::Tensor philox_uniform(at::IntArrayRef shape, double low, double high, uint64_t seed,
                          uint64_t stream, at::ScalarType dtype = at::kFloat);

/// An inverted-dropout mask of the given shape: 0 where dropped and 1/(1-p) where kept. Element i
/// uses 32-bit word (i mod 4) of Philox block i/4 of (seed, stream), so a backward pass
/// regenerates exactly the mask its forward used instead of storing it.
at::Tensor philox_dropout_mask(at::IntArrayRef shape, double p, uint64_t seed, uint64_t stream,
                               const at::TensorOptions& options);

}  // namespace tlora
TLORA_API_END
