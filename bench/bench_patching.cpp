// tlora-bench-patching: what patching a user's own model costs. One training step (forward,
// backward, optimizer step) of a stack of feed-forward blocks written the usual LibTorch way
// (torch::nn::Linear members, adapted in place: weight = W0 + ΔW, refreshed every step), of the
// same stack built from tlora::AdaptableLinear (the adapter applied in forward), and of the frozen stack
// alone (the floor). Ratios are measured in one run; README.md describes the output.

#include "machine.h"
#include "run_main.h"
#include "tlora/adapters/host.h"
#include "tlora/adapters/adaptable_linear.h"
#include "tlora/adapters/inject.h"

#include <ATen/Parallel.h>
#include <ATen/ops/gelu.h>
#include <ATen/ops/randn.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// A feed-forward block whose layers are C++ members, as users write them; `Layer` is
// torch::nn::Linear or tlora::AdaptableLinear.
template <class Layer>
struct Block : torch::nn::Module {
  Block(int64_t dim, int64_t hidden)
      : up(register_module("up", Layer(dim, hidden))), down(register_module("down", Layer(hidden, dim))) {}
  at::Tensor forward(const at::Tensor& x) { return x + down->forward(at::gelu(up->forward(x))); }
  Layer up, down;
};

template <class Layer>
struct Stack : torch::nn::Module {
  Stack(int64_t layers, int64_t dim, int64_t hidden) {
    for (int64_t i = 0; i < layers; ++i) {
      blocks.push_back(register_module("blocks_" + std::to_string(i), std::make_shared<Block<Layer>>(dim, hidden)));
    }
  }
  at::Tensor forward(at::Tensor x) {
    for (auto& b : blocks) x = b->forward(x);
    return x;
  }
  std::vector<std::shared_ptr<Block<Layer>>> blocks;
};

struct Settings {
  int64_t tokens = 4096, dim = 384, hidden = 1536, layers = 2, rank = 32;
  int warmup = 3, steps = 20, threads = 2;
};

// Median seconds of one training step.
double time_steps(const Settings& s, const std::function<void()>& step) {
  for (int i = 0; i < s.warmup; ++i) step();
  std::vector<double> seconds;
  for (int i = 0; i < s.steps; ++i) {
    const auto start = Clock::now();
    step();
    seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  std::nth_element(seconds.begin(), seconds.begin() + seconds.size() / 2, seconds.end());
  return seconds[seconds.size() / 2];
}

// One step of `model`: the input requires grad (as a block inside a network does), the adapter
// parameters (if any) are stepped by AdamW, and `after_step` runs after the optimizer.
template <class Model>
double time_model(const Settings& s, Model& model, const std::function<void()>& after_step) {
  const std::vector<at::Tensor> trainable = tlora::trainable_parameters(model);
  at::manual_seed(1);
  const at::Tensor x = at::randn({s.tokens, s.dim}).requires_grad_();
  std::unique_ptr<torch::optim::AdamW> optimizer;
  if (!trainable.empty()) optimizer = std::make_unique<torch::optim::AdamW>(trainable, torch::optim::AdamWOptions(1e-3));
  return time_steps(s, [&] {
    if (optimizer) optimizer->zero_grad();
    model.forward(x).square().mean().backward();
    if (optimizer) optimizer->step();
    after_step();
  });
}

template <class Layer>
std::shared_ptr<Stack<Layer>> frozen_stack(const Settings& s) {
  at::manual_seed(0);
  auto stack = std::make_shared<Stack<Layer>>(s.layers, s.dim, s.hidden);
  for (auto& p : stack->parameters()) p.requires_grad_(false);
  return stack;
}

tlora::InjectConfig tlora_config(const Settings& s) {
  tlora::InjectConfig c;
  c.adapter.rank = s.rank;
  c.target_modules = {"up", "down"};
  return c;
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

int run(int argc, char** argv) {
  CLI::App app{"Training-step cost of TLoRA on a user's torch::nn::Linear model (patched in place) "
               "against a tlora::AdaptableLinear model and the frozen model"};
  Settings s;
  std::string json_path;
  app.add_option("--tokens", s.tokens, "rows of the input (batch × sequence)")->check(CLI::PositiveNumber);
  app.add_option("--dim", s.dim, "model width")->check(CLI::PositiveNumber);
  app.add_option("--hidden", s.hidden, "feed-forward width")->check(CLI::PositiveNumber);
  app.add_option("--layers", s.layers, "feed-forward blocks")->check(CLI::PositiveNumber);
  app.add_option("--rank", s.rank, "TLoRA rank")->check(CLI::PositiveNumber);
  app.add_option("--steps", s.steps, "timed steps (the median is reported)")->check(CLI::PositiveNumber);
  app.add_option("--threads", s.threads, "torch threads")->check(CLI::PositiveNumber);
  app.add_option("--json", json_path, "also write the figures to this file");
  CLI11_PARSE(app, argc, argv);
  at::set_num_threads(s.threads);

  auto frozen = frozen_stack<torch::nn::Linear>(s);
  const double base = time_model(s, *frozen, [] {});
  auto hosted = frozen_stack<tlora::AdaptableLinear>(s);
  tlora::inject(*hosted, tlora_config(s));
  const double host = time_model(s, *hosted, [] {});
  auto patched = frozen_stack<torch::nn::Linear>(s);
  tlora::inject(*patched, tlora_config(s));
  const double in_place = time_model(s, *patched, [&] { tlora::refresh_adapted_weights(*patched); });

  fmt::print("CPU {} ({} threads), load average {}\n", tlora::bench::cpu_model(), s.threads, load_average());
  fmt::print("{} blocks of {}→{}→{}, {} tokens, TLoRA r={} on every linear layer; median of {} steps\n",
             s.layers, s.dim, s.hidden, s.dim, s.tokens, s.rank, s.steps);
  fmt::print("{:<28} {:>10} {:>12}\n", "", "ms/step", "× frozen");
  fmt::print("{:<28} {:>10.1f} {:>12.2f}\n", "frozen model", 1e3 * base, 1.0);
  fmt::print("{:<28} {:>10.1f} {:>12.2f}\n", "tlora::AdaptableLinear host", 1e3 * host, host / base);
  fmt::print("{:<28} {:>10.1f} {:>12.2f}\n", "torch::nn::Linear in place", 1e3 * in_place, in_place / base);
  fmt::print("in place / host: {:.2f}\n", in_place / host);
  if (!json_path.empty()) {
    const nlohmann::json out = {{"cpu", tlora::bench::cpu_model()}, {"threads", s.threads},
                                {"load_average", load_average()}, {"tokens", s.tokens}, {"dim", s.dim},
                                {"hidden", s.hidden}, {"layers", s.layers}, {"rank", s.rank},
                                {"seconds", {{"frozen", base}, {"host", host}, {"in_place", in_place}}}};
    std::ofstream(json_path) << out.dump(2) << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return tlora::bench::run_main("tlora-bench-patching", run, argc, argv); }
