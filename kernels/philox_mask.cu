// Dropout masks on the GPU from the same Philox stream as the CPU path (tlora/philox.h), so a
// CUDA forward, a CUDA backward and the CPU reference all see one mask for one seed.
#include "kernels.h"

#include "tlora/core/philox.h"

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>

namespace tlora::kernels {
namespace {

__global__ void dropout_mask_kernel(float* mask, int64_t n, uint32_t threshold, float keep,
                                    uint64_t seed, uint64_t stream) {
  const int64_t blocks = (n + 3) / 4;
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < blocks;
       b += int64_t(gridDim.x) * blockDim.x) {
    const philox::Block w = philox::draw(seed, stream, static_cast<uint64_t>(b));
    for (int j = 0; j < 4 && 4 * b + j < n; ++j) mask[4 * b + j] = w[j] >= threshold ? keep : 0.f;
  }
}

}  // namespace

bool built_with_cuda() { return true; }

void philox_dropout_mask_cuda(at::Tensor& mask, double p, uint64_t seed, uint64_t stream) {
  TORCH_CHECK(mask.is_cuda() && mask.scalar_type() == at::kFloat && mask.is_contiguous(),
              "philox_dropout_mask_cuda: expects a contiguous float CUDA tensor");
  const int64_t n = mask.numel();
  if (n == 0) return;
  constexpr int kThreads = 256;
  const int64_t blocks = std::min<int64_t>((n + 4 * kThreads - 1) / (4 * kThreads), 65535);
  dropout_mask_kernel<<<blocks, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      mask.data_ptr<float>(), n, philox::drop_threshold(p), static_cast<float>(1.0 / (1.0 - p)),
      seed, stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace tlora::kernels
