// The per-thread arithmetic of the rank-r update kernel (rank_update.cu), host/device so that a
// CPU test can run the same index math thread by thread.
//
// dst = src + mask ⊙ (P·Qᵀ) for P (N×r) and Q (C×r), dst/src N×C row-major. A block of kThreads
// threads covers kThreads consecutive columns; thread t keeps its column's row of Q in registers
// and walks tiles of kTileRows rows whose P rows are staged in shared memory (read as
// broadcasts). Each element is read and written once by the same thread, so dst may be src.
// It serves the forward y += drop(v·Bᵀ), the backward dx += drop(du·A) and the merge
// W_eff = W0 + B·(α·M·A) alike.
#pragma once

#include "project_rows.cuh"

#include <cstdint>

namespace tlora::kernels {

/// Launch geometry (the same for every rank).
struct UpdateShape {
  static constexpr int kThreads = 256;
  static constexpr int kTileRows = 32;
};

/// Arguments of one rank-r update.
template <typename T, typename Acc>
struct UpdateArgs {
  T* dst = nullptr;        // N×C
  const T* src = nullptr;  // N×C, may equal dst
  int64_t rows = 0;        // N
  int64_t cols = 0;        // C
  const Acc* left = nullptr;   // P, N×r
  const Acc* right = nullptr;  // Q, C×r
  int rank = 0;
  DropMask mask;  // on the update, element (n,c) at flat index n*C + c
};

/// Column c's row of Q, zero past the rank and past C.
template <typename T, typename Acc, int RP>
TLORA_HOST_DEVICE void load_right(const UpdateArgs<T, Acc>& a, int64_t c, Acc (&q)[RP]) {
#pragma unroll
  for (int j = 0; j < RP; ++j) q[j] = c < a.cols && j < a.rank ? a.right[c * a.rank + j] : Acc(0);
}

/// Thread t's share of staging tile `tile` of P (rows tile·kTileRows onward), zeros past N and
/// past the rank.
template <typename T, typename Acc, int RP>
TLORA_HOST_DEVICE void stage_left(const UpdateArgs<T, Acc>& a, int64_t tile, int t,
                                  Acc (*left_tile)[RP]) {
  using S = UpdateShape;
  for (int e = t; e < S::kTileRows * RP; e += S::kThreads) {
    const int rr = e / RP;
    const int j = e % RP;
    const int64_t n = tile * S::kTileRows + rr;
    left_tile[rr][j] = n < a.rows && j < a.rank ? a.left[n * a.rank + j] : Acc(0);
  }
}

/// Updates column c of the tile's rows: dst = src + mask·Σ_j P[n][j]·Q[c][j].
template <typename T, typename Acc, int RP>
TLORA_HOST_DEVICE void update_column(const UpdateArgs<T, Acc>& a, int64_t tile, int64_t c,
                                     const Acc (&q)[RP], const Acc (*left_tile)[RP]) {
  using S = UpdateShape;
  if (c >= a.cols) return;
  for (int rr = 0; rr < S::kTileRows; ++rr) {
    const int64_t n = tile * S::kTileRows + rr;
    if (n >= a.rows) return;
    Acc s = Acc(0);
#pragma unroll
    for (int j = 0; j < RP; ++j) s = mul_add(left_tile[rr][j], q[j], s);
    const int64_t flat = n * a.cols + c;
    a.dst[flat] = static_cast<T>(
        mul_add(static_cast<Acc>(mask_at(a.mask, flat)), s, static_cast<Acc>(a.src[flat])));
  }
}

}  // namespace tlora::kernels
