// GLUE evaluation metrics, matching the reference implementations the GLUE scores are quoted
// with: scikit-learn for accuracy, F1 and Matthews correlation, SciPy for Pearson and Spearman.
// Every function throws c10::Error when its two inputs differ in size or are empty.
#pragma once

#include "tlora/export.h"

#include <cstdint>
#include <vector>

TLORA_API_BEGIN
namespace tlora::glue {

/// Fraction of positions where the prediction equals the label (sklearn.metrics.accuracy_score).
double accuracy(const std::vector<int64_t>& predictions, const std::vector<int64_t>& labels);

/// Binary F1 of class `positive`, every other value counting as negative
/// (sklearn.metrics.f1_score with pos_label=positive). 0 when there is neither a positive
/// prediction nor a positive label, as sklearn returns under its default zero_division.
double f1(const std::vector<int64_t>& predictions, const std::vector<int64_t>& labels,
          int64_t positive = 1);

/// Matthews correlation coefficient over any number of classes, by the multi-class formula of
/// sklearn.metrics.matthews_corrcoef; 0 when it is undefined (predictions or labels all one
/// class).
double matthews_corrcoef(const std::vector<int64_t>& predictions, const std::vector<int64_t>& labels);

/// Pearson correlation coefficient (scipy.stats.pearsonr's statistic). Needs at least 2 points;
/// NaN when x or y is constant (SciPy warns and returns NaN) or holds a NaN; exactly ±1 for 2 points.
double pearson(const std::vector<double>& x, const std::vector<double>& y);

/// Spearman rank correlation (scipy.stats.spearmanr's statistic): Pearson of the ranks, tied
/// values sharing their average rank. Needs at least 2 points; NaN when x or y is constant or
/// holds a NaN.
double spearman(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace tlora::glue
TLORA_API_END
