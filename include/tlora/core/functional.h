// The tri-matrix linear map y = x·W0ᵀ + b + α·((x·Aᵀ)·Mᵀ)·Bᵀ as a differentiable function.
#pragma once

#include "tlora/export.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string_view>

TLORA_API_BEGIN
namespace tlora {

/// How the adapter is evaluated; every strategy computes the same function and gradients.
enum class Strategy {
  /// Pick factored or merged per call with `choose_strategy`.
  Auto,
  /// Base GEMM plus a skinny down-projection and a rank-r update of y (and of dx in backward).
  Factored,
  /// W_eff = W0 + α·B·M·A built once per call, then one GEMM for y and one for dx.
  /// Exact only without dropout, so it refuses an active dropout.
  Merged,
};

/// Where adapter dropout applies: on the adapter's output (the paper's choice) or its input.
enum class DropoutPosition { Output, Input };

/// Dropout of one call. The mask is a function of (seed, stream), regenerated in backward.
struct AdapterDropout {
  /// Drop probability in [0, 1); 0 disables dropout.
  double p = 0.0;
  /// Adapter output (N×out) or adapter input (N×in).
  DropoutPosition position = DropoutPosition::Output;
  /// Philox key of the mask.
  uint64_t seed = 0;
  /// Philox stream of the mask; use a fresh stream per call.
  uint64_t stream = 0;
};

/// The strategy `Auto` resolves to for a call with `tokens` rows. Merged saves the rank-r passes
/// over y and dx once tokens·(in+out) ≥ 2·in·out (it then pays one rank-r update of W0 instead);
/// factored is chosen whenever dropout is active, because merged cannot apply a mask.
Strategy choose_strategy(int64_t tokens, int64_t in_features, int64_t out_features, int64_t rank,
                         bool dropout_active);

/// Lower-case name of a strategy ("auto", "factored", "merged").
std::string_view to_string(Strategy strategy);
/// Lower-case name of a dropout position ("output", "input").
std::string_view to_string(DropoutPosition position);

/// Tensors of one adapted linear layer, in nn.Linear layout.
struct TriLinearWeights {
  /// W0, out×in (frozen unless it requires grad).
  at::Tensor weight;
  /// b, out, or undefined for no bias.
  at::Tensor bias;
  /// A, r×in, fixed.
  at::Tensor down;
  /// B, out×r, fixed.
  at::Tensor up;
  /// M, r×r, trainable.
  at::Tensor core;
  /// α, one element, trainable.
  at::Tensor scale;
};

/// y = x·W0ᵀ + b + α·drop(((drop(x)·Aᵀ)·Mᵀ)·Bᵀ) for x of shape [..., in], with a custom backward
/// that keeps only u = x·Aᵀ (N×r) of the adapter path, never a dropout mask, and x only when W0
/// or A trains. Gradients flow to x, M, α, and to W0, b, A and B when they require grad (LoRA is
/// this map with M = I, α = alpha/r and A, B trained). Half-precision inputs accumulate the r×r
/// math in fp32. `name` labels the layer in error messages.
at::Tensor tri_linear(const at::Tensor& x, const TriLinearWeights& w, Strategy strategy,
                      const AdapterDropout& dropout = {}, std::string_view name = "tri_linear");

/// The same map written as a chain of LibTorch ops and differentiated by autograd. It is the
/// reference the custom backward and the kernels are tested against.
at::Tensor tri_linear_composed(const at::Tensor& x, const TriLinearWeights& w,
                               const AdapterDropout& dropout = {});

/// ΔW = α·B·M·A (out×in) in the dtype of `up`, accumulated in at least fp32.
at::Tensor tri_delta_weight(const at::Tensor& up, const at::Tensor& core, const at::Tensor& down,
                            const at::Tensor& scale);

/// W0 += α·B·M·A in place (what merge() does). On CUDA with rank ≤ 64 this is one fused pass
/// over W0 that accumulates in fp32 and rounds once; elsewhere it adds tri_delta_weight.
/// `name` labels the layer in error messages.
void tri_add_delta_weight_(at::Tensor& weight, const at::Tensor& up, const at::Tensor& core,
                           const at::Tensor& down, const at::Tensor& scale,
                           std::string_view name = "tri_add_delta_weight_");

}  // namespace tlora
TLORA_API_END
