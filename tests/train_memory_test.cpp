// tlora::train::retain_freed_memory against what the kernel counts: page faults.
#include "tlora/train/memory.h"

#include <gtest/gtest.h>

#include <sys/resource.h>

#include <cstdlib>
#include <cstring>

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitizedMalloc = true;
#elif defined(__has_feature)
constexpr bool kSanitizedMalloc = __has_feature(address_sanitizer);
#else
constexpr bool kSanitizedMalloc = false;
#endif

long minor_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

// An activation-sized buffer, written through so every page is touched, then freed.
void use_buffer(size_t bytes) {
  auto* data = static_cast<char*>(std::malloc(bytes));
  ASSERT_NE(data, nullptr);
  std::memset(data, 1, bytes);
  // Keeps the compiler from dropping the writes to a buffer nobody reads.
  asm volatile("" : : "r"(data) : "memory");
  std::free(data);
}

// By default glibc maps a 24 MiB buffer afresh on every request and unmaps it on free, so each
// use faults its pages in again; retained, the second use finds them already there.
TEST(TrainMemory, BufferFreedAndAskedForAgainCostsNoPageFaults) {
  if (kSanitizedMalloc) GTEST_SKIP() << "the sanitizer's allocator replaces glibc's";
  if (!tlora::train::retain_freed_memory()) {
    GTEST_SKIP() << "not glibc, or malloc is tuned through the environment";
  }
  constexpr size_t kBytes = size_t{24} << 20;
  use_buffer(kBytes);
  const long before = minor_faults();
  use_buffer(kBytes);
  const long faults = minor_faults() - before;
  const long pages = static_cast<long>(kBytes / 4096);
  EXPECT_LT(faults, pages / 20) << faults << " page faults for a buffer of " << pages << " pages";
}

}  // namespace
