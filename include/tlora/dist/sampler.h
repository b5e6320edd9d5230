// Which dataset indices each rank of a data-parallel group takes, epoch by epoch.
#pragma once

#include "tlora/export.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

TLORA_API_BEGIN
namespace tlora::dist {

/// How DistributedSampler orders and splits the dataset.
struct SamplerOptions {
  /// Permute the dataset every epoch (with seed + epoch); otherwise keep its order.
  bool shuffle = true;
  /// Seed of the permutations; must be equal on every rank.
  uint64_t seed = 0;
  /// Drop the tail that does not fill every rank instead of padding it.
  bool drop_last = false;
};

/// torch.utils.data.DistributedSampler's rule, index for index: each epoch, one order of the
/// dataset, equal on every rank (torch's randperm from a CPU generator seeded with seed + epoch,
/// or 0..size-1 without shuffle); padded to a multiple of world_size by repeating its beginning
/// (or cut to one with drop_last); rank r takes positions r, r + W, r + 2W, ... of it. So the
/// shards are disjoint apart from the padding, every rank takes the same number of indices, and
/// the i-th local batch of b indices on every rank together form the i-th global batch of W·b
/// indices of a single process that walks the same order.
class DistributedSampler {
 public:
  /// A sampler over `size` indices for `rank` of `world_size`; refuses size < 0, world_size < 1
  /// and rank outside [0, world_size), and with drop_last a dataset smaller than world_size.
  DistributedSampler(int64_t size, int world_size, int rank, SamplerOptions options = {});

  /// This rank's indices for `epoch`, shard_size() of them.
  std::vector<int64_t> indices(int64_t epoch) const;
  /// Indices per rank and epoch, equal on every rank.
  int64_t shard_size() const { return shard_size_; }
  /// From per-rank results gathered in rank order (Context::all_gather of each rank's results
  /// for indices(epoch), shard_size() rows each), the rows in the epoch's order, padding
  /// dropped: what one process walking that order would have produced.
  at::Tensor unshard(const at::Tensor& gathered) const;

 private:
  std::vector<int64_t> epoch_order(int64_t epoch) const;

  int64_t size_;
  int world_size_;
  int rank_;
  SamplerOptions options_;
  int64_t shard_size_;
};

}  // namespace tlora::dist
TLORA_API_END
