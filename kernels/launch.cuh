// Host-side helpers shared by the kernel launchers: boundary checks, the accumulation dtype,
// the padded-rank dispatch and the grid size.
#pragma once

#include "drop_mask.cuh"
#include "kernels.h"

#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <string_view>
#include <type_traits>

namespace tlora::kernels {

/// float for half, bfloat16 and float; double for double.
inline at::ScalarType accumulate_dtype(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

/// Checks that `t` is a contiguous 2-D CUDA tensor of `dtype` with the given sizes (a negative
/// size is not checked).
inline void check_matrix(const at::Tensor& t, const char* what, at::ScalarType dtype, int64_t rows,
                         int64_t cols, std::string_view layer) {
  TORCH_CHECK(t.defined(), layer, ": ", what, " is undefined");
  TORCH_CHECK(t.is_cuda(), layer, ": ", what, " must be on a CUDA device, got ", t.device());
  TORCH_CHECK(t.dim() == 2 && (rows < 0 || t.size(0) == rows) && (cols < 0 || t.size(1) == cols),
              layer, ": ", what, " must be ", rows < 0 ? std::string("N") : std::to_string(rows),
              "×", cols < 0 ? std::string("C") : std::to_string(cols), ", got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == dtype, layer, ": ", what, " must be ", dtype, ", got ",
              t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), layer, ": ", what, " (", t.sizes(), ") must be contiguous");
}

inline void check_rank(int64_t rank, std::string_view layer) {
  TORCH_CHECK(rank >= 1 && rank <= kMaxFusedRank, layer, ": the fused kernels take ranks 1..",
              kMaxFusedRank, ", got ", rank);
}

inline void check_same_device(const at::Tensor& a, const at::Tensor& b, std::string_view layer) {
  TORCH_CHECK(a.device() == b.device(), layer, ": tensors on ", a.device(), " and ", b.device());
}

inline DropMask drop_mask(const MaskKey& k) { return make_drop_mask(k.p, k.seed, k.stream); }

/// Calls f(std::integral_constant<int, RP>) with the rank padded to 16, 32 or 64.
template <typename F>
void with_padded_rank(int64_t rank, F&& f) {
  if (rank <= 16) {
    f(std::integral_constant<int, 16>{});
  } else if (rank <= 32) {
    f(std::integral_constant<int, 32>{});
  } else {
    f(std::integral_constant<int, 64>{});
  }
}

/// Blocks for a grid-stride kernel: enough to fill the device `blocks_per_sm` deep, never more
/// than there is work. A pure function of the device (whose properties ATen caches, so asking
/// is safe inside a graph capture), so captures and replays agree.
inline int64_t grid_blocks(int64_t work_items, int blocks_per_sm) {
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  return std::max<int64_t>(1, std::min<int64_t>(work_items, sms * blocks_per_sm));
}

}  // namespace tlora::kernels
