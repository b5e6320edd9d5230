#include "kernels.h"

#include <c10/util/Exception.h>

namespace tlora::kernels {

bool built_with_cuda() { return false; }

void philox_dropout_mask_cuda(at::Tensor&, double, uint64_t, uint64_t) {
  TORCH_CHECK(false, "tlora was built without CUDA kernels; reconfigure with a CUDA-enabled "
                     "LibTorch and nvcc available (TLORA_CUDA=AUTO or ON)");
}

}  // namespace tlora::kernels
