// How a training process keeps its memory between steps.
#pragma once

#include "tlora/export.h"

TLORA_API_BEGIN
namespace tlora::train {

/// Makes the C library keep the memory a training step frees, so the next step reuses it instead
/// of having the kernel fault fresh zeroed pages in. glibc's malloc returns large freed buffers
/// (activations of tens of MiB) to the OS after every step by default: 27,000 page faults and
/// 45 ms of kernel time in each bf16-mixed MiniLM step at 32×128. Process-wide, for applications:
/// call it once at start-up. Does nothing, and returns false, where the C library is not glibc or
/// the user tuned malloc through the environment (GLIBC_TUNABLES or MALLOC_*_ variables).
bool retain_freed_memory();

}  // namespace tlora::train
TLORA_API_END
