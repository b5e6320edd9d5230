// The CUDA kernels' index math, run on the CPU: the kernels' own host/device pieces
// (kernels/*.cuh) driven lane by lane and thread by thread in the order the device runs them,
// against fp64 references built with ATen. This covers tails (rows and columns that are not
// multiples of the tiles), every padded rank, grid-stride loops and the on-the-fly dropout
// mask without a GPU; tests/cuda_*_test.cpp run the real kernels.
#include "project_rows.cuh"
#include "rank_update.cuh"

#include "tlora/core/random.h"
#include "tolerance.h"

#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using namespace tlora::kernels;

// One lane's accumulators.
template <typename Acc, int Rows, int RP>
struct Lane {
  Acc acc[Rows][RP];
};

// The device's warp_sum: lane l adds lane l^offset's value, offsets 16, 8, 4, 2, 1.
template <typename Acc, int Rows, int RP>
void butterfly(std::vector<Lane<Acc, Rows, RP>>& lanes) {
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) {
    const auto before = lanes;
    for (int l = 0; l < kWarpSize; ++l) {
      for (int rr = 0; rr < Rows; ++rr) {
        for (int j = 0; j < RP; ++j) {
          lanes[l].acc[rr][j] = before[l].acc[rr][j] + before[l ^ offset].acc[rr][j];
        }
      }
    }
  }
}

// project_rows_kernel on `grid` blocks, barrier by barrier.
template <typename T, typename Acc, int RP>
void emulate_project(const ProjectArgs<T, Acc>& a, int64_t grid) {
  using S = ProjectShape<RP>;
  struct Part {
    Acc v[S::kPartPerThread] = {};
  };
  const int64_t iterations = ceil_div(a.rows, S::kBlockRows);
  for (int64_t block = 0; block < grid; ++block) {
    std::vector<Part> part(S::kThreads);
    Acc proj_tile[S::kBlockRows][RP];
    Acc rhs_tile[S::kBlockRows][RP];
    for (int64_t it = block; it < iterations; it += grid) {
      for (int warp = 0; warp < S::kWarps; ++warp) {
        const int64_t row0 = it * S::kBlockRows + warp * S::kRows;
        std::vector<Lane<Acc, S::kRows, RP>> lanes(kWarpSize);
        for (int l = 0; l < kWarpSize; ++l) lane_partial<T, Acc, RP>(a, row0, l, lanes[l].acc);
        butterfly(lanes);
        for (int l = 0; l < kWarpSize; ++l) {
          emit_rows<T, Acc, RP>(a, row0, l, lanes[l].acc);
          if (a.part) stage_rows<T, Acc, RP>(a, row0, warp, l, lanes[l].acc, proj_tile, rhs_tile);
        }
      }
      if (a.part) {
        for (int t = 0; t < S::kThreads; ++t) accumulate_part<Acc, RP>(proj_tile, rhs_tile, t, part[t].v);
      }
    }
    if (a.part) {
      for (int t = 0; t < S::kThreads; ++t) write_part<T, Acc, RP>(a, block, t, part[t].v);
    }
  }
}

// rank_update_kernel on a grid of ceil(C/threads) × grid_y blocks.
template <typename T, typename Acc, int RP>
void emulate_update(const UpdateArgs<T, Acc>& a, int64_t grid_y) {
  using S = UpdateShape;
  const int64_t tiles = ceil_div(a.rows, S::kTileRows);
  for (int64_t bx = 0; bx < ceil_div(a.cols, S::kThreads); ++bx) {
    for (int64_t by = 0; by < grid_y; ++by) {
      struct Column {
        Acc q[RP];
      };
      std::vector<Column> columns(S::kThreads);
      for (int t = 0; t < S::kThreads; ++t) load_right<T, Acc, RP>(a, bx * S::kThreads + t, columns[t].q);
      Acc left_tile[S::kTileRows][RP];
      for (int64_t tile = by; tile < tiles; tile += grid_y) {
        for (int t = 0; t < S::kThreads; ++t) stage_left<T, Acc, RP>(a, tile, t, left_tile);
        for (int t = 0; t < S::kThreads; ++t) {
          update_column<T, Acc, RP>(a, tile, bx * S::kThreads + t, columns[t].q, left_tile);
        }
      }
    }
  }
}

template <typename F>
void with_rp(int64_t rank, F&& f) {
  if (rank <= 16) {
    f(std::integral_constant<int, 16>{});
  } else if (rank <= 32) {
    f(std::integral_constant<int, 32>{});
  } else {
    f(std::integral_constant<int, 64>{});
  }
}

template <typename T>
at::ScalarType dtype_of() {
  return std::is_same_v<T, float> ? at::kFloat : at::kBFloat16;
}

// Max |got - want| relative to max |want|.
// Each entry of a float32-accumulated result within the rounding bound (tolerance.h) of its
// float64 reference: `depth` chained sums of at most `terms` terms, relative to the entry's
// sum of magnitudes (the same products on |operands|).
::testing::AssertionResult within_rounding(const at::Tensor& got, const at::Tensor& want,
                                           const at::Tensor& magnitude, int64_t terms, int depth) {
  const at::Tensor excess = (got.to(at::kDouble) - want).abs() -
                            tlora::testing::rounding_tolerance(at::kFloat, 1.0, terms, depth) * magnitude;
  const double worst = excess.max().item<double>();
  if (worst <= 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "an entry exceeds its rounding bound by " << worst;
}

struct Shape {
  int64_t rows, cols, rank, grid;
};

// N=1, odd in/out, r=1 and 64, ranks on both sides of every padding, one block or fewer blocks
// than row groups (the grid-stride path).
const std::vector<Shape> kShapes = {{1, 33, 1, 1},   {37, 47, 8, 2},  {64, 33, 16, 1},
                                    {70, 96, 17, 3}, {129, 40, 32, 2}, {45, 65, 33, 4},
                                    {19, 130, 64, 1}, {200, 31, 64, 5}};

constexpr uint64_t kSeed = 77, kStream = 5150;

template <typename T>
void check_down_projection(const Shape& s, double p) {
  SCOPED_TRACE("N=" + std::to_string(s.rows) + " K=" + std::to_string(s.cols) +
               " r=" + std::to_string(s.rank) + " p=" + std::to_string(p));
  at::manual_seed(s.rows * 131 + s.rank);
  const at::Tensor x = at::randn({s.rows, s.cols}).to(dtype_of<T>());
  const at::Tensor down = at::randn({s.rank, s.cols}).to(dtype_of<T>());
  const at::Tensor core = at::randn({s.rank, s.rank});
  at::Tensor u = at::full({s.rows, s.rank}, -7.f);
  at::Tensor v = at::full({s.rows, s.rank}, -7.f);

  ProjectArgs<T, float> a;
  a.x = x.data_ptr<T>();
  a.rows = s.rows;
  a.cols = s.cols;
  a.w = down.data_ptr<T>();
  a.rank = static_cast<int>(s.rank);
  a.mask = make_drop_mask(p, kSeed, kStream);
  a.proj = u.data_ptr<float>();
  a.core = core.data_ptr<float>();
  a.core_out = v.data_ptr<float>();
  with_rp(s.rank, [&](auto rp) { emulate_project<T, float, decltype(rp)::value>(a, s.grid); });

  const at::Tensor mask =
      tlora::philox_dropout_mask({s.rows, s.cols}, p, kSeed, kStream, at::TensorOptions(at::kDouble));
  const at::Tensor x_masked = x.to(at::kDouble) * mask;
  const at::Tensor u_ref = x_masked.mm(down.to(at::kDouble).t());
  const at::Tensor v_ref = u_ref.mm(core.to(at::kDouble).t());
  const at::Tensor u_size = x_masked.abs().mm(down.to(at::kDouble).abs().t());
  EXPECT_TRUE(within_rounding(u, u_ref, u_size, s.cols, 1));
  EXPECT_TRUE(within_rounding(v, v_ref, u_size.mm(core.to(at::kDouble).abs().t()), s.cols, 2));
}

template <typename T>
void check_core_gradients(const Shape& s, double p) {
  SCOPED_TRACE("N=" + std::to_string(s.rows) + " out=" + std::to_string(s.cols) +
               " r=" + std::to_string(s.rank) + " p=" + std::to_string(p));
  at::manual_seed(s.rows * 7 + s.rank);
  const at::Tensor grad = at::randn({s.rows, s.cols}).to(dtype_of<T>());
  const at::Tensor up = at::randn({s.cols, s.rank}).to(dtype_of<T>());
  const at::Tensor up_t = up.t().contiguous();  // the kernel reads W = Bᵀ
  const at::Tensor u = at::randn({s.rows, s.rank});
  const at::Tensor core = at::randn({s.rank, s.rank});
  const at::Tensor core_t = core.t().contiguous();  // du = g·K is proj·(Kᵀ)ᵀ
  at::Tensor du = at::full({s.rows, s.rank}, -7.f);
  at::Tensor part = at::full({s.grid, s.rank, s.rank}, -7.f);

  ProjectArgs<T, float> a;
  a.x = grad.data_ptr<T>();
  a.rows = s.rows;
  a.cols = s.cols;
  a.w = up_t.data_ptr<T>();
  a.rank = static_cast<int>(s.rank);
  a.mask = make_drop_mask(p, kSeed, kStream);
  a.core = core_t.data_ptr<float>();
  a.core_out = du.data_ptr<float>();
  a.rhs = u.data_ptr<float>();
  a.part = part.data_ptr<float>();
  with_rp(s.rank, [&](auto rp) { emulate_project<T, float, decltype(rp)::value>(a, s.grid); });

  const at::Tensor mask =
      tlora::philox_dropout_mask({s.rows, s.cols}, p, kSeed, kStream, at::TensorOptions(at::kDouble));
  const at::Tensor grad_masked = grad.to(at::kDouble) * mask;
  const at::Tensor g = grad_masked.mm(up.to(at::kDouble));
  const at::Tensor g_size = grad_masked.abs().mm(up.to(at::kDouble).abs());
  const at::Tensor u_abs = u.to(at::kDouble).abs();
  EXPECT_TRUE(within_rounding(part.sum(0), g.t().mm(u.to(at::kDouble)), g_size.t().mm(u_abs),
                              std::max(s.cols, s.rows), 2));
  EXPECT_TRUE(within_rounding(du, g.mm(core.to(at::kDouble)), g_size.mm(core.to(at::kDouble).abs()),
                              s.cols, 2));
}

template <typename T>
void check_rank_update(const Shape& s, double p, bool in_place) {
  SCOPED_TRACE("N=" + std::to_string(s.rows) + " C=" + std::to_string(s.cols) +
               " r=" + std::to_string(s.rank) + " p=" + std::to_string(p) +
               (in_place ? " in place" : ""));
  at::manual_seed(s.rows * 3 + s.rank);
  const at::Tensor src = at::randn({s.rows, s.cols}).to(dtype_of<T>());
  const at::Tensor src_copy = src.clone();
  const at::Tensor left = at::randn({s.rows, s.rank});
  const at::Tensor right = at::randn({s.cols, s.rank});
  at::Tensor dst = in_place ? src : at::zeros_like(src);

  UpdateArgs<T, float> a;
  a.dst = dst.data_ptr<T>();
  a.src = src.data_ptr<T>();
  a.rows = s.rows;
  a.cols = s.cols;
  a.left = left.data_ptr<float>();
  a.right = right.data_ptr<float>();
  a.rank = static_cast<int>(s.rank);
  a.mask = make_drop_mask(p, kSeed, kStream);
  with_rp(s.rank, [&](auto rp) { emulate_update<T, float, decltype(rp)::value>(a, s.grid); });

  const at::Tensor mask =
      tlora::philox_dropout_mask({s.rows, s.cols}, p, kSeed, kStream, at::TensorOptions(at::kDouble));
  const at::Tensor want =
      src_copy.to(at::kDouble) + mask * left.to(at::kDouble).mm(right.to(at::kDouble).t());
  // A float32 sum of r + 1 terms, then one rounding to T (half an ulp of T, relative).
  const at::Tensor size = src_copy.to(at::kDouble).abs() +
                          mask * left.to(at::kDouble).abs().mm(right.to(at::kDouble).abs().t());
  const at::Tensor bound = tlora::testing::rounding_tolerance(at::kFloat, 1.0, s.rank + 1) * size +
                           tlora::testing::unit_roundoff(dtype_of<T>()) * want.abs();
  EXPECT_LE(((dst.to(at::kDouble) - want).abs() - bound).max().item<double>(), 0);
  if (!in_place) EXPECT_TRUE(at::equal(src, src_copy)) << "the source was written";
}

TEST(KernelEmulation, MaskAtIsPhiloxDropoutMask) {
  for (const double p : {0.0, 0.1, 0.5, 0.9}) {
    const at::Tensor mask =
        tlora::philox_dropout_mask({1001}, p, kSeed, kStream, at::TensorOptions(at::kFloat));
    const DropMask m = make_drop_mask(p, kSeed, kStream);
    for (int64_t i = 0; i < mask.numel(); ++i) {
      ASSERT_EQ(mask_at(m, i), mask[i].item<float>()) << "p=" << p << " element " << i;
    }
  }
}

TEST(KernelEmulation, DownProjectionFp32) {
  for (const Shape& s : kShapes) {
    check_down_projection<float>(s, 0.0);
    check_down_projection<float>(s, 0.3);
  }
}

TEST(KernelEmulation, DownProjectionBf16) {
  for (const Shape& s : kShapes) check_down_projection<c10::BFloat16>(s, 0.3);
}

TEST(KernelEmulation, CoreGradientsFp32) {
  for (const Shape& s : kShapes) {
    check_core_gradients<float>(s, 0.0);
    check_core_gradients<float>(s, 0.5);
  }
}

TEST(KernelEmulation, CoreGradientsBf16) {
  for (const Shape& s : kShapes) check_core_gradients<c10::BFloat16>(s, 0.5);
}

TEST(KernelEmulation, RankUpdateFp32) {
  for (const Shape& s : kShapes) {
    check_rank_update<float>(s, 0.0, false);
    check_rank_update<float>(s, 0.2, true);
  }
}

TEST(KernelEmulation, RankUpdateBf16) {
  for (const Shape& s : kShapes) check_rank_update<c10::BFloat16>(s, 0.2, true);
}

// More columns than one block's threads and more row tiles than the grid's y extent.
TEST(KernelEmulation, RankUpdateSeveralColumnBlocks) {
  check_rank_update<float>({70, 600, 5, 2}, 0.4, false);
}

}  // namespace
