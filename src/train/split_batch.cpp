#include "tlora/train/split_batch.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/TensorOperators.h>
#include <ATen/ThreadLocalState.h>
#include <c10/core/thread_pool.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/autograd.h>

#include <dlfcn.h>

#include <atomic>
#include <cmath>
#include <exception>
#include <memory>
#include <mutex>

namespace tlora::train {
namespace {

thread_local BatchPart* current_part = nullptr;
std::atomic<uint64_t> generations{0};

// Sets the thread's current part while it lives.
class PartScope {
 public:
  explicit PartScope(BatchPart* part) : previous_(current_part) { current_part = part; }
  ~PartScope() { current_part = previous_; }
  PartScope(const PartScope&) = delete;
  PartScope& operator=(const PartScope&) = delete;

 private:
  BatchPart* previous_;
};

// SplitMix64's finaliser: consecutive inputs give unrelated outputs.
uint64_t mix(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The calling thread's OpenMP and MKL thread counts. at::set_num_threads sets them too, but also
// the process-wide count and, each time, empties oneDNN's cache of compiled kernels (every
// bfloat16 product would be compiled again each step). Looked up at run time, as LibTorch brings
// its own OpenMP and MKL (MKL's C entry point: its lower-case name is the Fortran one, which takes
// a pointer); where it has no OpenMP, LibTorch's own setter does.
void set_thread_count(int threads) {
  using OmpSet = void (*)(int);
  using MklSet = int (*)(int);
  static const auto omp = reinterpret_cast<OmpSet>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  static const auto mkl = reinterpret_cast<MklSet>(dlsym(RTLD_DEFAULT, "MKL_Set_Num_Threads_Local"));
  if (omp == nullptr) {
    at::set_num_threads(threads);
    return;
  }
  omp(threads);
  if (mkl != nullptr) mkl(threads);
}

// One intra-op thread on the calling thread while it lives.
class SingleThreaded {
 public:
  SingleThreaded() : previous_(at::get_num_threads()) { set_thread_count(1); }
  ~SingleThreaded() { set_thread_count(previous_); }
  SingleThreaded(const SingleThreaded&) = delete;
  SingleThreaded& operator=(const SingleThreaded&) = delete;

 private:
  int previous_;
};

// The threads that run parts 1, 2, …, kept for the process's life: LibTorch's set-up of a new
// thread (on its first op) goes through at::set_num_threads, so it empties oneDNN's cache once per
// worker instead of once per step. One split step at a time uses them.
std::mutex pool_mutex;
std::unique_ptr<c10::ThreadPool> pool;

c10::ThreadPool& workers(int64_t count) {
  if (!pool || pool->size() < static_cast<size_t>(count))
    pool = std::make_unique<c10::ThreadPool>(static_cast<int>(count), -1, [] {
      at::get_num_threads();  // LibTorch's own set-up of this thread first
      set_thread_count(1);
    });
  return *pool;
}

std::vector<uint64_t> draw_part_seeds(int64_t parts) {
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  auto* cpu = at::check_generator<at::CPUGeneratorImpl>(generator);
  std::vector<uint64_t> seeds(static_cast<size_t>(parts));
  for (auto& s : seeds) s = cpu->random64();
  return seeds;
}

}  // namespace

int64_t batch_parts(int64_t rows, int64_t threads, bool enabled) {
  TORCH_CHECK(rows >= 1, "batch_parts: the batch must have at least one row, got ", rows);
  TORCH_CHECK(threads >= 1, "batch_parts: threads must be at least 1, got ", threads);
  return enabled ? std::min(rows, threads) : 1;
}

std::pair<int64_t, int64_t> part_rows(int64_t rows, int64_t part, int64_t parts) {
  TORCH_CHECK(parts >= 1 && parts <= rows, "part_rows: ", parts, " parts of a batch of ", rows, " rows");
  TORCH_CHECK(part >= 0 && part < parts, "part_rows: part ", part, " of ", parts);
  const int64_t base = rows / parts, extra = rows % parts;
  const int64_t first = part * base + std::min(part, extra);
  return {first, first + base + (part < extra ? 1 : 0)};
}

at::Tensor split_backward(const std::vector<at::Tensor>& params, int64_t parts, const PartLoss& part_loss) {
  TORCH_CHECK(parts >= 1, "split_backward: parts must be at least 1, got ", parts);
  if (parts == 1) {
    const at::Tensor loss = part_loss(0);
    if (std::isfinite(loss.item<double>())) loss.backward();
    return loss.detach();
  }
  std::vector<at::Tensor> trained;
  for (const at::Tensor& p : params)
    if (p.requires_grad()) trained.push_back(p);
  const std::vector<uint64_t> seeds = draw_part_seeds(parts);
  const uint64_t generation = ++generations;
  std::vector<at::Tensor> losses(static_cast<size_t>(parts));
  std::vector<std::vector<at::Tensor>> grads(static_cast<size_t>(parts));
  const at::ThreadLocalState state;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(parts));
  const auto run = [&](int64_t k) {
    try {
      const at::ThreadLocalStateGuard guard(state);
      BatchPart part{k, parts, generation, seeds[static_cast<size_t>(k)], 0};
      const PartScope scope(&part);
      const at::Tensor loss = part_loss(k);
      TORCH_CHECK(loss.numel() == 1, "split_backward: part ", k, "'s loss has ", loss.numel(),
                  " elements, expected a scalar");
      if (!trained.empty() && loss.requires_grad())
        grads[static_cast<size_t>(k)] =
            torch::autograd::grad({loss}, trained, {}, /*retain_graph=*/false, /*create_graph=*/false,
                                  /*allow_unused=*/true);
      losses[static_cast<size_t>(k)] = loss.detach();
    } catch (...) {
      errors[static_cast<size_t>(k)] = std::current_exception();
    }
  };
  {
    // Part 0 on the calling thread, the others on the pool's threads, one intra-op thread each.
    const std::lock_guard<std::mutex> lock(pool_mutex);
    c10::ThreadPool& pool_threads = workers(parts - 1);
    for (int64_t k = 1; k < parts; ++k) pool_threads.run([&run, k] { run(k); });
    {
      const SingleThreaded single;
      run(0);
    }
    pool_threads.waitWorkComplete();
  }
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  at::Tensor total = losses[0];
  for (size_t k = 1; k < losses.size(); ++k) total = total + losses[k];
  if (!std::isfinite(total.item<double>())) return total;
  for (size_t i = 0; i < trained.size(); ++i) {
    at::Tensor sum;
    for (const auto& g : grads)
      if (!g.empty() && g[i].defined()) sum = sum.defined() ? sum + g[i] : g[i].clone(at::MemoryFormat::Contiguous);
    if (!sum.defined()) continue;
    at::Tensor& grad = trained[i].mutable_grad();
    if (grad.defined()) {
      grad.add_(sum);
    } else {
      grad = sum;
    }
  }
  return total;
}

BatchPart* current_batch_part() { return current_part; }

uint64_t next_part_seed() {
  TORCH_CHECK(current_part != nullptr, "next_part_seed: no batch part runs on this thread");
  return mix(current_part->seed + 0x9e3779b97f4a7c15ULL * ++current_part->draws);
}

}  // namespace tlora::train
