// The per-lane and per-thread arithmetic of the row-projection kernel (project_rows.cu), written
// as host/device functions so that a CPU test can run the same index math lane by lane.
//
// The kernel streams the rows of X (N×K) once. Each warp owns kRows consecutive rows; lane l
// reads columns k ≡ l (mod 32) of them (coalesced), multiplies by the dropout mask on the fly
// and accumulates proj[row][j] = Σ_k X[row][k]·W(j,k) for all j < r in registers, fp32 (fp64
// for fp64 inputs). A butterfly over the 32 lanes then leaves every lane with the full sums, so
// a row's r×r follow-up (v = u·Kᵀ, or du = g·K) needs no further exchange. With a right-hand
// side R (N×r) the block also accumulates projᵀ·R (r×r) over its rows in shared memory, one
// partial per block, summed afterwards in a fixed order: deterministic, without writing proj.
// W (r×K) is read row-major like X, so the backward passes Bᵀ rather than B.
//
// All multiply-adds are explicit fma so that the host run rounds exactly as the device does.
#pragma once

#include "drop_mask.cuh"

#include <cmath>
#include <cstdint>

namespace tlora::kernels {

/// fp32 math for half, bfloat16 and float inputs; fp64 for double.
template <typename T>
struct Accum {
  using type = float;
};
template <>
struct Accum<double> {
  using type = double;
};

TLORA_HOST_DEVICE float mul_add(float a, float b, float c) { return fmaf(a, b, c); }
TLORA_HOST_DEVICE double mul_add(double a, double b, double c) { return fma(a, b, c); }

TLORA_HOST_DEVICE int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline constexpr int kWarpSize = 32;

/// Launch geometry for a rank padded to RP (16, 32 or 64).
template <int RP>
struct ProjectShape {
  static_assert(RP == 16 || RP == 32 || RP == 64, "padded rank must be 16, 32 or 64");
  /// Rows per warp: every lane keeps 64 accumulators whatever the rank.
  static constexpr int kRows = 64 / RP;
  static constexpr int kWarps = 8;
  static constexpr int kThreads = kWarps * kWarpSize;
  static constexpr int kBlockRows = kWarps * kRows;
  /// Entries of the r×r block partial that each thread owns.
  static constexpr int kPartPerThread = RP * RP / kThreads;
  static_assert(RP * RP % kThreads == 0);
};

/// Arguments of one row projection; the optional outputs are null when not wanted.
template <typename T, typename Acc>
struct ProjectArgs {
  const T* x = nullptr;  // N×K, row-major
  int64_t rows = 0;      // N
  int64_t cols = 0;      // K
  const T* w = nullptr;  // W, r×K, row-major: lanes read it coalesced, like X
  int rank = 0;
  DropMask mask;                 // applied to X, element (n,k) at flat index n*K + k
  Acc* proj = nullptr;           // N×r: proj = (mask⊙X)·Wᵀ
  const Acc* core = nullptr;     // r×r: core_out = proj·coreᵀ
  Acc* core_out = nullptr;       // N×r
  const Acc* rhs = nullptr;      // N×r: part = projᵀ·rhs over each block's rows
  Acc* part = nullptr;           // grid×r×r
};

/// Lane `lane`'s share of proj for the kRows rows from row0: columns k ≡ lane (mod 32).
template <typename T, typename Acc, int RP>
TLORA_HOST_DEVICE void lane_partial(const ProjectArgs<T, Acc>& a, int64_t row0, int lane,
                                    Acc (&acc)[ProjectShape<RP>::kRows][RP]) {
  constexpr int kRows = ProjectShape<RP>::kRows;
#pragma unroll
  for (int rr = 0; rr < kRows; ++rr) {
#pragma unroll
    for (int j = 0; j < RP; ++j) acc[rr][j] = Acc(0);
  }
  for (int64_t k = lane; k < a.cols; k += kWarpSize) {
    Acc xv[kRows];
#pragma unroll
    for (int rr = 0; rr < kRows; ++rr) {
      const int64_t n = row0 + rr;
      const int64_t flat = n * a.cols + k;
      xv[rr] = n < a.rows ? static_cast<Acc>(a.x[flat]) * static_cast<Acc>(mask_at(a.mask, flat))
                          : Acc(0);
    }
#pragma unroll
    for (int j = 0; j < RP; ++j) {
      if (j < a.rank) {
        const Acc wv = static_cast<Acc>(a.w[j * a.cols + k]);
#pragma unroll
        for (int rr = 0; rr < kRows; ++rr) acc[rr][j] = mul_add(xv[rr], wv, acc[rr][j]);
      }
    }
  }
}

/// Writes row0's rows of proj and core_out from the reduced sums (every lane holds all of
/// them); lane l writes the columns j ≡ l (mod 32).
template <typename T, typename Acc, int RP>
TLORA_HOST_DEVICE void emit_rows(const ProjectArgs<T, Acc>& a, int64_t row0, int lane,
                                 const Acc (&acc)[ProjectShape<RP>::kRows][RP]) {
  constexpr int kRows = ProjectShape<RP>::kRows;
#pragma unroll
  for (int rr = 0; rr < kRows; ++rr) {
    const int64_t n = row0 + rr;
    if (n >= a.rows) break;
    if (a.proj != nullptr) {
#pragma unroll
      for (int j = 0; j < RP; ++j) {
        if (j < a.rank && j % kWarpSize == lane) a.proj[n * a.rank + j] = acc[rr][j];
      }
    }
    if (a.core_out != nullptr) {
      for (int j = lane; j < a.rank; j += kWarpSize) {
        Acc s = Acc(0);
#pragma unroll
        for (int i = 0; i < RP; ++i) {
          if (i < a.rank) s = mul_add(acc[rr][i], a.core[j * a.rank + i], s);
        }
        a.core_out[n * a.rank + j] = s;
      }
    }
  }
}

/// Copies this warp's rows of proj and rhs into the block's staging tiles (zeros past N and
/// past the rank), for the block-wide projᵀ·rhs update.
template <typename T, typename Acc, int RP>
TLORA_HOST_DEVICE void stage_rows(const ProjectArgs<T, Acc>& a, int64_t row0, int warp, int lane,
                                  const Acc (&acc)[ProjectShape<RP>::kRows][RP], Acc (*proj_tile)[RP],
                                  Acc (*rhs_tile)[RP]) {
  constexpr int kRows = ProjectShape<RP>::kRows;
#pragma unroll
  for (int rr = 0; rr < kRows; ++rr) {
    const int64_t n = row0 + rr;
    const int slot = warp * kRows + rr;
#pragma unroll
    for (int j = 0; j < RP; ++j) {
      if (j % kWarpSize == lane) {
        proj_tile[slot][j] = n < a.rows && j < a.rank ? acc[rr][j] : Acc(0);
        rhs_tile[slot][j] = n < a.rows && j < a.rank ? a.rhs[n * a.rank + j] : Acc(0);
      }
    }
  }
}

/// Thread `t` adds the staged rows' contribution to its entries e = t + q·threads of the r×r
/// partial, entry e being (i, j) = (e / RP, e % RP); rows in ascending order.
template <typename Acc, int RP>
TLORA_HOST_DEVICE void accumulate_part(const Acc (*proj_tile)[RP], const Acc (*rhs_tile)[RP], int t,
                                       Acc (&part)[ProjectShape<RP>::kPartPerThread]) {
  using S = ProjectShape<RP>;
#pragma unroll
  for (int q = 0; q < S::kPartPerThread; ++q) {
    const int e = t + q * S::kThreads;
    const int i = e / RP;
    const int j = e % RP;
    for (int row = 0; row < S::kBlockRows; ++row) {
      part[q] = mul_add(proj_tile[row][i], rhs_tile[row][j], part[q]);
    }
  }
}

/// Thread `t` writes its entries of block `block`'s r×r partial.
template <typename T, typename Acc, int RP>
TLORA_HOST_DEVICE void write_part(const ProjectArgs<T, Acc>& a, int64_t block, int t,
                                  const Acc (&part)[ProjectShape<RP>::kPartPerThread]) {
  using S = ProjectShape<RP>;
#pragma unroll
  for (int q = 0; q < S::kPartPerThread; ++q) {
    const int e = t + q * S::kThreads;
    const int i = e / RP;
    const int j = e % RP;
    if (i < a.rank && j < a.rank) a.part[(block * a.rank + i) * a.rank + j] = part[q];
  }
}

}  // namespace tlora::kernels
