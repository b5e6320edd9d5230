// tlora-bench-dist: what data parallelism costs per step for TLoRA, LoRA and full fine-tuning
// of the same model: the gradient all-reduce (time and bytes) beside the forward and backward
// it follows. Launch several ranks with torchrun:
//   torchrun --nproc-per-node 2 --no-python tlora-bench-dist --json dist.json
// Rank 0 prints the table and writes the JSON.
#include "run_main.h"
#include "tlora/dist/context.h"
#include "tlora/adapters/inject.h"
#include "tlora/models/bert.h"
#include "tlora/models/loading.h"
#include "tlora/models/packaged.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Config {
  std::string model;
  std::vector<std::string> methods{"tlora", "lora", "full"};
  int64_t rank = 8;
  int64_t batch = 8;  // per rank
  int64_t sequence = 64;
  int steps = 10;  // at least 1
  int warmup = 2;
  int threads = 1;
  double timeout = 300;
  std::string json;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : (v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2);
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

nlohmann::json measure(const Config& cfg, const tlora::dist::Context& ctx, const std::string& method) {
  at::manual_seed(0);
  auto model = tlora::models::from_pretrained<tlora::models::BertForSequenceClassification>(cfg.model, {.seed = 0});
  if (method != "full") {
    tlora::InjectConfig inject;
    inject.adapter.kind = method == "tlora" ? tlora::AdapterKind::TLoRA : tlora::AdapterKind::LoRA;
    inject.adapter.rank = cfg.rank;
    inject.adapter.scale = method == "tlora" ? 1.0 : 2.0 * cfg.rank;  // LoRA: alpha = 2r
    inject.target_modules = {"query", "value"};
    inject.modules_to_save = {"classifier"};
    tlora::inject(*model, inject);
  } else {
    TORCH_CHECK(method == "full", "unknown method '", method, "' (tlora, lora, full)");
  }
  std::vector<at::Tensor> trainable;
  int64_t elements = 0, bytes = 0;
  for (const auto& p : model->parameters()) {
    if (!p.requires_grad()) continue;
    trainable.push_back(p);
    elements += p.numel();
    bytes += p.numel() * static_cast<int64_t>(p.element_size());
  }
  ctx.broadcast_parameters(*model);
  torch::optim::AdamW optimizer(trainable, torch::optim::AdamWOptions(1e-4));

  // Every rank its own synthetic batch, as with a sharded dataset.
  at::manual_seed(100 + ctx.rank());
  const int64_t vocab = model->config().vocab_size;
  std::vector<double> compute, comm;
  for (int step = 0; step < cfg.warmup + cfg.steps; ++step) {
    const at::Tensor ids = at::randint(1, vocab, {cfg.batch, cfg.sequence}, at::kLong);
    const at::Tensor labels = at::randint(0, 2, {cfg.batch}, at::kLong);
    auto start = Clock::now();
    optimizer.zero_grad();
    at::cross_entropy_loss(model->forward(ids), labels).backward();
    const double forward_backward = ms_since(start);
    ctx.barrier();  // so that the timed all-reduce does not include waiting for a slower rank
    start = Clock::now();
    ctx.all_reduce_gradients(*model);
    const double all_reduce = ms_since(start);
    optimizer.step();
    if (step >= cfg.warmup) {
      compute.push_back(forward_backward);
      comm.push_back(all_reduce);
    }
  }
  // The slowest rank's figures (a step waits for it); the fastest all-reduce shows the latency
  // floor when other processes compete for the cores.
  const at::Tensor figures = ctx.all_gather(
      at::tensor({median(compute), median(comm), *std::min_element(comm.begin(), comm.end())}, at::kDouble).view({1, 3}));
  const double compute_ms = figures.select(1, 0).max().item<double>();
  const double comm_ms = figures.select(1, 1).max().item<double>();
  const double comm_min_ms = figures.select(1, 2).max().item<double>();
  return {{"method", method},
          {"trainable_params", elements},
          {"all_reduce_bytes", bytes},
          {"forward_backward_ms", compute_ms},
          {"all_reduce_ms", comm_ms},
          {"all_reduce_min_ms", comm_min_ms},
          {"all_reduce_share", comm_ms / (comm_ms + compute_ms)},
          {"all_reduce_gb_per_s", comm_ms > 0 ? bytes / (comm_ms * 1e6) : 0.0}};
}

int run(int argc, char** argv) {
  Config cfg;
  cfg.model = tlora::models::default_model_dir().string();
  CLI::App app{"Per-step gradient all-reduce time and bytes for TLoRA, LoRA and full fine-tuning, launched with torchrun"};
  app.add_option("--model", cfg.model, "Hugging Face BERT folder (default: the MiniLM package)");
  app.add_option("--methods", cfg.methods, "any of tlora, lora, full")->delimiter(',');
  app.add_option("--rank", cfg.rank, "adapter rank for TLoRA and LoRA (on query and value)");
  app.add_option("--batch", cfg.batch, "sequences per rank and step");
  app.add_option("--sequence", cfg.sequence, "tokens per sequence");
  app.add_option("--steps", cfg.steps, "timed steps per method");
  app.add_option("--warmup", cfg.warmup, "untimed steps first");
  app.add_option("--threads", cfg.threads, "intra-op threads per rank");
  app.add_option("--timeout", cfg.timeout, "seconds before a collective gives up");
  app.add_option("--json", cfg.json, "write the results here (rank 0)");
  CLI11_PARSE(app, argc, argv);
  TORCH_CHECK(cfg.steps >= 1 && cfg.warmup >= 0, "tlora-bench-dist: --steps must be at least 1 and --warmup at least 0");

  at::set_num_threads(cfg.threads);
  const auto ctx = tlora::dist::Context::from_environment(
      {.timeout = std::chrono::milliseconds(static_cast<int64_t>(cfg.timeout * 1000))});
  nlohmann::json results = nlohmann::json::array();
  for (const std::string& method : cfg.methods) results.push_back(measure(cfg, ctx, method));
  if (!ctx.is_main()) return 0;

  fmt::print("{} ranks, batch {}x{} per rank, adapters r={} on query,value (+ classifier)\n", ctx.world_size(),
             cfg.batch, cfg.sequence, cfg.rank);
  fmt::print("{:<6} {:>12} {:>14} {:>12} {:>13} {:>9} {:>8}\n", "method", "trainable", "bytes/step", "fwd+bwd ms",
             "allreduce ms", "(min ms)", "share");
  for (const auto& r : results) {
    fmt::print("{:<6} {:>12} {:>14} {:>12.1f} {:>13.2f} {:>9.2f} {:>7.2f}%\n", r["method"].get<std::string>(),
               r["trainable_params"].get<int64_t>(), r["all_reduce_bytes"].get<int64_t>(),
               r["forward_backward_ms"].get<double>(), r["all_reduce_ms"].get<double>(),
               r["all_reduce_min_ms"].get<double>(), 100 * r["all_reduce_share"].get<double>());
  }
  if (!cfg.json.empty()) {
    const nlohmann::json out{{"benchmark", "tlora-bench-dist"},
                             {"world_size", ctx.world_size()},
                             {"backend", "gloo"},
                             {"model", cfg.model},
                             {"batch_per_rank", cfg.batch},
                             {"sequence", cfg.sequence},
                             {"adapter_rank", cfg.rank},
                             {"threads_per_rank", cfg.threads},
                             {"steps", cfg.steps},
                             {"results", results}};
    std::ofstream(cfg.json) << out.dump(2) << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return tlora::bench::run_main("tlora-bench-dist", run, argc, argv); }
