// One training step's batch split into parts that run side by side, one core each. On a CPU,
// a forward and backward split across cores as separate micro-batches, each on one intra-op
// thread, runs faster than the whole batch on all of them: every op of a small step pays for
// spreading its work over the threads and waiting for the slowest (MiniLM at 32×128 on 2 cores:
// 0.66 s a step against 0.83 s in bf16-mixed, 1.30 s against 1.52 s in float32; docs/benchmarks.md).
#pragma once

#include "tlora/export.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

TLORA_API_BEGIN
namespace tlora::train {

/// How many parts a batch of `rows` examples (or sequences) splits into on `threads` intra-op
/// threads: one per thread, at most one per row, and 1 on one thread or with `enabled` false.
int64_t batch_parts(int64_t rows, int64_t threads, bool enabled = true);

/// The rows [first, last) of part `part` of `parts` of a batch of `rows`: contiguous, in order,
/// sizes differing by at most one.
std::pair<int64_t, int64_t> part_rows(int64_t rows, int64_t part, int64_t parts);

/// Part k's share of the batch loss, built on the thread that runs part k. The shares must sum
/// to the batch loss (weight each part's mean by its share of the examples or tokens).
using PartLoss = std::function<at::Tensor(int64_t part)>;

/// The forward and backward of one batch as `parts` parts side by side: part_loss(0) and its
/// gradient on the calling thread, the others on parts − 1 worker threads kept for the process's
/// life (a worker done with its part takes the next waiting one), each with one intra-op thread. The gradients of the parts' losses with respect to the
/// trainable tensors of `params` are added to their .grad in part order, so the result does not
/// depend on which part finished first; frozen tensors are skipped. Each part starts with the
/// caller's thread-local state (grad mode and the like; hold an AutocastGuard inside part_loss,
/// as autocast should not cover the backward). Random streams that key on current_batch_part()
/// (the models' dropout, the adapters' dropout) draw the same masks whichever thread runs first.
/// Calls from several threads take turns. The split is exact only where the rows of a batch do
/// not meet before the loss (a transformer's rows do not; batch norm or in-batch negatives would).
/// Returns the sum of the shares, detached. Where it is not finite, no gradient is added (a
/// diverged batch leaves .grad as it was). With parts == 1: part_loss(0) and its backward on the
/// calling thread, as without this function.
at::Tensor split_backward(const std::vector<at::Tensor>& params, int64_t parts, const PartLoss& part_loss);

/// The part split_backward is running on this thread, or null outside one.
struct BatchPart {
  /// 0 … count − 1.
  int64_t index = 0;
  /// The number of parts of the batch.
  int64_t count = 1;
  /// Distinct for each split_backward call of the process.
  uint64_t generation = 0;
  /// Drawn for this part from the default CPU generator, in part order, before the parts start.
  uint64_t seed = 0;
  /// Seeds handed out by next_part_seed so far.
  uint64_t draws = 0;
};

/// The part running on this thread, or null.
BatchPart* current_batch_part();

/// The next seed of the current part's own sequence (a hash of its seed and draws), for random
/// draws that would otherwise take the default generator's next number, whose order between
/// threads is not fixed. Requires a current part.
uint64_t next_part_seed();

}  // namespace tlora::train
TLORA_API_END
