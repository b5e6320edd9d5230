#include "tlora/analysis/low_rank.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/acos.h>
#include <ATen/ops/asin.h>
#include <ATen/ops/linalg_qr.h>
#include <ATen/ops/linalg_svd.h>
#include <ATen/ops/linalg_svdvals.h>
#include <ATen/ops/log.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros_like.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <limits>

namespace tlora {
at::Tensor FactoredDelta::materialize() const { return up.mm(core).mm(down) * scale; }

FactoredDelta factored_delta(const AdapterImpl& adapter) {
  const DeltaFactors f = adapter.factors();
  const auto to_double = [](const at::Tensor& t) { return t.detach().to(at::kCPU, at::kDouble); };
  return {f.scale.item<double>(), to_double(f.up), to_double(f.core), to_double(f.down)};
}

DeltaSVD delta_svd(const FactoredDelta& delta) {
  const auto [q_up, r_up] = at::linalg_qr(delta.up);              // out×k, k×r
  const auto [q_down, r_down] = at::linalg_qr(delta.down.t());    // in×k, k×r
  const at::Tensor middle = r_up.mm(delta.core).mm(r_down.t()) * delta.scale;
  const auto [u, s, vh] = at::linalg_svd(middle, /*full_matrices=*/false);
  return {q_up.mm(u), s, q_down.mm(vh.t())};
}

double delta_inner(const FactoredDelta& a, const FactoredDelta& b) {
  // tr(Dᵀ_a·U_aᵀ... ) rearranged cyclically: tr(C_aᵀ·(U_aᵀU_b)·C_b·(D_b·D_aᵀ)), all r×r.
  const at::Tensor product = a.core.t().mm(a.up.t().mm(b.up)).mm(b.core).mm(b.down.mm(a.down.t()));
  return a.scale * b.scale * product.trace().item<double>();
}

double dense_inner(const at::Tensor& weight, const FactoredDelta& delta) {
  // tr(Wᵀ·U·C·D) = Σ (Uᵀ·W·Dᵀ) ⊙ C: one pass over W per side, no out×in product.
  const at::Tensor w = weight.detach().to(at::kCPU, at::kDouble);
  return delta.scale * (delta.up.t().mm(w).mm(delta.down.t()) * delta.core).sum().item<double>();
}

double delta_cosine(const FactoredDelta& a, const FactoredDelta& b) {
  const double norms = std::sqrt(delta_inner(a, a) * delta_inner(b, b));
  return norms > 0 ? delta_inner(a, b) / norms : std::numeric_limits<double>::quiet_NaN();
}

double full_weight_cosine(const at::Tensor& base_weight, const FactoredDelta& a, const FactoredDelta& b) {
  const at::Tensor w = base_weight.detach().to(at::kCPU, at::kDouble);
  const double ww = w.square().sum().item<double>(), wa = dense_inner(w, a), wb = dense_inner(w, b);
  const double ab = delta_inner(a, b), aa = delta_inner(a, a), bb = delta_inner(b, b);
  const double norms = std::sqrt((ww + 2 * wa + aa) * (ww + 2 * wb + bb));
  return norms > 0 ? (ww + wa + wb + ab) / norms : std::numeric_limits<double>::quiet_NaN();
}

at::Tensor principal_angles(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(0) == b.size(0), "principal_angles: the bases must be n×k "
              "matrices with the same n, got ", a.sizes(), " and ", b.sizes());
  const at::Tensor qa = a.to(at::kDouble), qb = b.to(at::kDouble);
  const at::Tensor cross = qa.t().mm(qb);
  const at::Tensor cosines = at::linalg_svdvals(cross).clamp(0.0, 1.0);  // descending: angles ascending
  // The part of the narrower basis outside the other space; its singular values are the sines.
  const at::Tensor outside = qa.size(1) >= qb.size(1) ? qb - qa.mm(cross) : qa - qb.mm(cross.t());
  const at::Tensor sines = at::linalg_svdvals(outside).clamp(0.0, 1.0).flip(0).slice(0, 0, cosines.size(0));
  // acos is ill-conditioned near 0, asin near π/2: take each where it is accurate.
  return at::where(cosines.square() >= 0.5, at::asin(sines), at::acos(cosines));
}

double entropy_effective_rank(const at::Tensor& s) {
  const at::Tensor sigma = s.to(at::kDouble);
  const double total = sigma.sum().item<double>();
  if (!(total > 0)) return 0.0;
  const at::Tensor p = sigma / total;
  // 0·log 0 = 0: zero singular values add nothing.
  const at::Tensor terms = at::where(p > 0, p * at::log(p), at::zeros_like(p));
  return std::exp(-terms.sum().item<double>());
}

int64_t numerical_rank(const at::Tensor& s, double relative_tolerance) {
  if (s.numel() == 0) return 0;
  const at::Tensor sigma = s.to(at::kDouble);
  const double largest = sigma.max().item<double>();
  if (!(largest > 0)) return 0;
  return (sigma > relative_tolerance * largest).sum().item<int64_t>();
}

}  // namespace tlora
