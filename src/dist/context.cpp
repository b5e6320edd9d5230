#include "tlora/dist/context.h"

#include "backends.h"
#include "environment.h"
#include "errors.h"
#include "rendezvous.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/nn/module.h>

#include <map>
#include <mutex>
#include <set>
#include <utility>

namespace tlora::dist {

struct Context::State {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::chrono::milliseconds timeout{Options{}.timeout};
  // Null for a single process.
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  // Backends join the group on first use of their device type: every rank reaches that use at
  // the same collective, and a CUDA-only job never needs Gloo (nor a CPU job NCCL).
  mutable std::mutex mutex;
  mutable std::set<c10::DeviceType> joined;
  mutable int64_t barriers = 0;

  bool single() const { return !group; }
  std::string who() const { return "rank " + std::to_string(rank) + " of " + std::to_string(world_size); }
  c10d::ProcessGroup& group_for(const at::Tensor& tensor) const;
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) const;
};

namespace {

// Trainable parameters grouped by device type and dtype, in module order: one buffer per group.
// Keyed by the device type, not the device, so that the groups come in the same order on every
// rank when each rank has its own GPU.
std::map<std::pair<c10::DeviceType, at::ScalarType>, std::vector<at::Tensor>> trainable_groups(torch::nn::Module& m) {
  std::map<std::pair<c10::DeviceType, at::ScalarType>, std::vector<at::Tensor>> groups;
  for (const at::Tensor& p : m.parameters()) {
    if (p.requires_grad()) groups[{p.device().type(), p.scalar_type()}].push_back(p);
  }
  return groups;
}

at::Tensor flatten(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> flat;
  flat.reserve(tensors.size());
  for (const at::Tensor& t : tensors) flat.push_back(t.reshape(-1));
  return at::cat(flat);
}

// Copies consecutive slices of `buffer` into `targets`.
void unflatten_into(const at::Tensor& buffer, const std::vector<at::Tensor>& targets) {
  int64_t offset = 0;
  for (const at::Tensor& t : targets) {
    t.copy_(buffer.narrow(0, offset, t.numel()).view(t.sizes()));
    offset += t.numel();
  }
}

}  // namespace

bool has_backend(std::string_view name) {
  if (name == "gloo") return detail::have_gloo();
  if (name == "nccl") return detail::have_nccl();
  return false;
}

c10d::ProcessGroup& Context::State::group_for(const at::Tensor& tensor) const {
  TORCH_CHECK(tensor.is_cpu() || tensor.is_cuda(), "tlora::dist: ", who(), ": collectives take CPU (Gloo) or "
              "CUDA (NCCL) tensors, not ", tensor.device());
  const c10::DeviceType type = tensor.device().type();
  std::lock_guard<std::mutex> lock(mutex);
  if (!joined.count(type)) {
    const bool cuda = type == c10::DeviceType::CUDA;
    auto backend_store = c10::make_intrusive<c10d::PrefixStore>(cuda ? "nccl" : "gloo", store);
    c10::intrusive_ptr<c10d::Backend> backend;
    try {
      backend = cuda ? detail::make_nccl_backend(backend_store, rank, world_size, timeout)
                     : detail::make_gloo_backend(backend_store, rank, world_size, timeout);
    } catch (const std::exception& e) {
      TORCH_CHECK(false, "tlora::dist: ", who(), " could not set up the ", cuda ? "NCCL" : "Gloo",
                  " backend for ", tensor.device().type(), " tensors (timeout ", timeout.count() / 1000.0,
                  " s): ", detail::message_of(e));
    }
    group->setBackend(type, cuda ? c10d::ProcessGroup::BackendType::NCCL : c10d::ProcessGroup::BackendType::GLOO,
                      backend);
    joined.insert(type);
  }
  return *group;
}

void Context::State::wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) const {
  bool done = false;
  std::string why = "it did not finish in time";
  try {
    done = work->wait(timeout);
  } catch (const std::exception& e) {
    why = detail::message_of(e);
  }
  TORCH_CHECK(done, "tlora::dist: ", what, " failed on ", who(), " (a peer exited, or stalled past the ",
              timeout.count() / 1000.0, " s timeout): ", why);
}

Context::Context() : state_(std::make_shared<State>()) {}

Context::Context(std::shared_ptr<const State> state) : state_(std::move(state)) {}

Context Context::from_environment(const Options& options) {
  TORCH_CHECK(options.timeout.count() > 0, "tlora::dist: the timeout must be positive, not ",
              options.timeout.count(), " ms");
  auto state = std::make_shared<State>();
  state->timeout = options.timeout;
  const std::optional<detail::LaunchEnvironment> env = detail::read_launch_environment();
  if (env) {
    state->rank = env->rank;
    state->world_size = env->world_size;
    state->local_rank = env->local_rank;
  }
  if (env && env->world_size > 1) {
    state->store = detail::rendezvous(*env, options.timeout);
    state->group = c10::make_intrusive<c10d::ProcessGroup>(state->store, env->rank, env->world_size);
  }
  return Context(std::move(state));
}

int Context::rank() const { return state_->rank; }
int Context::world_size() const { return state_->world_size; }
int Context::local_rank() const { return state_->local_rank; }
std::chrono::milliseconds Context::timeout() const { return state_->timeout; }

void Context::broadcast_parameters(torch::nn::Module& module) const {
  if (state_->single()) return;
  at::NoGradGuard no_grad;
  for (auto& [key, params] : trainable_groups(module)) {
    std::vector<at::Tensor> buffer{flatten(params)};
    c10d::BroadcastOptions options;
    options.rootRank = 0;
    options.timeout = state_->timeout;
    state_->wait(state_->group_for(buffer[0]).broadcast(buffer, options), "broadcast_parameters");
    unflatten_into(buffer[0], params);
  }
}

void Context::all_reduce_gradients(torch::nn::Module& module) const {
  if (state_->single()) return;
  at::NoGradGuard no_grad;
  for (auto& [key, params] : trainable_groups(module)) {
    std::vector<at::Tensor> grads;
    grads.reserve(params.size());
    for (const at::Tensor& p : params) grads.push_back(p.grad().defined() ? p.grad() : at::zeros_like(p));
    std::vector<at::Tensor> buffer{flatten(grads)};
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::SUM;
    options.timeout = state_->timeout;
    state_->wait(state_->group_for(buffer[0]).allreduce(buffer, options), "all_reduce_gradients");
    buffer[0].div_(state_->world_size);
    for (at::Tensor& p : params) {
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    }
    std::vector<at::Tensor> targets;
    targets.reserve(params.size());
    for (const at::Tensor& p : params) targets.push_back(p.grad());
    unflatten_into(buffer[0], targets);
  }
}

at::Tensor Context::all_reduce_sum(const at::Tensor& tensor) const {
  if (state_->single()) return tensor.clone();
  std::vector<at::Tensor> buffer{tensor.detach().contiguous().clone()};
  c10d::AllreduceOptions options;
  options.reduceOp = c10d::ReduceOp::SUM;
  options.timeout = state_->timeout;
  state_->wait(state_->group_for(buffer[0]).allreduce(buffer, options), "all_reduce_sum");
  return buffer[0];
}

at::Tensor Context::all_gather(const at::Tensor& tensor) const {
  TORCH_CHECK(tensor.dim() >= 1, "tlora::dist: all_gather needs a tensor with a first dimension, not a 0-dim one");
  if (state_->single()) return tensor.clone();
  const int world = state_->world_size;
  c10d::AllgatherOptions options;
  options.timeout = state_->timeout;
  c10d::ProcessGroup& group = state_->group_for(tensor);

  // The first dimensions first, so that every rank sends a block of the largest size.
  std::vector<at::Tensor> size{at::full({1}, tensor.size(0), tensor.options().dtype(at::kLong))};
  std::vector<std::vector<at::Tensor>> sizes{std::vector<at::Tensor>(world)};
  for (auto& s : sizes[0]) s = at::empty_like(size[0]);
  state_->wait(group.allgather(sizes, size, options), "all_gather (sizes)");
  std::vector<int64_t> rows(world);
  for (int r = 0; r < world; ++r) rows[r] = sizes[0][r].item<int64_t>();
  const int64_t longest = *std::max_element(rows.begin(), rows.end());

  std::vector<int64_t> block_shape = tensor.sizes().vec();
  block_shape[0] = longest;
  std::vector<at::Tensor> block{at::zeros(block_shape, tensor.options())};
  block[0].narrow(0, 0, tensor.size(0)).copy_(tensor.detach());
  std::vector<std::vector<at::Tensor>> blocks{std::vector<at::Tensor>(world)};
  for (auto& b : blocks[0]) b = at::empty_like(block[0]);
  state_->wait(group.allgather(blocks, block, options), "all_gather");
  std::vector<at::Tensor> parts;
  parts.reserve(world);
  for (int r = 0; r < world; ++r) parts.push_back(blocks[0][r].narrow(0, 0, rows[r]));
  return at::cat(parts);
}

void Context::barrier() const {
  if (state_->single()) return;
  std::lock_guard<std::mutex> lock(state_->mutex);
  detail::store_barrier(*state_->store, state_->rank, state_->world_size, state_->barriers++, state_->timeout);
}

}  // namespace tlora::dist
