// Counts the bytes of tensor storage alive on a device, to measure what an autograd graph keeps.
#pragma once

#include "tlora/export.h"

#include <c10/core/Device.h>

#include <cstdint>

TLORA_API_BEGIN
namespace tlora {

/// While alive, tracks the bytes requested and not yet freed on `device`. On CPU it installs a
/// counting wrapper around the CPU allocator (so only tensors created meanwhile are seen); on an
/// accelerator it reads the caching allocator's requested-bytes statistic.
class LiveBytes {
 public:
  /// Starts counting on `device`.
  explicit LiveBytes(c10::Device device);
  /// Stops counting (on CPU, restores the previous allocator).
  ~LiveBytes();
  LiveBytes(const LiveBytes&) = delete;
  LiveBytes& operator=(const LiveBytes&) = delete;

  /// Bytes currently requested and not freed (on CPU: since construction).
  int64_t current() const;

 private:
  c10::Device device_;
};

}  // namespace tlora
TLORA_API_END
