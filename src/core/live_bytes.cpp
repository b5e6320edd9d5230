#include "tlora/core/live_bytes.h"

#include <ATen/DeviceAccelerator.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace tlora {
namespace {

std::atomic<int64_t> cpu_live{0};

// Counts requested sizes rather than what malloc rounds to, so differences are exact. The data
// pointer doubles as the context (raw_allocate, used by some kernels, insists on that), so the
// wrapped allocations are kept in a table keyed by it.
class CountingAllocator final : public at::Allocator {
 public:
  explicit CountingAllocator(at::Allocator* inner) : inner_(inner) {}

  at::DataPtr allocate(size_t n) override {
    if (n == 0) return inner_->allocate(0);  // no data pointer to key it by, and nothing to count
    at::DataPtr block = inner_->allocate(n);
    void* data = block.get();
    const c10::Device device = block.device();
    {
      const std::lock_guard<std::mutex> lock(mutex());
      blocks().emplace(data, Block{std::move(block), n});
    }
    cpu_live += static_cast<int64_t>(n);
    return {data, data, &release, device};
  }

  at::DeleterFnPtr raw_deleter() const override { return &release; }

  void copy_data(void* dest, const void* src, size_t count) const override {
    inner_->copy_data(dest, src, count);
  }

  at::Allocator* inner() const { return inner_; }

 private:
  struct Block {
    at::DataPtr inner;
    size_t bytes;
  };

  // Statics rather than members, so tensors may outlive the wrapper's installation.
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static std::unordered_map<void*, Block>& blocks() {
    static std::unordered_map<void*, Block> table;
    return table;
  }

  static void release(void* data) {
    Block block;
    {
      const std::lock_guard<std::mutex> lock(mutex());
      auto it = blocks().find(data);
      block = std::move(it->second);
      blocks().erase(it);
    }
    cpu_live -= static_cast<int64_t>(block.bytes);
  }  // the inner allocation is freed here, outside the lock

  at::Allocator* inner_;
};

// Above the default allocator's registration priority (0), so ours wins while installed.
constexpr uint8_t kPriority = 100;

CountingAllocator& counting() {
  static CountingAllocator allocator(c10::GetCPUAllocator());
  return allocator;
}

}  // namespace

LiveBytes::LiveBytes(c10::Device device) : device_(device) {
  if (device_.is_cpu()) c10::SetCPUAllocator(&counting(), kPriority);
}

LiveBytes::~LiveBytes() {
  if (device_.is_cpu()) c10::SetCPUAllocator(counting().inner(), kPriority);
}

int64_t LiveBytes::current() const {
  if (device_.is_cpu()) return cpu_live.load();
  const auto stats = at::accelerator::getDeviceStats(device_.index());
  return stats.requested_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)]
      .current;
}

}  // namespace tlora
