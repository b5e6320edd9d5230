// tri_linear on CUDA through the fused kernels (kernels/kernels.h): the autograd function in
// functional.cpp calls these for CUDA tensors with rank ≤ kernels::kMaxFusedRank and keeps its
// ATen chain for everything else. Base GEMMs stay on cuBLAS through ATen.
#pragma once

#include "tlora/core/functional.h"

#include <ATen/core/Tensor.h>

#include <string_view>

namespace tlora::cuda_path {

/// Whether the fused kernels evaluate a call on tensors like `x` with this rank.
bool takes(const at::Tensor& x, int64_t rank);

/// What the forward returns and saves.
struct Forward {
  /// y, N×out.
  at::Tensor y;
  /// u = drop(x)·Aᵀ, N×r in the accumulation dtype (the only saved activation).
  at::Tensor u;
};

/// Forward of tri_linear for x as N×in (bias of `w` may be undefined).
Forward forward(const at::Tensor& x, const TriLinearWeights& w, bool merged,
                const AdapterDropout& dropout, std::string_view name);

/// What the backward computes besides the weight and bias gradients.
struct Backward {
  /// dL/dx, N×in; undefined unless asked for.
  at::Tensor dx;
  /// gᵀu (r×r, accumulation dtype), from which dM = α·gᵀu and dα = Σ gᵀu ⊙ M.
  at::Tensor gtu;
};

/// Backward of tri_linear for G as N×out and the saved u.
Backward backward(const at::Tensor& grad, const at::Tensor& u, const TriLinearWeights& w,
                  bool merged, const AdapterDropout& dropout, bool want_dx, std::string_view name);

/// W0 + α·B·M·A in one pass over W0 (fp32 accumulation, one rounding), as a new tensor.
at::Tensor merged_weight(const TriLinearWeights& w, std::string_view name);

/// W0 += α·B·M·A in place, in one pass over W0.
void add_delta_weight_(at::Tensor& weight, const at::Tensor& up, const at::Tensor& core,
                       const at::Tensor& down, const at::Tensor& scale, std::string_view name);

}  // namespace tlora::cuda_path
