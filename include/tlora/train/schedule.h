// Learning-rate schedules, as multipliers of the base learning rate per optimizer step.
#pragma once

#include "tlora/export.h"

#include <cstdint>

TLORA_API_BEGIN
namespace tlora::train {

/// transformers' get_linear_schedule_with_warmup: rises linearly from 0 to 1 over
/// `warmup_steps`, then falls linearly to 0 at `total_steps`. `step` counts the steps already
/// taken (0 for the first). Throws for negative counts or warmup_steps > total_steps.
double linear_schedule(int64_t step, int64_t warmup_steps, int64_t total_steps);

/// The warmup length for a ratio of the total steps, rounded up as transformers'
/// TrainingArguments.get_warmup_steps does. Throws for a ratio outside [0, 1].
int64_t warmup_steps(double ratio, int64_t total_steps);

}  // namespace tlora::train
TLORA_API_END
