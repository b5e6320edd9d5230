#include "kernels.h"

#include <c10/util/Exception.h>

namespace tlora::kernels {
namespace {

[[noreturn]] void refuse(std::string_view what) {
  TORCH_CHECK(false, what, ": tlora was built without CUDA kernels; reconfigure with a "
                     "CUDA-enabled LibTorch and nvcc available (TLORA_CUDA=AUTO or ON)");
}

}  // namespace

bool built_with_cuda() { return false; }

void philox_dropout_mask_cuda(at::Tensor&, double, uint64_t, uint64_t) {
  refuse("philox_dropout_mask_cuda");
}

DownProjection down_project_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                 const MaskKey&, std::string_view layer) {
  refuse(layer);
}

CoreGradients core_grad_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                             const at::Tensor&, const MaskKey&, std::string_view layer) {
  refuse(layer);
}

void rank_update_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                      const MaskKey&, std::string_view layer) {
  refuse(layer);
}

}  // namespace tlora::kernels
