#include "core/tri_linear_cuda.h"

#include "kernels.h"
#include "core/tri_math.h"

#include <ATen/ops/addmm.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/mm.h>
#include <c10/util/Exception.h>

namespace tlora::cuda_path {
namespace {

using detail::accumulate_type;

kernels::MaskKey mask_key(const AdapterDropout& d, DropoutPosition where) {
  if (d.p <= 0.0 || d.position != where) return {};
  return kernels::MaskKey{d.p, d.seed, d.stream};
}

// dst = src + B·(α·M·A): P = B (out×r) and Q = (α·M·A)ᵀ (in×r), both small, in fp32.
void merge_into(const at::Tensor& dst, const at::Tensor& src, const at::Tensor& up,
                const at::Tensor& core, const at::Tensor& down, const at::Tensor& scale,
                std::string_view name) {
  const at::ScalarType acc = accumulate_type(src.scalar_type());
  kernels::rank_update_cuda(dst, src, up.to(acc).contiguous(),
                            detail::scaled_core_down(core, down, scale, acc).t().contiguous(), {},
                            name);
}

}  // namespace

bool takes(const at::Tensor& x, int64_t rank) {
  return x.is_cuda() && kernels::built_with_cuda() && rank <= kernels::kMaxFusedRank;
}

Forward forward(const at::Tensor& x, const TriLinearWeights& w, bool merged,
                const AdapterDropout& dropout, std::string_view name) {
  const at::Tensor xc = x.contiguous();
  const at::Tensor down = w.down.contiguous();
  const at::ScalarType acc = accumulate_type(x.scalar_type());
  const auto base = [&](const at::Tensor& weight) {
    return w.bias.defined() ? at::addmm(w.bias, xc, weight.t()) : xc.mm(weight.t());
  };
  Forward f;
  if (merged) {  // no dropout here: tri_linear refuses merged with an active dropout
    f.u = kernels::down_project_cuda(xc, down, {}, {}, name).u;
    f.y = base(merged_weight(w, name));
    return f;
  }
  kernels::DownProjection p = kernels::down_project_cuda(
      xc, down, detail::scaled_core(w.core, w.scale, acc).contiguous(),
      mask_key(dropout, DropoutPosition::Input), name);
  f.u = std::move(p.u);
  f.y = base(w.weight);
  const kernels::MaskKey out_mask = mask_key(dropout, DropoutPosition::Output);
  if (out_mask.p > 0) {
    // y += mask ⊙ (v·Bᵀ) in one pass over y, the mask drawn on the fly.
    kernels::rank_update_cuda(f.y, f.y, p.v, w.up.to(acc).contiguous(), out_mask, name);
  } else {
    // Without a mask cuBLAS's rank-r addmm is the same single pass over y.
    f.y.addmm_(p.v.to(x.scalar_type()), w.up.t());
  }
  return f;
}

Backward backward(const at::Tensor& grad, const at::Tensor& u, const TriLinearWeights& w,
                  bool merged, const AdapterDropout& dropout, bool want_dx,
                  std::string_view name) {
  const at::Tensor gc = grad.contiguous();
  const at::ScalarType acc = u.scalar_type();
  const int64_t out = w.weight.size(0);
  // As on the ATen path: merged rebuilds W_eff for dx unless N ≤ out, where the rank-r update of
  // dx is the smaller pass.
  const bool dx_from_merged = merged && gc.size(0) > out;
  const bool want_du = want_dx && !dx_from_merged;
  const at::Tensor scaled = detail::scaled_core(w.core, w.scale, acc).contiguous();
  kernels::CoreGradients c =
      kernels::core_grad_cuda(gc, w.up.contiguous(), u.contiguous(), want_du ? scaled : at::Tensor(),
                              mask_key(dropout, DropoutPosition::Output), name);
  Backward b;
  b.gtu = std::move(c.gtu);
  if (!want_dx) return b;
  if (dx_from_merged) {
    b.dx = gc.mm(merged_weight(w, name));
    return b;
  }
  b.dx = gc.mm(w.weight);
  const kernels::MaskKey in_mask = mask_key(dropout, DropoutPosition::Input);
  if (in_mask.p > 0) {
    kernels::rank_update_cuda(b.dx, b.dx, c.du, w.down.to(acc).t().contiguous(), in_mask, name);
  } else {
    b.dx.addmm_(c.du.to(b.dx.scalar_type()), w.down);
  }
  return b;
}

at::Tensor merged_weight(const TriLinearWeights& w, std::string_view name) {
  const at::Tensor w0 = w.weight.contiguous();
  at::Tensor w_eff = at::empty_like(w0, at::MemoryFormat::Contiguous);
  merge_into(w_eff, w0, w.up, w.core, w.down, w.scale, name);
  return w_eff;
}

void add_delta_weight_(at::Tensor& weight, const at::Tensor& up, const at::Tensor& core,
                       const at::Tensor& down, const at::Tensor& scale, std::string_view name) {
  TORCH_CHECK(weight.is_contiguous(), name, ": merging needs a contiguous weight, got strides ",
              weight.strides());
  merge_into(weight, weight, up, core, down, scale, name);
  // The kernel writes through a raw pointer; autograd must still see an in-place change.
  weight.unsafeGetTensorImpl()->bump_version();
}

}  // namespace tlora::cuda_path
