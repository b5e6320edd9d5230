// ΔW of any adapter kind as a product of thin factors, and what can be computed from the factors
// alone — singular values and vectors, inner products, cosines, principal angles, effective
// ranks — without ever forming the out×in matrix.
#pragma once

#include "tlora/export.h"

#include "tlora/adapters/adapter.h"

#include <ATen/core/Tensor.h>

#include <cstdint>

TLORA_API_BEGIN
namespace tlora {

/// ΔW = scale · up · core · down, in float64 on the CPU. Per kind: TLoRA α·B·M·A (scale α, core
/// M); LoRA (alpha/r)·B·I·A; VeRA 1·(diag(λ_b)·B)·diag(λ_d)·A; LoRA-XS 1·U_r·M·(Σ_r·V_rᵀ).
struct FactoredDelta {
  /// The scalar in front: TLoRA's α, LoRA's alpha/r, 1 for VeRA and LoRA-XS.
  double scale = 1.0;
  /// out×r.
  at::Tensor up;
  /// r×r.
  at::Tensor core;
  /// r×in.
  at::Tensor down;

  /// ΔW as a dense out×in matrix (for tests and small layers only).
  at::Tensor materialize() const;
};

/// The factored ΔW of an adapter, read from its tensors (detached, copied to float64 on the CPU).
FactoredDelta factored_delta(const AdapterImpl& adapter);

/// A thin SVD ΔW = u · diag(s) · vᵀ with k = min(out, in, r) singular values, descending.
struct DeltaSVD {
  /// out×k, orthonormal columns.
  at::Tensor u;
  /// k singular values, descending.
  at::Tensor s;
  /// in×k, orthonormal columns.
  at::Tensor v;
};

/// The SVD of ΔW from the factors: with up = Q_u·R_u and downᵀ = Q_d·R_d (thin QR),
/// ΔW = Q_u·(scale·R_u·core·R_dᵀ)·Q_dᵀ, so only the small middle matrix is decomposed.
DeltaSVD delta_svd(const FactoredDelta& delta);

/// ⟨ΔW_a, ΔW_b⟩_F = tr(ΔW_aᵀ·ΔW_b), as the trace of a product of r×r matrices.
double delta_inner(const FactoredDelta& a, const FactoredDelta& b);

/// ⟨W, ΔW⟩_F for a dense W (out×in) and a factored ΔW, without forming ΔW.
double dense_inner(const at::Tensor& weight, const FactoredDelta& delta);

/// cos(ΔW_a, ΔW_b) = ⟨ΔW_a, ΔW_b⟩_F / (‖ΔW_a‖_F·‖ΔW_b‖_F); NaN when either is zero.
double delta_cosine(const FactoredDelta& a, const FactoredDelta& b);

/// cos(W0 + ΔW_a, W0 + ΔW_b): the full-weight cosine, which the shared W0 pushes towards 1.
double full_weight_cosine(const at::Tensor& base_weight, const FactoredDelta& a, const FactoredDelta& b);

/// The principal angles (radians, ascending, min(k_a, k_b) of them) between the column spaces
/// of `a` (n×k_a) and `b` (n×k_b), both with orthonormal columns. Small angles come from the
/// sines (Björck–Golub / Knyazev–Argentati), so they keep full relative accuracy.
at::Tensor principal_angles(const at::Tensor& a, const at::Tensor& b);

/// Roy & Vetterli's effective rank exp(−Σ p_i·log p_i), p_i = σ_i / Σσ, of singular values
/// `s`; 0 when all are zero.
double entropy_effective_rank(const at::Tensor& s);

/// How many singular values exceed `relative_tolerance`·max(s).
int64_t numerical_rank(const at::Tensor& s, double relative_tolerance);

}  // namespace tlora
TLORA_API_END
