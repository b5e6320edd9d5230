// Patching a user's own LibTorch model, whose torch::nn::Linear layers are C++ members or live in
// a Sequential: the layers are adapted in place (weight = W0 + ΔW). Checked against a
// double-precision composition of W0 + ΔW written out per kind from the adapter's tensors.
#include "test_util.h"
#include "tolerance.h"
#include "tlora/adapters/host.h"
#include "tlora/io/checkpoint.h"
#include "tlora/adapters/inject.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adam.h>

#include <map>
#include <string>
#include <unistd.h>

namespace {

using tlora::AdapterKind;
using tlora::testing::contains;
using tlora::testing::error_of;

// A model written the usual LibTorch way: members registered in the constructor, and a
// Sequential whose forward calls its own copies of the layers.
struct UserNetImpl : torch::nn::Module {
  UserNetImpl()
      : fc1(register_module("fc1", torch::nn::Linear(6, 10))),
        head(register_module("head", torch::nn::Sequential(torch::nn::Linear(10, 4), torch::nn::Tanh(),
                                                           torch::nn::Linear(4, 3)))) {}
  at::Tensor forward(const at::Tensor& x) { return head->forward(at::relu(fc1(x))); }
  torch::nn::Linear fc1;
  torch::nn::Sequential head;
};
TORCH_MODULE(UserNet);

const std::vector<std::string> kLayers = {"fc1", "head.0", "head.2"};

UserNet make_net(c10::ScalarType dtype) {
  at::manual_seed(0);
  UserNet net;
  net->to(dtype);
  return net;
}

tlora::InjectConfig config(AdapterKind kind) {
  tlora::InjectConfig c;
  c.adapter.kind = kind;
  c.adapter.rank = 2;
  c.adapter.seed = 7;
  c.target_modules = {"fc1", "0", "2"};
  return c;
}

std::map<std::string, at::Tensor> by_name(const torch::nn::Module& m) {
  std::map<std::string, at::Tensor> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value();
  for (const auto& b : m.named_buffers()) out[b.key()] = b.value();
  return out;
}

// Random values for every trainable tensor, so that ΔW and every gradient are non-zero.
void randomize_adapters(torch::nn::Module& net) {
  c10::NoGradGuard no_grad;
  at::manual_seed(11);
  for (auto& p : net.parameters()) {
    if (p.requires_grad()) p.copy_(at::randn_like(p) * 0.5);
  }
  tlora::refresh_adapted_weights(net);
}

// ΔW of the adapter at `path`, written out from its tensors (`t`, whose trainable ones are the
// reference's own leaves).
at::Tensor reference_delta(AdapterKind kind, const std::string& a, std::map<std::string, at::Tensor>& t,
                           int64_t out, int64_t in) {
  if (kind == AdapterKind::TLoRA || kind == AdapterKind::LoRAXS) {
    return t[a + ".scale"] * t[a + ".up"].mm(t[a + ".core"]).mm(t[a + ".down"]);
  }
  if (kind == AdapterKind::LoRA) return t[a + ".lora_B"].mm(t[a + ".lora_A"]) * (1.0 / 2.0);  // lora_alpha (scale 1) / r
  EXPECT_EQ(kind, AdapterKind::VeRA);
  return t[a + ".lambda_b"].unsqueeze(1) * t[a + ".vera_B"].slice(0, 0, out).mm(
             t[a + ".lambda_d"].unsqueeze(1) * t[a + ".vera_A"].slice(1, 0, in));
}

// The net's output with every adapted weight composed as W0 + ΔW, and the leaves it used.
struct Reference {
  at::Tensor output;
  std::map<std::string, at::Tensor> leaves;
};

Reference reference(AdapterKind kind, const UserNet& net, const at::Tensor& x) {
  Reference r;
  std::map<std::string, at::Tensor> t;
  for (const auto& [name, tensor] : by_name(*net)) {
    t[name] = tensor.detach().clone().requires_grad_(tensor.requires_grad());
    if (tensor.requires_grad()) r.leaves[name] = t[name];
  }
  const auto layer = [&](const std::string& path, const at::Tensor& h) {
    const at::Tensor w0 = t[path + ".weight"];
    const at::Tensor w = w0 + reference_delta(kind, path + ".default", t, w0.size(0), w0.size(1));
    return at::linear(h, w, t[path + ".bias"]);
  };
  r.output = layer("head.2", at::tanh(layer("head.0", at::relu(layer("fc1", x)))));
  return r;
}

class InPlace : public testing::TestWithParam<AdapterKind> {};

TEST_P(InPlace, ForwardAndGradientsEqualTheComposedWeight) {
  UserNet net = make_net(at::kDouble);
  const auto base = by_name(*net);
  std::map<std::string, at::Tensor> base_copy;
  for (const auto& [k, v] : base) base_copy[k] = v.clone();

  const auto report = tlora::inject(*net, config(GetParam()));
  ASSERT_EQ(report.modules.size(), 3u);
  for (const auto& path : kLayers) {
    const auto module = net->named_modules()[path];
    EXPECT_NE(dynamic_cast<torch::nn::LinearImpl*>(module.get()), nullptr) << path << " stays the user's AdaptableLinear";
    EXPECT_TRUE(tlora::adapter_host(module)) << path;
  }
  randomize_adapters(*net);

  at::manual_seed(5);
  const at::Tensor x = at::randn({5, 6}, at::kDouble);
  const at::Tensor y = net->forward(x);
  Reference ref = reference(GetParam(), net, x);
  // float64 throughout: a few roundings of sums of at most 10 terms.
  const double tol = tlora::testing::rounding_tolerance(at::kDouble, ref.output.abs().max().item<double>(), 10, 4);
  EXPECT_TRUE(at::allclose(y, ref.output, 0, tol)) << (y - ref.output).abs().max();

  y.square().sum().backward();
  ref.output.square().sum().backward();
  ASSERT_FALSE(ref.leaves.empty());
  for (const auto& [name, leaf] : ref.leaves) {
    const at::Tensor grad = by_name(*net).at(name).grad();
    ASSERT_TRUE(grad.defined()) << name;
    const double g_tol = tlora::testing::rounding_tolerance(at::kDouble, leaf.grad().abs().max().item<double>(), 10, 8);
    EXPECT_TRUE(at::allclose(grad, leaf.grad(), 0, g_tol)) << name << ": " << (grad - leaf.grad()).abs().max();
  }
  for (const auto& [name, tensor] : base_copy) {
    EXPECT_TRUE(at::equal(by_name(*net).at(name), tensor)) << name << " (base) changed";
    EXPECT_FALSE(by_name(*net).at(name).requires_grad()) << name << " (base) is frozen";
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, InPlace,
                         testing::Values(AdapterKind::TLoRA, AdapterKind::LoRA, AdapterKind::VeRA, AdapterKind::LoRAXS),
                         [](const auto& info) { return std::string(tlora::to_string(info.param)); });

TEST(InPlaceTraining, LossFallsBaseUnchangedAndStaleWeightsRefused) {
  UserNet net = make_net(at::kFloat);
  tlora::inject(*net, config(AdapterKind::TLoRA));
  std::map<std::string, at::Tensor> base;
  for (const auto& [k, v] : by_name(*net)) {
    if (!v.requires_grad()) base[k] = v.clone();
  }
  // The target comes from a teacher with the same A and B and another core: reachable.
  UserNet teacher = make_net(at::kFloat);
  tlora::inject(*teacher, config(AdapterKind::TLoRA));
  randomize_adapters(*teacher);
  at::manual_seed(2);
  const at::Tensor x = at::randn({32, 6});
  const at::Tensor target = teacher->forward(x).detach();
  const std::vector<at::Tensor> trainable = tlora::trainable_parameters(*net);
  ASSERT_EQ(trainable.size(), 6u) << "M and α of three layers";
  torch::optim::Adam optimizer(trainable, torch::optim::AdamOptions(1e-2));
  const auto loss_of = [&] { return (net->forward(x) - target).square().mean(); };
  const double first = loss_of().item<double>();
  double last = first;
  for (int step = 0; step < 40; ++step) {
    optimizer.zero_grad();
    at::Tensor loss = loss_of();
    loss.backward();
    optimizer.step();
    tlora::refresh_adapted_weights(*net);
    last = loss.item<double>();
  }
  EXPECT_LT(last, 0.5 * first) << "the adapters learn";
  for (const auto& [k, v] : base) EXPECT_TRUE(at::equal(by_name(*net).at(k), v)) << k << " changed";

  optimizer.zero_grad();
  loss_of().backward();
  optimizer.step();  // no refresh: the next forward still sees the old weight
  EXPECT_TRUE(contains(error_of([&] { loss_of().backward(); }), "call tlora::refresh_adapted_weights(model)"));
}

TEST(InPlaceTraining, GradientsAccumulateOverSeveralBackwardPasses) {
  UserNet net = make_net(at::kDouble);
  tlora::inject(*net, config(AdapterKind::TLoRA));
  randomize_adapters(*net);
  const at::Tensor core = net->fc1->named_parameters()["default.core"];
  at::manual_seed(4);
  const at::Tensor a = at::randn({3, 6}, at::kDouble), b = at::randn({3, 6}, at::kDouble);
  net->forward(a).sum().backward();
  const at::Tensor ga = core.grad().clone();
  core.mutable_grad().zero_();
  net->forward(b).sum().backward();
  const at::Tensor gb = core.grad().clone();
  core.mutable_grad().zero_();
  net->forward(a).sum().backward();
  net->forward(b).sum().backward();
  EXPECT_TRUE(at::allclose(core.grad(), ga + gb, 0, 1e-12 * (ga.abs().max() + gb.abs().max()).item<double>()));
}

TEST(InPlaceLifecycle, SwitchDisableSaveLoadMergeUnload) {
  UserNet net = make_net(at::kDouble);
  at::manual_seed(5);
  const at::Tensor x = at::randn({4, 6}, at::kDouble);
  const at::Tensor base_out = net->forward(x);
  const int64_t base_params = net->parameters().size();
  tlora::inject(*net, config(AdapterKind::TLoRA));
  tlora::InjectConfig lora = config(AdapterKind::LoRA);
  lora.adapter_name = "other";
  tlora::inject(*net, lora);
  randomize_adapters(*net);
  const at::Tensor tlora_out = net->forward(x).detach();
  EXPECT_FALSE(at::allclose(tlora_out, base_out));
  {
    tlora::DisableAdapters off(*net);
    EXPECT_TRUE(at::equal(net->forward(x), base_out)) << "disabled: W0 itself";
  }
  tlora::set_active_adapter(*net, "other");
  const at::Tensor lora_out = net->forward(x).detach();
  EXPECT_FALSE(at::allclose(lora_out, tlora_out));
  tlora::set_active_adapter(*net, "default");
  EXPECT_TRUE(at::equal(net->forward(x), tlora_out));

  tlora::testing::TempDir dir;
  tlora::save_adapter(*net, dir.path());
  UserNet fresh = make_net(at::kDouble);
  tlora::load_adapter(*fresh, dir.path());
  EXPECT_TRUE(at::equal(fresh->forward(x), tlora_out)) << "reloaded into another instance of the model";
  ::unlink((dir.path() / tlora::kAdapterModelFile).c_str());
  ::unlink((dir.path() / tlora::kAdapterConfigFile).c_str());

  tlora::merge_and_unload(*net);
  EXPECT_TRUE(tlora::adapter_hosts(*net).empty());
  EXPECT_EQ(static_cast<int64_t>(net->parameters().size()), base_params) << "only the base is left";
  EXPECT_EQ(net->fc1->weight.data_ptr(), net->fc1->named_parameters()["weight"].data_ptr());
  const double tol = tlora::testing::rounding_tolerance(at::kDouble, tlora_out.abs().max().item<double>(), 10, 4);
  EXPECT_TRUE(at::allclose(net->forward(x), tlora_out, 0, tol)) << "merged: W0 + ΔW folded into the weight";
}

TEST(InPlaceLifecycle, WhatCannotBePatchedIsRefusedClearly) {
  UserNet net = make_net(at::kFloat);
  tlora::InjectConfig c = config(AdapterKind::TLoRA);
  c.target_modules = {"1"};  // the Tanh
  EXPECT_TRUE(contains(error_of([&] { tlora::inject(*net, c); }), "matched module 'head.1' is a torch::nn::TanhImpl, not a linear layer"));
  c = config(AdapterKind::TLoRA);
  c.adapter.dropout = 0.5;
  EXPECT_TRUE(contains(error_of([&] { tlora::inject(*net, c); }), "module 'fc1' is a torch::nn::Linear held by a C++ member"));
  EXPECT_TRUE(tlora::adapter_hosts(*net).empty()) << "a refusal changes nothing";
}

}  // namespace
