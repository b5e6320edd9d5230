// The rank-r update kernel (rank_update.cuh explains the scheme).
#include "launch.cuh"
#include "rank_update.cuh"

#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

namespace tlora::kernels {
namespace {

template <typename T, typename Acc, int RP>
__global__ void __launch_bounds__(UpdateShape::kThreads) rank_update_kernel(const UpdateArgs<T, Acc> a) {
  __shared__ Acc left_tile[UpdateShape::kTileRows][RP];
  const int t = static_cast<int>(threadIdx.x);
  const int64_t c = int64_t(blockIdx.x) * UpdateShape::kThreads + t;
  Acc q[RP];
  load_right<T, Acc, RP>(a, c, q);
  // Every thread of a block runs the same tiles, so the barriers are uniform.
  const int64_t tiles = ceil_div(a.rows, UpdateShape::kTileRows);
  for (int64_t tile = blockIdx.y; tile < tiles; tile += gridDim.y) {
    stage_left<T, Acc, RP>(a, tile, t, left_tile);
    __syncthreads();
    update_column<T, Acc, RP>(a, tile, c, q, left_tile);
    __syncthreads();
  }
}

constexpr int64_t kMaxGridY = 65535;

}  // namespace

void rank_update_cuda(const at::Tensor& dst, const at::Tensor& src, const at::Tensor& left,
                      const at::Tensor& right, const MaskKey& mask, std::string_view layer) {
  TORCH_CHECK(dst.defined() && dst.dim() == 2, layer, ": rank_update_cuda expects dst as N×C");
  const int64_t n = dst.size(0);
  const int64_t c = dst.size(1);
  check_matrix(dst, "update target", dst.scalar_type(), n, c, layer);
  check_matrix(src, "update source", dst.scalar_type(), n, c, layer);
  TORCH_CHECK(left.defined() && left.dim() == 2, layer, ": update factor P must be ", n, "×r");
  const int64_t r = left.size(1);
  check_rank(r, layer);
  const at::ScalarType acc = accumulate_dtype(dst.scalar_type());
  check_matrix(left, "update factor P", acc, n, r, layer);
  check_matrix(right, "update factor Q", acc, c, r, layer);
  for (const at::Tensor* t : {&src, &left, &right}) check_same_device(dst, *t, layer);
  if (n == 0 || c == 0) return;

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dst.scalar_type(), "rank_update_cuda", [&] {
    using Acc = typename Accum<scalar_t>::type;
    UpdateArgs<scalar_t, Acc> a;
    a.dst = dst.data_ptr<scalar_t>();
    a.src = src.data_ptr<scalar_t>();
    a.rows = n;
    a.cols = c;
    a.left = left.data_ptr<Acc>();
    a.right = right.data_ptr<Acc>();
    a.rank = static_cast<int>(r);
    a.mask = drop_mask(mask);
    const dim3 grid(static_cast<unsigned>(ceil_div(c, UpdateShape::kThreads)),
                    static_cast<unsigned>(std::min(ceil_div(n, UpdateShape::kTileRows), kMaxGridY)));
    with_padded_rank(r, [&](auto rp) {
      constexpr int RP = decltype(rp)::value;
      rank_update_kernel<scalar_t, Acc, RP>
          <<<grid, UpdateShape::kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(a);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
}

}  // namespace tlora::kernels
