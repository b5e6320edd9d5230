// Counts the bytes of live CPU tensor storage, so a test can measure what an autograd graph
// keeps alive: install once, then read `live()` before and after a forward pass.
#pragma once

#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <cstdint>

namespace tlora::testing {

class LiveBytes final : public c10::Allocator {
 public:
  /// Wraps the current CPU allocator and installs the wrapper for the rest of the process.
  static LiveBytes& install() {
    static LiveBytes* instance = [] {
      auto* counter = new LiveBytes(c10::GetCPUAllocator());
      c10::SetCPUAllocator(counter, /*priority=*/100);
      return counter;
    }();
    return *instance;
  }

  /// Bytes currently held by CPU tensors allocated since installation.
  int64_t live() const { return live_.load(); }

  c10::DataPtr allocate(size_t n) override {
    auto* record = new Record{inner_->allocate(n), n, this};
    live_ += static_cast<int64_t>(n);
    void* data = record->inner.get();
    return {data, record, &release, c10::Device(c10::DeviceType::CPU)};
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

 private:
  struct Record {
    c10::DataPtr inner;
    size_t bytes;
    LiveBytes* owner;
  };

  explicit LiveBytes(c10::Allocator* inner) : inner_(inner) {}

  static void release(void* ctx) {
    auto* record = static_cast<Record*>(ctx);
    record->owner->live_ -= static_cast<int64_t>(record->bytes);
    delete record;
  }

  c10::Allocator* inner_;
  std::atomic<int64_t> live_{0};
};

}  // namespace tlora::testing
