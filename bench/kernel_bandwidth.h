// Achieved bandwidth of the fused CUDA kernels on one benchmark case, against a
// device-to-device copy timed in the same run.
#pragma once

#include <c10/core/TensorOptions.h>
#include <nlohmann/json.hpp>

#include <cstdint>

namespace tlora::bench {

/// For tokens N, in → out and rank r in the dtype and on the CUDA device of `options`: per kernel
/// (down_project, core_grad, rank_update with dropout, merge) and for the copy of an N×out
/// tensor, {"ms", "bytes", "gb_per_s", "fraction_of_copy"}, counting bytes read plus written.
/// Empty when the rank is beyond the fused kernels.
nlohmann::json kernel_bandwidth(int64_t tokens, int64_t in, int64_t out, int64_t rank,
                                const at::TensorOptions& options);

}  // namespace tlora::bench
