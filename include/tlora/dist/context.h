// Data parallelism over LibTorch's c10d: a process group joined from torchrun's environment,
// with the few collectives that adapter training needs.
#pragma once

#include "tlora/export.h"

#include <ATen/core/Tensor.h>

#include <chrono>
#include <memory>
#include <string_view>

namespace torch::nn {
class Module;
}

TLORA_API_BEGIN
namespace tlora::dist {

/// How a Context joins its group and how long it waits.
struct Options {
  /// Limit on the rendezvous and on every collective: when a peer died or stalls, the call
  /// throws after at most this long instead of hanging.
  std::chrono::milliseconds timeout = std::chrono::seconds(300);
};

/// Whether this build of tlora has the c10d backend `name`: "gloo" (CPU tensors) or "nccl"
/// (CUDA tensors); decided when tlora was configured.
bool has_backend(std::string_view name);

/// One process's place in a data-parallel group. Rank 0 hosts the TCPStore (unless torchrun's
/// agent already does) and every rank checks at rendezvous that all agree on WORLD_SIZE.
/// Collectives must be called in the same order on every rank; CPU tensors travel over Gloo,
/// CUDA tensors over NCCL. A failed or timed-out collective throws a c10::Error naming the
/// collective, the rank and the timeout. A single-process Context (the default) has no store
/// and its collectives are the identity, so training code runs the same either way.
class Context {
 public:
  /// A group of one process.
  Context();

  /// Joins the group that RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT describe
  /// (as torchrun sets them); without WORLD_SIZE (or with WORLD_SIZE=1), a group of one.
  /// Refuses missing or garbled values and RANK ≥ WORLD_SIZE, naming the variable.
  static Context from_environment(const Options& options = {});

  /// This process's index in [0, world_size()).
  int rank() const;
  /// Number of processes in the group.
  int world_size() const;
  /// This process's index on its machine (LOCAL_RANK, 0 for a single process): its GPU.
  int local_rank() const;
  /// True on rank 0, the process that alone writes logs, checkpoints and results.
  bool is_main() const { return rank() == 0; }
  /// The limit on each collective.
  std::chrono::milliseconds timeout() const;

  /// Copies rank 0's trainable parameters (those that require grad) to every rank, as one
  /// flattened buffer, so that all replicas start equal.
  void broadcast_parameters(torch::nn::Module& module) const;
  /// Replaces the gradient of every trainable parameter by its average over the ranks, all
  /// reduced as one flattened buffer (per dtype and device). A parameter without a gradient
  /// counts as zeros and receives the average.
  void all_reduce_gradients(torch::nn::Module& module) const;
  /// The element-wise sum of `tensor` over the ranks (for counts and loss sums).
  at::Tensor all_reduce_sum(const at::Tensor& tensor) const;
  /// Every rank's `tensor` concatenated along dim 0 in rank order; the first dimension may
  /// differ between ranks, the others may not.
  at::Tensor all_gather(const at::Tensor& tensor) const;
  /// Returns when every rank has reached it.
  void barrier() const;

 private:
  struct State;
  explicit Context(std::shared_ptr<const State> state);
  std::shared_ptr<const State> state_;
};

}  // namespace tlora::dist
TLORA_API_END
