// Moments of a sample and two tests of normality, as SciPy computes them (scipy.stats.skew,
// kurtosis, jarque_bera, normaltest): used on the entries of trained adapter tensors.
#pragma once

#include "tlora/export.h"

#include <ATen/core/Tensor.h>

#include <cstdint>

TLORA_API_BEGIN
namespace tlora {

/// Moments and normality tests of the entries of a tensor, in float64. Moments are the biased
/// (population) ones, as numpy.std and SciPy's defaults compute them. A quantity that is not
/// defined for the sample (a constant sample, too few entries) is NaN.
struct EntryStatistics {
  /// Number of entries.
  int64_t count = 0;
  /// Mean.
  double mean = 0;
  /// Standard deviation √m2 (ddof = 0).
  double std = 0;
  /// Skewness g1 = m3 / m2^1.5 (scipy.stats.skew).
  double skewness = 0;
  /// Excess kurtosis g2 = m4 / m2² − 3 (scipy.stats.kurtosis), 0 for a normal distribution.
  double excess_kurtosis = 0;
  /// Jarque–Bera statistic n/6·(g1² + g2²/4) (scipy.stats.jarque_bera).
  double jarque_bera = 0;
  /// Its p-value under χ²(2): exp(−JB/2).
  double jarque_bera_p = 0;
  /// D'Agostino's skewness test Z (scipy.stats.skewtest); needs at least 8 entries.
  double skew_z = 0;
  /// Anscombe–Glynn kurtosis test Z (scipy.stats.kurtosistest); needs at least 5 entries.
  double kurtosis_z = 0;
  /// D'Agostino–Pearson K² = skew_z² + kurtosis_z² (scipy.stats.normaltest).
  double k2 = 0;
  /// Its p-value under χ²(2): exp(−K²/2).
  double k2_p = 0;
};

/// The statistics of all entries of `values` (any shape; at least one entry).
EntryStatistics entry_statistics(const at::Tensor& values);

}  // namespace tlora
TLORA_API_END
