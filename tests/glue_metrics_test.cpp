// GLUE metrics against scikit-learn and SciPy on the cases of tools/metrics_fixtures.py, and
// the refusals of mismatched, empty and too short inputs.
#include "test_util.h"
#include "tlora/glue/metrics.h"

#include <c10/util/Exception.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace {

using nlohmann::json;
using tlora::glue::accuracy;
using tlora::glue::f1;
using tlora::glue::matthews_corrcoef;
using tlora::glue::pearson;
using tlora::glue::spearman;

json fixtures() {
  std::ifstream in(std::string(TLORA_FIXTURE_DIR) + "/glue_metrics.json");
  EXPECT_TRUE(in) << "missing " << TLORA_FIXTURE_DIR << "/glue_metrics.json";
  return json::parse(in);
}

// Equal to 1e-12, absolute or relative; null in the fixture stands for NaN.
testing::AssertionResult close(double actual, const json& expected) {
  if (expected.is_null()) {
    if (std::isnan(actual)) return testing::AssertionSuccess();
    return testing::AssertionFailure() << actual << " is not NaN";
  }
  const double e = expected.get<double>();
  if (std::abs(actual - e) <= 1e-12 * std::max(1.0, std::abs(e))) return testing::AssertionSuccess();
  return testing::AssertionFailure() << actual << " vs " << e;
}

using tlora::testing::contains;
using tlora::testing::error_of;

TEST(GlueMetrics, ClassificationMatchesSklearn) {
  const json cases = fixtures().at("classification");
  ASSERT_FALSE(cases.empty());
  for (const json& c : cases) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const auto predictions = c.at("predictions").get<std::vector<int64_t>>();
    const auto labels = c.at("labels").get<std::vector<int64_t>>();
    EXPECT_TRUE(close(accuracy(predictions, labels), c.at("accuracy")));
    EXPECT_TRUE(close(matthews_corrcoef(predictions, labels), c.at("matthews_corrcoef")));
    if (c.contains("f1")) EXPECT_TRUE(close(f1(predictions, labels), c.at("f1")));
  }
}

TEST(GlueMetrics, CorrelationMatchesScipy) {
  const json cases = fixtures().at("correlation");
  ASSERT_FALSE(cases.empty());
  for (const json& c : cases) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const auto x = c.at("x").get<std::vector<double>>();
    const auto y = c.at("y").get<std::vector<double>>();
    EXPECT_TRUE(close(pearson(x, y), c.at("pearson")));
    EXPECT_TRUE(close(spearman(x, y), c.at("spearman")));
  }
}

TEST(GlueMetrics, F1OfAnotherPositiveClass) {
  // Class 2 is positive, 0 and 1 both negative: tp = 1, fp = 1, fn = 1.
  EXPECT_DOUBLE_EQ(f1({2, 2, 0, 1}, {2, 1, 2, 1}, 2), 0.5);
}

TEST(GlueMetrics, NanInputGivesNan) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(std::isnan(pearson({1.0, nan, 3.0}, {1.0, 2.0, 3.0})));
  EXPECT_TRUE(std::isnan(spearman({1.0, 2.0, 3.0}, {1.0, nan, 3.0})));
}

TEST(GlueMetrics, RefusesMismatchedSizes) {
  EXPECT_TRUE(contains(error_of([] { accuracy({1, 0}, {1}); }), "accuracy: predictions has 2 values but labels has 1"));
  EXPECT_TRUE(contains(error_of([] { f1({1}, {1, 0, 1}); }), "f1: predictions has 1 values but labels has 3"));
  EXPECT_TRUE(contains(error_of([] { matthews_corrcoef({}, {0}); }),
                       "matthews_corrcoef: predictions has 0 values but labels has 1"));
  EXPECT_TRUE(contains(error_of([] { pearson({1.0, 2.0, 3.0}, {1.0, 2.0}); }), "pearson: x has 3 values but y has 2"));
  EXPECT_TRUE(contains(error_of([] { spearman({1.0}, {1.0, 2.0}); }), "spearman: x has 1 values but y has 2"));
}

TEST(GlueMetrics, RefusesEmptyAndSinglePoint) {
  EXPECT_TRUE(contains(error_of([] { accuracy({}, {}); }), "accuracy: predictions and labels are empty"));
  EXPECT_TRUE(contains(error_of([] { f1({}, {}); }), "f1: predictions and labels are empty"));
  EXPECT_TRUE(contains(error_of([] { matthews_corrcoef({}, {}); }), "matthews_corrcoef: predictions and labels are empty"));
  EXPECT_TRUE(contains(error_of([] { pearson({}, {}); }), "pearson: x and y are empty"));
  EXPECT_TRUE(contains(error_of([] { pearson({1.0}, {2.0}); }), "pearson: needs at least 2 points, got 1"));
  EXPECT_TRUE(contains(error_of([] { spearman({1.0}, {2.0}); }), "spearman: needs at least 2 points, got 1"));
}

}  // namespace
