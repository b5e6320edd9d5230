// A downstream program as a new user writes it, against the installed package and linking only
// tlora::core: its own model with torch::nn::Linear members, patched by inject, trained, saved,
// reloaded into a fresh instance and merged. Exits 1, saying what failed, when any step does not hold.
#include <tlora/adapters/host.h>
#include <tlora/adapters/inject.h>
#include <tlora/io/checkpoint.h>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adamw.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

namespace {

struct Net : torch::nn::Module {
  Net() : fc1(register_module("fc1", torch::nn::Linear(16, 32))), fc2(register_module("fc2", torch::nn::Linear(32, 4))) {}
  at::Tensor forward(const at::Tensor& x) { return fc2(at::relu(fc1(x))); }
  torch::nn::Linear fc1, fc2;
};

std::shared_ptr<Net> make_net() {
  at::manual_seed(0);  // the same base weights every time, as when loaded from a file
  return std::make_shared<Net>();
}

int failures = 0;
void check(bool ok, const char* what) {
  std::printf("consumer: %-58s %s\n", what, ok ? "ok" : "FAILED");
  failures += ok ? 0 : 1;
}

}  // namespace

int main() {
  auto net = make_net();
  std::map<std::string, at::Tensor> base;
  for (const auto& p : net->named_parameters()) base[p.key()] = p.value().clone();

  tlora::InjectConfig config;
  config.adapter.rank = 4;
  config.target_modules = {"fc1", "fc2"};
  const tlora::InjectReport report = tlora::inject(*net, config);
  std::printf("%s\n", report.table().c_str());

  // A task the adapter can learn: match a teacher that has the same A and B and another core.
  auto teacher = make_net();
  tlora::inject(*teacher, config);
  {
    at::NoGradGuard no_grad;
    for (auto& p : tlora::trainable_parameters(*teacher)) p.normal_(0.0, 0.3);
    tlora::refresh_adapted_weights(*teacher);
  }
  at::manual_seed(1);
  const at::Tensor x = at::randn({64, 16});
  const at::Tensor target = teacher->forward(x).detach();

  torch::optim::AdamW optimizer(tlora::trainable_parameters(*net), torch::optim::AdamWOptions(2e-2));
  double first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    optimizer.zero_grad();
    at::Tensor loss = (net->forward(x) - target).square().mean();
    loss.backward();
    optimizer.step();
    tlora::refresh_adapted_weights(*net);
    (step == 0 ? first : last) = loss.item<double>();
  }
  std::printf("consumer: loss %.4f -> %.4f\n", first, last);
  check(last < 0.5 * first, "the loss falls");
  bool unchanged = true;
  for (const auto& p : net->named_parameters()) {
    if (base.count(p.key())) unchanged = unchanged && at::equal(p.value(), base[p.key()]);
  }
  check(unchanged, "the base weights are bit-for-bit unchanged");

  const char* tmp = std::getenv("TMPDIR");
  const std::string dir = std::string(tmp ? tmp : "/tmp") + "/tlora-consumer-adapter";
  tlora::save_adapter(*net, dir);
  auto reloaded = make_net();
  tlora::load_adapter(*reloaded, dir);
  const at::Tensor trained = net->forward(x).detach();
  check(at::equal(reloaded->forward(x), trained), "a fresh model with the saved adapter computes the same");

  tlora::merge_and_unload(*reloaded);
  const bool plain = tlora::adapter_hosts(*reloaded).empty() && reloaded->parameters().size() == base.size();
  check(plain, "merge_and_unload leaves plain torch::nn::Linear layers");
  // Merging adds the same ΔW to W0 that the in-place weight held: the same bits.
  check(at::equal(reloaded->forward(x), trained), "the merged model computes the same");
  return failures == 0 ? 0 : 1;
}
