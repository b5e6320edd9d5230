// The row-projection kernel (project_rows.cuh explains the scheme) and its two uses: the forward
// down-projection u = drop(x)·Aᵀ, v = u·(αM)ᵀ, and the backward core pass over G that yields
// gᵀu and du = g·(αM) without writing g.
#include "launch.cuh"
#include "project_rows.cuh"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

namespace tlora::kernels {
namespace {

template <typename Acc>
__device__ __forceinline__ Acc warp_sum(Acc v) {
  // Lane l adds lane l^offset's value: the order the host emulation (tests) reproduces.
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) {
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  }
  return v;
}

template <typename T, typename Acc, int RP>
__global__ void __launch_bounds__(ProjectShape<RP>::kThreads)
    project_rows_kernel(const ProjectArgs<T, Acc> a) {
  using S = ProjectShape<RP>;
  __shared__ Acc proj_tile[S::kBlockRows][RP];
  __shared__ Acc rhs_tile[S::kBlockRows][RP];
  const int t = static_cast<int>(threadIdx.x);
  const int warp = t / kWarpSize;
  const int lane = t % kWarpSize;
  const bool with_part = a.part != nullptr;
  Acc part[S::kPartPerThread];
#pragma unroll
  for (int q = 0; q < S::kPartPerThread; ++q) part[q] = Acc(0);

  // Every thread of a block runs the same iterations, so the barriers below are uniform.
  const int64_t iterations = ceil_div(a.rows, S::kBlockRows);
  for (int64_t it = blockIdx.x; it < iterations; it += gridDim.x) {
    const int64_t row0 = it * S::kBlockRows + warp * S::kRows;
    Acc acc[S::kRows][RP];
    lane_partial<T, Acc, RP>(a, row0, lane, acc);
#pragma unroll
    for (int rr = 0; rr < S::kRows; ++rr) {
#pragma unroll
      for (int j = 0; j < RP; ++j) acc[rr][j] = warp_sum(acc[rr][j]);
    }
    emit_rows<T, Acc, RP>(a, row0, lane, acc);
    if (with_part) {
      stage_rows<T, Acc, RP>(a, row0, warp, lane, acc, proj_tile, rhs_tile);
      __syncthreads();
      accumulate_part<Acc, RP>(proj_tile, rhs_tile, t, part);
      __syncthreads();
    }
  }
  if (with_part) write_part<T, Acc, RP>(a, blockIdx.x, t, part);
}

// Four 8-warp blocks per SM keep enough loads in flight for a streaming pass.
constexpr int kBlocksPerSm = 4;

template <typename T, typename Acc>
int64_t grid_for(const ProjectArgs<T, Acc>& a) {
  int64_t blocks = 0;
  with_padded_rank(a.rank, [&](auto rp) {
    blocks = grid_blocks(ceil_div(a.rows, ProjectShape<decltype(rp)::value>::kBlockRows),
                         kBlocksPerSm);
  });
  return blocks;
}

template <typename T, typename Acc>
void launch(const ProjectArgs<T, Acc>& a, int64_t blocks) {
  with_padded_rank(a.rank, [&](auto rp) {
    constexpr int RP = decltype(rp)::value;
    project_rows_kernel<T, Acc, RP>
        <<<static_cast<unsigned>(blocks), ProjectShape<RP>::kThreads, 0,
           c10::cuda::getCurrentCUDAStream()>>>(a);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace

DownProjection down_project_cuda(const at::Tensor& x, const at::Tensor& down,
                                 const at::Tensor& scaled_core, const MaskKey& mask,
                                 std::string_view layer) {
  TORCH_CHECK(x.defined() && x.dim() == 2, layer, ": down_project_cuda expects x as N×in");
  const int64_t n = x.size(0);
  const int64_t in = x.size(1);
  check_matrix(x, "input x", x.scalar_type(), n, in, layer);
  TORCH_CHECK(down.defined() && down.dim() == 2, layer, ": down (A) must be r×", in);
  const int64_t r = down.size(0);
  check_rank(r, layer);
  check_matrix(down, "down (A)", x.scalar_type(), r, in, layer);
  check_same_device(x, down, layer);
  const at::ScalarType acc = accumulate_dtype(x.scalar_type());
  if (scaled_core.defined()) {
    check_matrix(scaled_core, "scaled core (alpha*M)", acc, r, r, layer);
    check_same_device(x, scaled_core, layer);
  }

  DownProjection result;
  result.u = at::empty({n, r}, x.options().dtype(acc));
  if (scaled_core.defined()) result.v = at::empty({n, r}, x.options().dtype(acc));
  if (n == 0 || in == 0) {
    result.u.zero_();
    if (result.v.defined()) result.v.zero_();
    return result;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "down_project_cuda", [&] {
    using Acc = typename Accum<scalar_t>::type;
    ProjectArgs<scalar_t, Acc> a;
    a.x = x.data_ptr<scalar_t>();
    a.rows = n;
    a.cols = in;
    a.w = down.data_ptr<scalar_t>();
    a.rank = static_cast<int>(r);
    a.mask = drop_mask(mask);
    a.proj = result.u.data_ptr<Acc>();
    if (scaled_core.defined()) {
      a.core = scaled_core.data_ptr<Acc>();
      a.core_out = result.v.data_ptr<Acc>();
    }
    launch(a, grid_for(a));
  });
  return result;
}

CoreGradients core_grad_cuda(const at::Tensor& grad, const at::Tensor& up, const at::Tensor& u,
                             const at::Tensor& scaled_core, const MaskKey& mask,
                             std::string_view layer) {
  TORCH_CHECK(grad.defined() && grad.dim() == 2, layer, ": core_grad_cuda expects G as N×out");
  const int64_t n = grad.size(0);
  const int64_t out = grad.size(1);
  check_matrix(grad, "output gradient G", grad.scalar_type(), n, out, layer);
  TORCH_CHECK(up.defined() && up.dim() == 2, layer, ": up (B) must be ", out, "×r");
  const int64_t r = up.size(1);
  check_rank(r, layer);
  check_matrix(up, "up (B)", grad.scalar_type(), out, r, layer);
  const at::ScalarType acc = accumulate_dtype(grad.scalar_type());
  check_matrix(u, "saved u", acc, n, r, layer);
  check_same_device(grad, up, layer);
  check_same_device(grad, u, layer);
  // The kernel reads W = Bᵀ (r×out) row-major, coalesced; B itself is small (out×r).
  const at::Tensor up_t = up.t().contiguous();
  // du = g·K is the kernel's proj·coreᵀ with core = Kᵀ.
  at::Tensor core_t;
  if (scaled_core.defined()) {
    check_matrix(scaled_core, "scaled core (alpha*M)", acc, r, r, layer);
    check_same_device(grad, scaled_core, layer);
    core_t = scaled_core.t().contiguous();
  }

  CoreGradients result;
  if (scaled_core.defined()) result.du = at::empty({n, r}, grad.options().dtype(acc));
  if (n == 0 || out == 0) {
    result.gtu = at::zeros({r, r}, grad.options().dtype(acc));
    if (result.du.defined()) result.du.zero_();
    return result;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "core_grad_cuda", [&] {
    using Acc = typename Accum<scalar_t>::type;
    ProjectArgs<scalar_t, Acc> a;
    a.x = grad.data_ptr<scalar_t>();
    a.rows = n;
    a.cols = out;
    a.w = up_t.data_ptr<scalar_t>();
    a.rank = static_cast<int>(r);
    a.mask = drop_mask(mask);
    a.rhs = u.data_ptr<Acc>();
    if (scaled_core.defined()) {
      a.core = core_t.data_ptr<Acc>();
      a.core_out = result.du.data_ptr<Acc>();
    }
    const int64_t blocks = grid_for(a);
    at::Tensor part = at::empty({blocks, r, r}, grad.options().dtype(acc));
    a.part = part.data_ptr<Acc>();
    launch(a, blocks);
    result.gtu = part.sum(0);
  });
  return result;
}

}  // namespace tlora::kernels
