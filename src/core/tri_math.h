// Small pieces of the tri-matrix math shared by the ATen path (functional.cpp) and the CUDA
// path (tri_linear_cuda.cpp), so that both scale and round the r×r factors the same way.
#pragma once

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/mm.h>

namespace tlora::detail {

/// dtype of the r×r math: at least fp32, so that bf16/fp16 layers accumulate in fp32.
inline at::ScalarType accumulate_type(at::ScalarType t) {
  return t == at::kHalf || t == at::kBFloat16 ? at::kFloat : t;
}

/// α·M (r×r) in `acc`: α folded into the core, so that no N-sized tensor is scaled.
inline at::Tensor scaled_core(const at::Tensor& core, const at::Tensor& scale, at::ScalarType acc) {
  return core.to(acc) * scale.to(acc).reshape({});
}

/// α·M·A (r×in): the factor that ΔW and W_eff are both built from, in `acc`.
inline at::Tensor scaled_core_down(const at::Tensor& core, const at::Tensor& down,
                                   const at::Tensor& scale, at::ScalarType acc) {
  return scaled_core(core, scale, acc).mm(down.to(acc));
}

}  // namespace tlora::detail
