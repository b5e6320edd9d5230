#include "tlora/train/memory.h"

#include <cstdlib>
#include <initializer_list>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace tlora::train {

bool retain_freed_memory() {
#if defined(__GLIBC__)
  for (const char* variable : {"GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                               "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_"}) {
    if (std::getenv(variable) != nullptr) return false;
  }
  // Buffers up to 32 MiB (the most glibc allows here) come from the heap rather than from a
  // mapping of their own, and the heap is never trimmed back: a step's buffers are reused by the
  // next. Larger buffers keep their own mappings (disabling mmap altogether would make a worker
  // thread's arena fail allocations above its 64 MiB heap).
  constexpr int kMmapThreshold = 32 << 20;
  constexpr int kTopPad = 64 << 20;
  return mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1 &&
         mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1 &&  // int: glibc's mallopt takes no larger
         mallopt(M_TOP_PAD, kTopPad) == 1;
#else
  return false;
#endif
}

}  // namespace tlora::train
