// What a resumable training loop needs from the process around it: stopping cleanly when asked
// (a scheduler's SIGTERM, Ctrl-C), and, for its tests, being killed at a chosen step.
#pragma once

#include "tlora/export.h"

#include <cstdint>

TLORA_API_BEGIN
namespace tlora::train {

/// From now on SIGTERM and SIGINT do not end the process but ask the loop to stop: it sees
/// stop_requested() at its next step, saves a checkpoint and exits.
void install_stop_handlers();
/// The signal that asked to stop, or 0.
int stop_requested();

/// A fault injected by the resume tests: the process raises `signal` right after optimizer step
/// `step` (SIGKILL: nothing can be saved; SIGTERM: the loop saves and stops).
class FaultHook {
 public:
  /// Reads "kill:STEP" or "term:STEP" (STEP > 0) from the environment variable `variable`; no
  /// fault when it is unset or empty. Throws naming the variable when it is malformed.
  explicit FaultHook(const char* variable);
  /// Raises the signal when `step` is the one asked for.
  void after_step(int64_t step) const;

 private:
  int signal_ = 0;
  int64_t step_ = -1;
};

}  // namespace tlora::train
TLORA_API_END
