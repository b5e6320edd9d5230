#include "tlora/dist/sampler.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/Exception.h>

namespace tlora::dist {

DistributedSampler::DistributedSampler(int64_t size, int world_size, int rank, SamplerOptions options)
    : size_(size), world_size_(world_size), rank_(rank), options_(options) {
  TORCH_CHECK(size >= 0, "DistributedSampler: the dataset size must not be negative, not ", size);
  TORCH_CHECK(world_size >= 1, "DistributedSampler: world_size must be at least 1, not ", world_size);
  TORCH_CHECK(rank >= 0 && rank < world_size, "DistributedSampler: rank ", rank, " is not in [0, ", world_size, ")");
  TORCH_CHECK(!options.drop_last || size >= world_size, "DistributedSampler: drop_last with ", size,
              " samples for ", world_size, " ranks would leave every rank without data");
  // torch's rule: ceil(size / W) with padding, floor(size / W) with drop_last.
  shard_size_ = options.drop_last ? size / world_size : (size + world_size - 1) / world_size;
}

std::vector<int64_t> DistributedSampler::epoch_order(int64_t epoch) const {
  std::vector<int64_t> order(size_);
  if (options_.shuffle) {
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(options_.seed + static_cast<uint64_t>(epoch));
    const at::Tensor permutation = at::randperm(size_, generator, at::kLong);
    const int64_t* p = permutation.const_data_ptr<int64_t>();
    order.assign(p, p + size_);
  } else {
    for (int64_t i = 0; i < size_; ++i) order[i] = i;
  }
  const int64_t total = shard_size_ * world_size_;
  // Padding repeats the order from its beginning (as often as needed when size < W).
  for (int64_t i = size_; i < total; ++i) order.push_back(order[i % size_]);
  order.resize(total);
  return order;
}

std::vector<int64_t> DistributedSampler::indices(int64_t epoch) const {
  const std::vector<int64_t> order = epoch_order(epoch);
  std::vector<int64_t> mine;
  mine.reserve(shard_size_);
  for (size_t i = rank_; i < order.size(); i += world_size_) mine.push_back(order[i]);
  return mine;
}

at::Tensor DistributedSampler::unshard(const at::Tensor& gathered) const {
  TORCH_CHECK(gathered.dim() >= 1 && gathered.size(0) == shard_size_ * world_size_, "DistributedSampler::unshard: ",
              "expected ", world_size_, " ranks × ", shard_size_, " rows, got a tensor of shape ", gathered.sizes());
  const int64_t kept = std::min(size_, shard_size_ * world_size_);
  // Position i of the epoch's order is row i / W of rank i % W's block.
  const at::Tensor positions = at::arange(kept, at::kLong);
  const at::Tensor rows = (positions % world_size_) * shard_size_ + positions.div(world_size_, "floor");
  return gathered.index_select(0, rows.to(gathered.device()));
}

}  // namespace tlora::dist
