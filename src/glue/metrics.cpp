#include "tlora/glue/metrics.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <map>
#include <numeric>
#include <utility>

namespace tlora::glue {
namespace {

template <typename T>
void check_pair(const std::vector<T>& a, const std::vector<T>& b, const char* what, const char* a_name,
                const char* b_name) {
  TORCH_CHECK(a.size() == b.size(), what, ": ", a_name, " has ", a.size(), " values but ", b_name, " has ",
              b.size());
  TORCH_CHECK(!a.empty(), what, ": ", a_name, " and ", b_name, " are empty");
}

void check_correlation(const std::vector<double>& x, const std::vector<double>& y, const char* what) {
  check_pair(x, y, what, "x", "y");
  TORCH_CHECK(x.size() >= 2, what, ": needs at least 2 points, got ", x.size());
}

bool has_nan(const std::vector<double>& v) {
  return std::any_of(v.begin(), v.end(), [](double e) { return std::isnan(e); });
}

bool is_constant(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [&](double e) { return e == v.front(); });
}

// Deviations from the mean, divided by the largest of them so that the sums of squares cannot
// overflow for huge inputs (SciPy scales the same way); the scale cancels in the ratio.
std::vector<double> scaled_deviations(const std::vector<double>& v) {
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  std::vector<double> d(v.size());
  double largest = 0.0;
  for (size_t i = 0; i < v.size(); ++i) {
    d[i] = v[i] - mean;
    largest = std::max(largest, std::abs(d[i]));
  }
  for (double& e : d) e /= largest;
  return d;
}

// Pearson of inputs already checked, neither constant nor holding a NaN.
double pearson_unchecked(const std::vector<double>& x, const std::vector<double>& y) {
  const std::vector<double> dx = scaled_deviations(x);
  const std::vector<double> dy = scaled_deviations(y);
  double sxy = 0.0, sxx = 0.0, syy = 0.0;
  for (size_t i = 0; i < dx.size(); ++i) {
    sxy += dx[i] * dy[i];
    sxx += dx[i] * dx[i];
    syy += dy[i] * dy[i];
  }
  // Rounding can push |r| just past 1; with 2 points r is ±1 in exact arithmetic, and SciPy
  // returns it exactly.
  const double r = std::clamp(sxy / (std::sqrt(sxx) * std::sqrt(syy)), -1.0, 1.0);
  return x.size() == 2 ? std::round(r) : r;
}

// 1-based ranks, tied values sharing the mean of the ranks they span (scipy.stats.rankdata).
std::vector<double> average_ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> ranks(v.size());
  for (size_t begin = 0; begin < order.size();) {
    size_t end = begin + 1;
    while (end < order.size() && v[order[end]] == v[order[begin]]) ++end;
    const double rank = static_cast<double>(begin + 1 + end) / 2.0;
    for (size_t i = begin; i < end; ++i) ranks[order[i]] = rank;
    begin = end;
  }
  return ranks;
}

}  // namespace

double accuracy(const std::vector<int64_t>& predictions, const std::vector<int64_t>& labels) {
  check_pair(predictions, labels, "accuracy", "predictions", "labels");
  size_t correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) correct += predictions[i] == labels[i];
  return static_cast<double>(correct) / static_cast<double>(labels.size());
}

double f1(const std::vector<int64_t>& predictions, const std::vector<int64_t>& labels, int64_t positive) {
  check_pair(predictions, labels, "f1", "predictions", "labels");
  size_t tp = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const bool predicted = predictions[i] == positive;
    const bool actual = labels[i] == positive;
    tp += predicted && actual;
    fp += predicted && !actual;
    fn += !predicted && actual;
  }
  const size_t denominator = 2 * tp + fp + fn;
  return denominator == 0 ? 0.0 : static_cast<double>(2 * tp) / static_cast<double>(denominator);
}

double matthews_corrcoef(const std::vector<int64_t>& predictions, const std::vector<int64_t>& labels) {
  check_pair(predictions, labels, "matthews_corrcoef", "predictions", "labels");
  // Per class: (times it is the label, times it is predicted).
  std::map<int64_t, std::pair<double, double>> totals;
  double correct = 0.0;
  for (size_t i = 0; i < labels.size(); ++i) {
    totals[labels[i]].first += 1.0;
    totals[predictions[i]].second += 1.0;
    correct += predictions[i] == labels[i];
  }
  const double n = static_cast<double>(labels.size());
  double label_dot_predicted = 0.0, label_squares = 0.0, predicted_squares = 0.0;
  for (const auto& [cls, t] : totals) {
    label_dot_predicted += t.first * t.second;
    label_squares += t.first * t.first;
    predicted_squares += t.second * t.second;
  }
  const double cov_label_predicted = correct * n - label_dot_predicted;
  const double cov_predicted = n * n - predicted_squares;
  const double cov_label = n * n - label_squares;
  const double product = cov_predicted * cov_label;
  return product == 0.0 ? 0.0 : cov_label_predicted / std::sqrt(product);
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  check_correlation(x, y, "pearson");
  if (has_nan(x) || has_nan(y) || is_constant(x) || is_constant(y))
    return std::numeric_limits<double>::quiet_NaN();
  return pearson_unchecked(x, y);
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  check_correlation(x, y, "spearman");
  if (has_nan(x) || has_nan(y) || is_constant(x) || is_constant(y))
    return std::numeric_limits<double>::quiet_NaN();
  return pearson_unchecked(average_ranks(x), average_ranks(y));
}

}  // namespace tlora::glue
