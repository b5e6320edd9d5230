// Task metrics by name.
#include "tlora/glue/scores.h"

#include "tlora/glue/metrics.h"

#include <c10/util/Exception.h>

#include <cmath>
#include <cstdint>

namespace tlora::glue {
namespace {

std::vector<int64_t> as_classes(const std::vector<double>& values, const char* what) {
  std::vector<int64_t> out;
  out.reserve(values.size());
  for (double v : values) {
    TORCH_CHECK(std::isfinite(v) && v >= 0 && v == std::floor(v), "glue::score: ", what,
                " must be class indices, got ", v);
    out.push_back(static_cast<int64_t>(v));
  }
  return out;
}

}  // namespace

std::map<std::string, double> score(Task task, const std::vector<double>& predictions,
                                    const std::vector<double>& labels) {
  TORCH_CHECK(!predictions.empty() && predictions.size() == labels.size(), "glue::score: ",
              predictions.size(), " predictions for ", labels.size(), " labels");
  const TaskInfo& t = info(task);
  std::map<std::string, double> out;
  if (t.is_regression) {
    out["pearson"] = pearson(predictions, labels);
    out["spearman"] = spearman(predictions, labels);
    return out;
  }
  const auto p = as_classes(predictions, "predictions");
  const auto l = as_classes(labels, "labels");
  for (const std::string& name : t.metric_names) {
    if (name == "accuracy") out[name] = accuracy(p, l);
    else if (name == "f1") out[name] = f1(p, l);
    else if (name == "mcc") out[name] = matthews_corrcoef(p, l);
  }
  return out;
}

double combined_score(const std::map<std::string, double>& metrics) {
  TORCH_CHECK(!metrics.empty(), "glue::combined_score: no metrics");
  double sum = 0;
  for (const auto& [name, value] : metrics) sum += value;
  return sum / static_cast<double>(metrics.size());
}

}  // namespace tlora::glue
