// Fine-tuning and evaluation runs: the training loop with its checkpoints, resume and results,
// and evaluation of a saved adapter.
#pragma once

#include "options.h"

namespace glue_app {

// Process exit codes besides 0 (success) and 1 (bad input or a failure).
inline constexpr int kExitNonFinite = 3;     // NaN or infinite loss/gradients: the run stopped
inline constexpr int kExitInterrupted = 143;  // SIGTERM/SIGINT: checkpoint saved, resumable

// Trains as `config` says and writes the output folder; returns the exit code.
int run_training(const RunConfig& config);

// Evaluates `config.adapter_dir` on `config.eval_file` (default: the dev sets) and writes
// predictions; returns the exit code.
int run_evaluation(RunConfig config);

}  // namespace glue_app
