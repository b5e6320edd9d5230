#include "adapters/method.h"
#include "tlora/adapters/adapter.h"
#include "tlora/core/random.h"
#include "tlora/train/split_batch.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <mutex>

namespace tlora {

AdapterImpl::AdapterImpl(AdapterOptions options, std::string path)
    : torch::nn::Module(std::string(to_string(options.kind))),
      options_(std::move(options)),
      path_(std::move(path)) {}

int64_t AdapterImpl::trainable_count() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

bool AdapterImpl::buffers_regenerable() const { return detail::method(options_.kind).regenerable(); }

AdapterDropout AdapterImpl::next_dropout(DropoutPosition position) {
  AdapterDropout d;
  if (!is_training() || options_.dropout <= 0.0) return d;
  d.p = options_.dropout;
  d.position = position;
  d.seed = options_.seed;
  d.stream = dropout_stream(path_, next_call());
  return d;
}

uint64_t AdapterImpl::next_call() {
  const train::BatchPart* part = train::current_batch_part();
  if (part == nullptr) return calls_++;
  // Call j of part k of a split step that began at call c takes stream c + j·count + k, and the
  // step leaves calls_ at c + J·count (J calls per part): the same streams whichever part's
  // thread comes first. One lock for all adapters: it is taken once per adapter call.
  static std::mutex mutex;
  const std::lock_guard<std::mutex> lock(mutex);
  const auto count = static_cast<uint64_t>(part->count);
  if (split_generation_ != part->generation) {
    split_generation_ = part->generation;
    split_base_ = calls_;
    split_calls_.assign(count, 0);
  }
  uint64_t& j = split_calls_[static_cast<size_t>(part->index)];
  const uint64_t call = split_base_ + j * count + static_cast<uint64_t>(part->index);
  ++j;
  calls_ = std::max(calls_, split_base_ + j * count);
  return call;
}

SharedTensors draw_shared_tensors(const AdapterOptions& options, int64_t max_in, int64_t max_out,
                                  const at::TensorOptions& tensor_options) {
  return detail::method(options.kind).draw_shared(max_in, max_out, options, tensor_options);
}

std::shared_ptr<AdapterImpl> make_adapter(const AdapterOptions& options, const std::string& path,
                                          const at::Tensor& weight, const SharedTensors& shared) {
  const detail::Method& method = detail::method(options.kind);
  TORCH_CHECK(weight.defined() && weight.dim() == 2, "adapter for '", path,
              "': the base weight must be 2-D (out×in)");
  const int64_t out = weight.size(0), in = weight.size(1);
  TORCH_CHECK(options.rank >= 1 && options.rank <= std::min(in, out), "adapter for '", path,
              "': rank must be in [1, min(in, out)] = [1, ", std::min(in, out), "], got ",
              options.rank);
  TORCH_CHECK(options.dropout >= 0.0 && options.dropout < 1.0, "adapter for '", path,
              "': dropout must be in [0, 1), got ", options.dropout);
  return method.make(options, path, weight, shared);
}

}  // namespace tlora
