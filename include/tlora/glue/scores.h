// A task's official metrics from predictions, by the names GLUE results are reported under.
#pragma once

#include "tlora/export.h"

#include "tlora/glue/tasks.h"

#include <map>
#include <string>
#include <vector>

TLORA_API_BEGIN
namespace tlora::glue {

/// Every metric of `task` (info(task).metric_names: "accuracy", "f1", "mcc", "pearson",
/// "spearman") for `predictions` against `labels`: class indices (as doubles) for a
/// classification task, scores for STS-B. Throws when the sizes differ or are zero.
std::map<std::string, double> score(Task task, const std::vector<double>& predictions,
                                    const std::vector<double>& labels);

/// The one number runs are compared by: the mean of the task's metrics (transformers'
/// run_glue "combined_score" for MRPC, STS-B and QQP; the single metric elsewhere).
double combined_score(const std::map<std::string, double>& metrics);

}  // namespace tlora::glue
TLORA_API_END
