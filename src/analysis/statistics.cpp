#include "tlora/analysis/statistics.h"

#include <c10/util/Exception.h>

#include <cmath>
#include <limits>
#include <vector>

namespace tlora {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// D'Agostino (1970), as scipy.stats.skewtest computes it (without SciPy's replacement of an
// exactly zero statistic by 1, which would make a perfectly symmetric sample look skewed).
double skew_z(double g1, double n) {
  if (n < 8) return kNaN;
  const double y = g1 * std::sqrt((n + 1) * (n + 3) / (6.0 * (n - 2)));
  const double beta2 = 3.0 * (n * n + 27 * n - 70) * (n + 1) * (n + 3) / ((n - 2) * (n + 5) * (n + 7) * (n + 9));
  const double w2 = -1 + std::sqrt(2 * (beta2 - 1));
  const double delta = 1 / std::sqrt(0.5 * std::log(w2));
  const double alpha = std::sqrt(2.0 / (w2 - 1));
  return delta * std::asinh(y / alpha);
}

// Anscombe & Glynn (1983), as scipy.stats.kurtosistest computes it; b2 is the plain kurtosis.
double kurtosis_z(double b2, double n) {
  if (n < 5) return kNaN;
  const double mean = 3.0 * (n - 1) / (n + 1);
  const double variance = 24.0 * n * (n - 2) * (n - 3) / ((n + 1) * (n + 1) * (n + 3) * (n + 5));
  const double x = (b2 - mean) / std::sqrt(variance);
  const double sqrt_beta1 =
      6.0 * (n * n - 5 * n + 2) / ((n + 7) * (n + 9)) * std::sqrt(6.0 * (n + 3) * (n + 5) / (n * (n - 2) * (n - 3)));
  const double a = 6.0 + 8.0 / sqrt_beta1 * (2.0 / sqrt_beta1 + std::sqrt(1 + 4.0 / (sqrt_beta1 * sqrt_beta1)));
  const double term1 = 1 - 2 / (9.0 * a);
  const double denom = 1 + x * std::sqrt(2 / (a - 4.0));
  if (denom == 0) return kNaN;
  const double term2 = std::copysign(std::cbrt((1 - 2.0 / a) / std::abs(denom)), denom);
  return (term1 - term2) / std::sqrt(2 / (9.0 * a));
}

}  // namespace

EntryStatistics entry_statistics(const at::Tensor& values) {
  TORCH_CHECK(values.defined() && values.numel() > 0, "entry_statistics: the tensor has no entries");
  const at::Tensor flat = values.detach().to(at::kCPU, at::kDouble).contiguous().view(-1);
  const double* x = flat.const_data_ptr<double>();
  const int64_t count = flat.numel();
  const double n = static_cast<double>(count);

  EntryStatistics s;
  s.count = count;
  double sum = 0;
  for (int64_t i = 0; i < count; ++i) sum += x[i];
  // One correction pass removes most of the rounding of the plain sum, which the odd central
  // moments would otherwise amplify when the mean is large against the spread.
  double correction = 0;
  for (int64_t i = 0; i < count; ++i) correction += x[i] - sum / n;
  s.mean = sum / n + correction / n;
  // Central moments in a second pass: accurate also when the mean is large against the spread.
  double m2 = 0, m3 = 0, m4 = 0;
  for (int64_t i = 0; i < count; ++i) {
    const double d = x[i] - s.mean, d2 = d * d;
    m2 += d2;
    m3 += d2 * d;
    m4 += d2 * d2;
  }
  m2 /= n;
  m3 /= n;
  m4 /= n;
  s.std = std::sqrt(m2);
  if (!(m2 > 0)) {
    s.skewness = s.excess_kurtosis = s.jarque_bera = s.jarque_bera_p = kNaN;
    s.skew_z = s.kurtosis_z = s.k2 = s.k2_p = kNaN;
    return s;
  }
  s.skewness = m3 / std::pow(m2, 1.5);
  const double b2 = m4 / (m2 * m2);
  s.excess_kurtosis = b2 - 3;
  s.jarque_bera = n / 6 * (s.skewness * s.skewness + s.excess_kurtosis * s.excess_kurtosis / 4);
  // χ²(2) has the survival function exp(−x/2).
  s.jarque_bera_p = std::exp(-s.jarque_bera / 2);
  s.skew_z = skew_z(s.skewness, n);
  s.kurtosis_z = kurtosis_z(b2, n);
  s.k2 = s.skew_z * s.skew_z + s.kurtosis_z * s.kurtosis_z;
  s.k2_p = std::exp(-s.k2 / 2);
  return s;
}

}  // namespace tlora
