// One process of a data-parallel group for dist_test, which starts several over loopback (or
// one without WORLD_SIZE, the single-process reference). Modes:
//   train OUT STEPS GLOBAL_BATCH  AdamW steps on a TLoRA-adapted tiny encoder; writes its
//                                 trainable parameters, evaluation logits and correct count to
//                                 OUT/rank<R>.safetensors
//   join [HOLD_MS]                rendezvous, one all-reduce and a barrier; prints the sum of
//                                 ranks, then keeps the store alive HOLD_MS longer
//   die | stall                   one all-reduce, after which rank 1 exits (die) or sleeps (stall)
//                                 while the others try a second one
// The timeout of every collective is TLORA_TEST_TIMEOUT_MS. Errors go to stderr, exit code 2.
#include "tiny_model.h"
#include "tlora/dist/context.h"
#include "tlora/dist/sampler.h"
#include "tlora/adapters/inject.h"
#include "tlora/io/safetensors.h"

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <unistd.h>

namespace {

using tlora::dist::Context;

constexpr int64_t kSamples = 24;
constexpr int64_t kEvalSamples = 23;  // odd: two ranks need padding, which unshard drops

int train(const Context& ctx, const std::string& out, int64_t steps, int64_t global_batch) {
  TORCH_CHECK(global_batch % ctx.world_size() == 0, "global batch ", global_batch, " not divisible by ", ctx.world_size());
  at::manual_seed(0);  // the frozen base is equal on every rank, as when loaded from a file
  tlora::testing::TinyEncoder model(2, 16, 24);
  tlora::InjectConfig config;
  config.adapter.rank = 4;
  config.target_modules = {"query", "value"};
  config.modules_to_save = {"classifier"};
  tlora::inject(*model, config);

  std::vector<at::Tensor> trainable = tlora::trainable_parameters(*model);
  {
    // Replicas that start apart: broadcast_parameters must make them rank 0's.
    at::NoGradGuard no_grad;
    for (auto& p : trainable) p.add_(0.25 * ctx.rank());
  }
  ctx.broadcast_parameters(*model);

  at::manual_seed(1);
  const at::Tensor x = at::randn({kSamples, 5, 16});
  const at::Tensor y = at::randint(0, 2, {kSamples}, at::kLong);
  const at::Tensor x_eval = at::randn({kEvalSamples, 5, 16});
  const at::Tensor y_eval = at::randint(0, 2, {kEvalSamples}, at::kLong);

  torch::optim::AdamW optimizer(trainable, torch::optim::AdamWOptions(1e-2).weight_decay(0.01));
  tlora::dist::DistributedSampler sampler(kSamples, ctx.world_size(), ctx.rank(), {.shuffle = true, .seed = 7});
  const int64_t local_batch = global_batch / ctx.world_size();
  int64_t step = 0;
  for (int64_t epoch = 0; step < steps; ++epoch) {
    const std::vector<int64_t> mine = sampler.indices(epoch);
    for (size_t start = 0; start + local_batch <= mine.size() && step < steps; start += local_batch, ++step) {
      const at::Tensor idx = at::tensor(std::vector<int64_t>(mine.begin() + start, mine.begin() + start + local_batch));
      optimizer.zero_grad();
      at::cross_entropy_loss(model->forward(x.index_select(0, idx)), y.index_select(0, idx)).backward();
      ctx.all_reduce_gradients(*model);
      optimizer.step();
    }
  }

  model->eval();
  at::NoGradGuard no_grad;
  tlora::dist::DistributedSampler eval_sampler(kEvalSamples, ctx.world_size(), ctx.rank(), {.shuffle = false});
  const at::Tensor idx = at::tensor(eval_sampler.indices(0));
  const at::Tensor logits = eval_sampler.unshard(ctx.all_gather(model->forward(x_eval.index_select(0, idx))));
  const at::Tensor correct = ctx.all_reduce_sum(
      (model->forward(x_eval.index_select(0, idx)).argmax(1) == y_eval.index_select(0, idx)).sum());

  std::map<std::string, at::Tensor> tensors{{"eval_logits", logits}, {"correct", correct}};
  for (const auto& item : model->named_parameters()) {
    if (item.value().requires_grad()) tensors[item.key()] = item.value();
  }
  tlora::safetensors::save(out + "/rank" + std::to_string(ctx.rank()) + ".safetensors", tensors);
  return 0;
}

int run(int argc, char** argv) {
  TORCH_CHECK(argc >= 2, "usage: tlora-test-dist-worker train|join|die|stall ...");
  const std::string mode = argv[1];
  tlora::dist::Options options;
  if (const char* ms = std::getenv("TLORA_TEST_TIMEOUT_MS")) options.timeout = std::chrono::milliseconds(std::atoll(ms));
  const Context ctx = Context::from_environment(options);
  if (mode == "train") {
    TORCH_CHECK(argc == 5, "usage: tlora-test-dist-worker train OUT STEPS GLOBAL_BATCH");
    return train(ctx, argv[2], std::atoll(argv[3]), std::atoll(argv[4]));
  }
  const at::Tensor sum = ctx.all_reduce_sum(at::full({1}, ctx.rank(), at::kLong));
  if (mode == "join") {
    ctx.barrier();
    std::printf("sum of ranks %lld\n", static_cast<long long>(sum.item<int64_t>()));
    std::fflush(stdout);
    if (argc > 2) std::this_thread::sleep_for(std::chrono::milliseconds(std::atoll(argv[2])));
    return 0;
  }
  TORCH_CHECK(mode == "die" || mode == "stall", "unknown mode ", mode);
  if (ctx.rank() == 1) {
    if (mode == "die") ::_exit(3);
    std::this_thread::sleep_for(std::chrono::minutes(2));
  }
  ctx.all_reduce_sum(at::ones({4}));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "tlora-test-dist-worker error: %s\n", e.what_without_backtrace());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tlora-test-dist-worker error: %s\n", e.what());
  }
  return 2;
}
