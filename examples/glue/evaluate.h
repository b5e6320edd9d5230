// Predictions and metrics on evaluation sets.
#pragma once

#include "classifier.h"
#include "data.h"

#include "tlora/dist/context.h"

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace glue_app {

// What inputs look like on the way into the model.
struct InputSpec {
  int64_t pad_id = 0;
  bool regression = false;
  c10::Device device = c10::kCPU;
  int64_t batch_size = 64;
  // Forward passes under tlora::AutocastGuard (bf16-mixed).
  bool autocast = false;
};

// The prediction for every example, in file order: the class index, or the score for a
// regression task. Runs in eval mode without gradients and leaves the mode as it was. With
// several ranks each predicts every world-th example and the results are gathered, so every
// rank returns all predictions.
std::vector<double> predict(const Classifier& classifier, const tlora::glue::Features& features,
                            const InputSpec& spec, const tlora::dist::Context& dist = {});

// The task's metrics on every set: the first set's under the metrics' names ("accuracy"), the
// others' with the set's suffix ("accuracy_mismatched").
std::map<std::string, double> evaluate(tlora::glue::Task task, const Classifier& classifier,
                                       const std::vector<EvalSet>& sets, const InputSpec& spec,
                                       const tlora::dist::Context& dist = {});

}  // namespace glue_app
