// Linear warmup-and-decay schedule.
#include "tlora/train/schedule.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>

namespace tlora::train {

double linear_schedule(int64_t step, int64_t warmup_steps, int64_t total_steps) {
  TORCH_CHECK(step >= 0 && warmup_steps >= 0 && total_steps >= 0 && warmup_steps <= total_steps,
              "linear_schedule: need 0 <= step, 0 <= warmup_steps <= total_steps; got step ", step,
              ", warmup_steps ", warmup_steps, ", total_steps ", total_steps);
  if (step < warmup_steps) return static_cast<double>(step) / static_cast<double>(warmup_steps);
  return std::max(0.0, static_cast<double>(total_steps - step) /
                           static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps)));
}

int64_t warmup_steps(double ratio, int64_t total_steps) {
  TORCH_CHECK(ratio >= 0.0 && ratio <= 1.0, "warmup ratio must be in [0, 1], got ", ratio);
  TORCH_CHECK(total_steps >= 0, "total_steps must be >= 0, got ", total_steps);
  return static_cast<int64_t>(std::ceil(ratio * static_cast<double>(total_steps)));
}

}  // namespace tlora::train
