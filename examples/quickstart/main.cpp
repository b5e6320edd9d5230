// Quickstart: fine-tune a small MLP of TLoRALinear layers towards a teacher, then merge the
// adapters into the weights. It doubles as a smoke check: it exits non-zero if the loss does
// not fall or merging changes the model's outputs.
#include "tlora/adapters/tlora_linear.h"
#include "tlora/core/progress.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/gelu.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/randn.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr int64_t kInputs = 64;
constexpr int64_t kWidth = 256;
constexpr int64_t kOutputs = 64;
constexpr int64_t kBatch = 256;
constexpr int64_t kHeldOut = 4096;
constexpr int64_t kTeacherRank = 4;
// Size of the teacher's weight change relative to ‖W0‖ (Frobenius).
constexpr double kChange = 0.5;
// The smoke check's thresholds.
constexpr double kMinImprovement = 2.0;
constexpr double kMergeTolerance = 1e-4;

struct Config {
  int64_t steps = 300;
  double lr = 3e-2;
  int64_t rank = 16;
  uint64_t seed = 0;
  // The GEMMs here are too small to gain from threads, and OpenMP threads that contend with a
  // busy machine made a run 30x slower on 2 cores.
  int threads = 1;
};

// 64 → 256 → 256 → 64 with GELU between, every linear layer adapted by TLoRA.
class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t rank, uint64_t seed) : torch::nn::Module("Mlp") {
    const std::array<int64_t, 4> sizes{kInputs, kWidth, kWidth, kOutputs};
    for (size_t i = 0; i + 1 < sizes.size(); ++i) {
      // The name keys the random streams of A and B, so each layer gets its own projections
      // under the one seed, and matches the module path ("layers.0") as checkpoints expect.
      auto options = tlora::TLoRALinearOptions(sizes[i], sizes[i + 1], rank)
                         .seed(seed)
                         .name(fmt::format("layers.{}", i));
      layers.emplace_back(options);
      list_->push_back(layers.back());
    }
  }

  at::Tensor forward(at::Tensor x) {
    for (size_t i = 0; i < layers.size(); ++i) {
      x = layers[i](x);
      if (i + 1 < layers.size()) x = at::gelu(x);
    }
    return x;
  }

  std::vector<tlora::TLoRALinear> layers;

 private:
  // Registers the layers so that parameters() and the printout see them as "layers.<i>".
  torch::nn::ModuleList list_ = register_module("layers", torch::nn::ModuleList());
};
TORCH_MODULE(Mlp);

// The frozen model with a rank-4 change ΔW* = B·(U·Vᵀ)·A added to every weight, run with
// plain at::linear. The change uses each layer's own fixed A and B on purpose: TLoRA moves a
// weight only within B·M·A, so a change there is one it can learn exactly, and the loss can
// fall by orders of magnitude (a random U·Vᵀ would lie almost entirely outside that span).
struct Teacher {
  std::vector<at::Tensor> weights, biases, changes;

  explicit Teacher(const Mlp& model) {
    for (const auto& layer : model->layers) {
      const int64_t r = layer->tlora_options().rank();
      const int64_t k = std::min(kTeacherRank, r);
      at::Tensor change = layer->up.mm(at::randn({r, k})).mm(at::randn({k, r})).mm(layer->down);
      change.mul_(kChange * layer->weight.norm().item<double>() / change.norm().item<double>());
      weights.push_back(layer->weight + change);
      biases.push_back(layer->bias);
      changes.push_back(change);
    }
  }

  at::Tensor forward(at::Tensor x) const {
    for (size_t i = 0; i < weights.size(); ++i) {
      x = at::linear(x, weights[i], biases[i]);
      if (i + 1 < weights.size()) x = at::gelu(x);
    }
    return x;
  }
};

double mse(const at::Tensor& y, const at::Tensor& target) {
  return (y - target).pow(2).mean().item<double>();
}

std::string grouped(int64_t n) {
  std::string digits = std::to_string(n);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(i, ",");
  return digits;
}

int run(const Config& cfg) {
  const auto start = std::chrono::steady_clock::now();
  if (cfg.threads > 0) at::set_num_threads(cfg.threads);
  // W0 and the data come from LibTorch's global generator; A and B from (seed, layer name).
  at::manual_seed(cfg.seed);

  Mlp model(cfg.rank, cfg.seed);
  const Teacher teacher(model);
  std::ostringstream structure;
  structure << *model;
  fmt::print("{}\n", structure.str());

  std::vector<at::Tensor> trainable;
  int64_t trainable_count = 0, total_count = 0;
  for (const auto& p : model->parameters()) {
    total_count += p.numel();
    if (p.requires_grad()) {
      trainable.push_back(p);
      trainable_count += p.numel();
    }
  }
  fmt::print("trainable params: {} || all params: {} || trainable%: {:.3f}\n",
             grouped(trainable_count), grouped(total_count),
             100.0 * trainable_count / total_count);

  const at::Tensor x_eval = at::randn({kHeldOut, kInputs});
  at::Tensor y_eval;
  double frozen_loss = 0;
  {
    at::NoGradGuard no_grad;
    y_eval = teacher.forward(x_eval);
    frozen_loss = mse(model(x_eval), y_eval);  // M = 0 at the start, so this is the frozen model
  }
  fmt::print("held-out loss of the frozen model: {:.4e}\n\n", frozen_loss);

  // No weight decay: the target change is exactly reachable and decay would only bias M.
  torch::optim::AdamW optimizer(trainable, torch::optim::AdamWOptions(cfg.lr).weight_decay(0.0));
  const int64_t log_every = std::max<int64_t>(cfg.steps / 10, 1);
  std::vector<std::string> log;
  std::fflush(stdout);  // so that a log of stdout and stderr shows the above before the bar
  tlora::ProgressBar bar("train", cfg.steps);
  double window_sum = 0;
  int64_t window = 0;
  for (int64_t step = 1; step <= cfg.steps; ++step) {
    // Linear decay to zero: Adam at a constant rate stalls at a noise floor set by lr.
    optimizer.param_groups()[0].options().set_lr(cfg.lr * (1.0 - double(step - 1) / cfg.steps));
    const at::Tensor x = at::randn({kBatch, kInputs});
    at::Tensor target;
    {
      at::NoGradGuard no_grad;
      target = teacher.forward(x);
    }
    at::Tensor loss = (model(x) - target).pow(2).mean();
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();

    const double value = loss.item<double>();
    window_sum += value;
    ++window;
    if (step == 1 || step % log_every == 0 || step == cfg.steps) {
      log.push_back(fmt::format("  step {:>5}  train loss {:.4e}", step, window_sum / window));
      window_sum = 0;
      window = 0;
    }
    bar.update(step, fmt::format("loss {:.3e}", value));
  }
  bar.finish();
  // Printed after the bar rather than beside it, so the redrawn bar line is not overwritten.
  fmt::print("train loss (mean since the previous line):\n");
  for (const auto& line : log) fmt::print("{}\n", line);

  at::NoGradGuard no_grad;
  model->eval();
  // At this batch size Auto would already evaluate the adapter as W0 + ΔW, the same sum that
  // merge() forms; factored evaluation makes the merge check compare two different computations.
  for (auto& layer : model->layers) layer->set_strategy(tlora::Strategy::Factored);
  const at::Tensor y_unmerged = model(x_eval);
  const double tuned_loss = mse(y_unmerged, y_eval);
  const double improvement = frozen_loss / tuned_loss;
  fmt::print("\nheld-out loss: frozen {:.4e} -> tuned {:.4e} ({:.3g}x lower)\n", frozen_loss,
             tuned_loss, improvement);
  fmt::print("per layer: alpha, and how close ΔW = α·B·M·A came to the teacher's ΔW*\n");
  for (size_t i = 0; i < model->layers.size(); ++i) {
    const auto& layer = model->layers[i];
    const double error = (layer->delta_weight() - teacher.changes[i]).norm().item<double>() /
                         teacher.changes[i].norm().item<double>();
    fmt::print("  {}  alpha {:+.4f}  |ΔW - ΔW*| / |ΔW*| = {:.2e}\n", layer->tlora_options().name(),
               layer->scale.item<double>(), error);
  }

  std::vector<at::Tensor> originals;
  for (auto& layer : model->layers) {
    originals.push_back(layer->weight.clone());
    layer->merge();
  }
  const double merge_diff = (model(x_eval) - y_unmerged).abs().max().item<double>();
  fmt::print("\nmerged every layer: max |merged - unmerged| output = {:.2e}\n", merge_diff);
  bool restored = true;
  for (size_t i = 0; i < model->layers.size(); ++i) {
    model->layers[i]->unmerge();
    restored = restored && model->layers[i]->weight.equal(originals[i]);
  }
  fmt::print("unmerged: weights restored bit-exactly: {}\n", restored ? "yes" : "no");

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<std::string> failures;
  if (!(improvement >= kMinImprovement)) {
    failures.push_back(fmt::format("loss fell only {:.2f}x (< {}x)", improvement, kMinImprovement));
  }
  if (!(merge_diff <= kMergeTolerance)) {
    failures.push_back(fmt::format("merged outputs differ by {:.2e} (> {:.0e})", merge_diff,
                                   kMergeTolerance));
  }
  if (!restored) failures.push_back("unmerge did not restore the original weights");
  for (const auto& failure : failures) fmt::print("FAILED: {}\n", failure);
  fmt::print("\n{} in {:.1f} s\n", failures.empty() ? "OK" : "FAILED", seconds);
  return failures.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  CLI::App app{"Fine-tune a small MLP with TLoRA adapters on a synthetic regression task."};
  app.add_option("--steps", cfg.steps, "training steps")->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--lr", cfg.lr, "peak AdamW learning rate (decays linearly to 0)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--rank", cfg.rank, "adapter rank r (r*r + 1 trainable parameters per layer)")
      ->check(CLI::Range(int64_t{1}, kInputs))->capture_default_str();
  app.add_option("--seed", cfg.seed, "seed of the weights, the projections and the data")
      ->capture_default_str();
  app.add_option("--threads", cfg.threads, "CPU threads (0: LibTorch's default)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  return run(cfg);
}
