// Tolerances derived from the arithmetic, never from what one machine produced (tests/README.md).
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/abs.h>
#include <ATen/ops/max.h>
#include <c10/core/ScalarType.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <cstdint>

namespace tlora::testing {

/// Unit roundoff u of a floating-point type: half the gap from 1 to the next number (2^-24 for
/// float32, 2^-53 for float64, 2^-8 for bfloat16, 2^-11 for float16).
inline double unit_roundoff(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::kFloat: return 0x1p-24;
    case c10::kDouble: return 0x1p-53;
    case c10::kBFloat16: return 0x1p-8;
    case c10::kHalf: return 0x1p-11;
    default: TORCH_CHECK(false, "unit_roundoff: ", dtype, " is not a floating-point type");
  }
}

/// λ of the probabilistic rounding-error bound (Higham & Mary, SIAM J. Sci. Comput. 41(5),
/// 2019): a sum of K terms rounded in any order is within λ·√K·u of exact, relative to the sum
/// of the terms' magnitudes, except with probability at most 2·exp(−λ²/2), 3e-14 for λ = 8.
inline constexpr double kRoundingLambda = 8;

/// The largest |a − b| expected between two correct evaluations of one function in `dtype` that
/// round differently: another CPU's kernels, another summation order, a fixture written on
/// another machine. Each side errs by at most λ·√K·u of `scale` in each of `depth` sequential
/// stages whose longest reduction has K = `reduction` terms; `scale` is the magnitude of the
/// compared values (max |reference|). A wrong formula errs by a fraction of `scale`, far above.
inline double rounding_tolerance(c10::ScalarType dtype, double scale, int64_t reduction,
                                 int depth = 1) {
  return 2.0 * depth * kRoundingLambda * std::sqrt(static_cast<double>(reduction)) *
         unit_roundoff(dtype) * scale;
}

/// rounding_tolerance in float32 at the scale of `reference` (its largest magnitude).
inline double float32_tolerance(const at::Tensor& reference, int64_t reduction, int depth = 1) {
  return rounding_tolerance(c10::kFloat, reference.abs().max().item<double>(), reduction, depth);
}

/// Worst-case error bound of one sum of `terms` terms in `dtype`, whatever the order (Higham's
/// γ_K ≈ K·u), times `magnitude`, the sum of the terms' magnitudes: for checks that must hold
/// for every summation order, not just with high probability.
inline double worst_case_sum_error(c10::ScalarType dtype, int64_t terms, double magnitude) {
  const double ku = static_cast<double>(terms) * unit_roundoff(dtype);
  return ku / (1 - ku) * magnitude;
}

}  // namespace tlora::testing
