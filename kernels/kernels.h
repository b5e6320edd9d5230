// Entry points of the CUDA kernels. Built from *.cu when CUDA is enabled, otherwise from
// no_cuda.cpp, whose versions refuse with a message saying how to get a CUDA build.
//
// The fused entry points take contiguous CUDA tensors of one floating dtype (half, bfloat16,
// float or double); their "accumulation dtype" is float, or double for double inputs. They
// launch on the current stream, allocate only through the caching allocator and never wait for
// the device, so they can be captured in CUDA graphs. `layer` names the caller in errors.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string_view>

namespace tlora::kernels {

/// Whether this build of the library contains the CUDA kernels.
bool built_with_cuda();

/// Largest rank the fused kernels take; the callers use the ATen chain beyond it.
inline constexpr int64_t kMaxFusedRank = 64;

/// The dropout of one fused call, keyed as in tlora::philox_dropout_mask; p = 0 means none.
struct MaskKey {
  double p = 0.0;
  uint64_t seed = 0;
  uint64_t stream = 0;
};

/// Fills the float CUDA tensor `mask` with the inverted-dropout mask of philox_dropout_mask.
void philox_dropout_mask_cuda(at::Tensor& mask, double p, uint64_t seed, uint64_t stream);

/// Result of down_project_cuda.
struct DownProjection {
  /// u = drop(x)·Aᵀ, N×r.
  at::Tensor u;
  /// v = u·Kᵀ, N×r; undefined when no K was given.
  at::Tensor v;
};

/// One pass over x (N×in): u = drop(x)·Aᵀ for A = `down` (r×in, x's dtype) with the mask on x,
/// and v = u·Kᵀ when `scaled_core` K (r×r, accumulation dtype) is defined. Both outputs are in
/// the accumulation dtype.
DownProjection down_project_cuda(const at::Tensor& x, const at::Tensor& down,
                                 const at::Tensor& scaled_core, const MaskKey& mask,
                                 std::string_view layer);

/// Result of core_grad_cuda.
struct CoreGradients {
  /// gᵀu, r×r.
  at::Tensor gtu;
  /// du = g·K, N×r; undefined when no K was given.
  at::Tensor du;
};

/// One pass over G (N×out): g = drop(G)·B for B = `up` (out×r, G's dtype) is formed in
/// registers and never written; returns gᵀu against `u` (N×r) and, when `scaled_core` K (r×r)
/// is defined, du = g·K. u, K and the results are in the accumulation dtype. gᵀu is summed in a
/// fixed order, so it is the same on every run and replay.
CoreGradients core_grad_cuda(const at::Tensor& grad, const at::Tensor& up, const at::Tensor& u,
                             const at::Tensor& scaled_core, const MaskKey& mask,
                             std::string_view layer);

/// dst = src + drop(P·Qᵀ) in one pass: P = `left` (N×r) and Q = `right` (C×r) in the
/// accumulation dtype, src and dst N×C of one dtype, the mask on the N×C update. dst may be src.
void rank_update_cuda(const at::Tensor& dst, const at::Tensor& src, const at::Tensor& left,
                      const at::Tensor& right, const MaskKey& mask, std::string_view layer);

}  // namespace tlora::kernels
