// Patching a model: matching rules, freezing, reports, errors, switching, merging, unloading.
#include "test_util.h"
#include "tiny_model.h"
#include "tlora/adapters/inject.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include <set>

namespace {

using tlora::AdapterKind;
using tlora::InjectConfig;
using tlora::testing::TinyEncoder;

using tlora::testing::error_of;

InjectConfig qv(AdapterKind kind = AdapterKind::TLoRA, int64_t rank = 4) {
  InjectConfig c;
  c.adapter.kind = kind;
  c.adapter.rank = rank;
  c.target_modules = {"query", "value"};
  return c;
}

std::set<std::string> trainable_names(torch::nn::Module& m) {
  std::set<std::string> names;
  for (const auto& p : m.named_parameters()) {
    if (p.value().requires_grad()) names.insert(p.key());
  }
  return names;
}

at::Tensor input() {
  at::manual_seed(3);
  return at::randn({2, 5, 16});
}

TEST(Inject, PatchesQueryAndValueAndFreezesTheRest) {
  TinyEncoder model;
  const auto report = tlora::inject(*model, qv());
  ASSERT_EQ(report.modules.size(), 4u);
  EXPECT_EQ(report.modules[0].path, "encoder.layer.0.attention.self.query");
  EXPECT_EQ(report.modules[1].path, "encoder.layer.0.attention.self.value");
  EXPECT_EQ(trainable_names(*model),
            (std::set<std::string>{"encoder.layer.0.attention.self.query.default.core",
                                   "encoder.layer.0.attention.self.query.default.scale",
                                   "encoder.layer.0.attention.self.value.default.core",
                                   "encoder.layer.0.attention.self.value.default.scale",
                                   "encoder.layer.1.attention.self.query.default.core",
                                   "encoder.layer.1.attention.self.query.default.scale",
                                   "encoder.layer.1.attention.self.value.default.core",
                                   "encoder.layer.1.attention.self.value.default.scale"}));
  EXPECT_EQ(report.trainable_params, 4 * (4 * 4 + 1));
  EXPECT_NE(report.summary().find("trainable params: 68 || all params: "), std::string::npos);
  EXPECT_NE(report.table().find("encoder.layer.1.attention.self.value"), std::string::npos);
}

TEST(Inject, AdapterIsLive) {
  TinyEncoder model;
  const at::Tensor x = input();
  const at::Tensor before = model(x);
  tlora::inject(*model, qv());
  EXPECT_TRUE(at::equal(model(x), before)) << "a zero core leaves the outputs unchanged";
  {
    c10::NoGradGuard g;
    model->blocks[1]->attention->self->value->adapter("default")->named_parameters()["core"].fill_(0.3);
  }
  EXPECT_FALSE(at::allclose(model(x), before));
  model(x).sum().backward();
  EXPECT_TRUE(model->blocks[1]->attention->self->value->adapter("default")->named_parameters()["core"].grad().defined());
  EXPECT_FALSE(model->classifier->weight.grad().defined());
}

// Parameter counts follow each method's formula.
TEST(Inject, TrainableCountsFollowTheFormulas) {
  const int64_t r = 4, h = 16;  // q and v are 16→16, in 2 layers
  const std::vector<std::pair<AdapterKind, int64_t>> expected{
      {AdapterKind::TLoRA, 4 * (r * r + 1)},
      {AdapterKind::LoRA, 4 * r * (h + h)},
      {AdapterKind::VeRA, 4 * (h + r)},
      {AdapterKind::LoRAXS, 4 * r * r}};
  for (const auto& [kind, count] : expected) {
    TinyEncoder model;
    EXPECT_EQ(tlora::inject(*model, qv(kind, r)).trainable_params, count) << tlora::to_string(kind);
  }
  // Mixed shapes: the FFN's intermediate (16→24) and output (24→16) layers.
  TinyEncoder model;
  InjectConfig c = qv(AdapterKind::LoRA, r);
  c.target_modules = {"intermediate", "layer.0.output"};
  EXPECT_EQ(tlora::inject(*model, c).trainable_params, 2 * r * (16 + 24) + r * (24 + 16));
}

TEST(Inject, MatchingRules) {
  auto paths = [](const InjectConfig& c) {
    TinyEncoder model;
    std::vector<std::string> out;
    for (const auto& m : tlora::inject(*model, c).modules) out.push_back(m.path);
    return out;
  };
  InjectConfig c = qv();
  c.target_modules = {"self.query"};
  EXPECT_EQ(paths(c).size(), 2u);
  c.target_modules = {"uery"};  // a suffix that does not start after a '.' does not match
  EXPECT_NE(error_of([&] { paths(c); }).find("no module matched"), std::string::npos);
  c.target_modules = {};
  c.target_regex = R"(encoder\.layer\.\d+\.attention\.(self\.key|output))";
  EXPECT_EQ(paths(c), (std::vector<std::string>{"encoder.layer.0.attention.self.key", "encoder.layer.0.attention.output",
                                                "encoder.layer.1.attention.self.key", "encoder.layer.1.attention.output"}));
  c = qv();
  c.layers_to_transform = {1};
  EXPECT_EQ(paths(c), (std::vector<std::string>{"encoder.layer.1.attention.self.query", "encoder.layer.1.attention.self.value"}));
  c = qv();
  c.exclude_modules = {"layer.0.attention.self.value"};
  c.exclude_regex = R"(.*1\.attention\.self\.query)";
  EXPECT_EQ(paths(c), (std::vector<std::string>{"encoder.layer.0.attention.self.query", "encoder.layer.1.attention.self.value"}));
}

TEST(Inject, PerModuleOverrides) {
  TinyEncoder model;
  InjectConfig c = qv();
  c.rank_pattern = {{"layer.1.attention.self.value", 2}, {"value", 3}};
  c.scale_pattern = {{"query", 0.5}};
  const auto report = tlora::inject(*model, c);
  EXPECT_EQ(report.modules[0].rank, 4);
  EXPECT_EQ(report.modules[0].scale, 0.5);
  EXPECT_EQ(report.modules[1].rank, 3);
  EXPECT_EQ(report.modules[3].rank, 2);
  EXPECT_EQ(model->blocks[0]->attention->self->query->adapter("default")->named_parameters()["scale"].item<double>(), 0.5);
  TinyEncoder other;
  c.rank_pattern = {{"nothing_like_this", 2}};
  EXPECT_NE(error_of([&] { tlora::inject(*other, c); }).find("rank_pattern 'nothing_like_this' matched no adapted module"), std::string::npos);
}

TEST(Inject, ModulesToSaveStayTrainable) {
  TinyEncoder model;
  InjectConfig c = qv();
  c.modules_to_save = {"classifier"};
  const auto report = tlora::inject(*model, c);
  EXPECT_EQ(report.saved_modules, std::vector<std::string>{"classifier"});
  EXPECT_TRUE(model->classifier->weight.requires_grad() && model->classifier->bias.requires_grad());
  EXPECT_EQ(report.trainable_params, 4 * 17 + 16 * 2 + 2);
  c.modules_to_save = {"head"};
  TinyEncoder other;
  EXPECT_NE(error_of([&] { tlora::inject(*other, c); }).find("modules_to_save entry 'head' matched no module"), std::string::npos);
}

TEST(Inject, ErrorsLeaveTheModelUnchanged) {
  TinyEncoder model;
  InjectConfig c = qv();
  c.target_modules = {"self"};  // a SelfAttention, not a linear layer
  EXPECT_NE(error_of([&] { tlora::inject(*model, c); }).find("matched module 'encoder.layer.0.attention.self' is a"), std::string::npos);
  c = qv();
  c.adapter.rank = 17;
  EXPECT_NE(error_of([&] { tlora::inject(*model, c); }).find("rank must be in [1, min(in, out)] = [1, 16], got 17"), std::string::npos);
  EXPECT_TRUE(model->blocks[0]->attention->self->query->adapter_names().empty());
  EXPECT_TRUE(model->classifier->weight.requires_grad()) << "nothing was frozen";
  c.target_modules = {};
  EXPECT_NE(error_of([&] { tlora::inject(*model, c); }).find("no targets given"), std::string::npos);
}

// A foreign torch::nn::Linear is swapped for a tlora::AdaptableLinear when only the registry holds it, and
// patched in place when a member or a container holds it (tests/in_place_test.cpp has the maths).
struct ForeignNet : torch::nn::Module {
  ForeignNet() : fc(register_module("fc", torch::nn::Linear(8, 8))) {
    register_module("free", torch::nn::Linear(8, 8));  // held by the registry only
  }
  torch::nn::Linear fc;
};

TEST(Inject, ForeignLinearSwappedWhenLiveElsePatchedInPlace) {
  ForeignNet net;
  InjectConfig c = qv();
  c.target_modules = {"fc", "free"};
  const at::Tensor weight = net.named_parameters()["free.weight"];
  tlora::inject(net, c);
  auto host = std::dynamic_pointer_cast<tlora::AdaptableLinearImpl>(net.named_children()["free"]);
  ASSERT_TRUE(host);
  EXPECT_EQ(host->weight.data_ptr(), weight.data_ptr()) << "the weights are shared, not copied";
  EXPECT_EQ(host->adapter_names(), std::vector<std::string>{"default"});
  EXPECT_EQ(net.named_children()["fc"].get(), net.fc.ptr().get()) << "the member's AdaptableLinear stays in place";
  const auto patched = tlora::adapter_host(net.fc.ptr());
  ASSERT_TRUE(patched);
  EXPECT_EQ(patched->adapter_names(), std::vector<std::string>{"default"});

  torch::nn::Sequential seq(torch::nn::Linear(4, 4));
  c.target_modules = {"0"};
  tlora::inject(*seq, c);
  EXPECT_TRUE(tlora::adapter_host(seq->ptr(0)));
  c.adapter.dropout = 0.1;
  c.adapter_name = "dropped";
  EXPECT_NE(error_of([&] { tlora::inject(*seq, c); }).find("adapter dropout cannot apply"), std::string::npos);
}

TEST(Inject, SeveralNamedAdaptersSwitchWithoutCopies) {
  TinyEncoder model;
  const at::Tensor x = input();
  const at::Tensor base = model(x);
  InjectConfig a = qv();
  tlora::inject(*model, a);
  InjectConfig b = qv(AdapterKind::LoRA);
  b.adapter_name = "other";
  tlora::inject(*model, b);
  auto q = model->blocks[0]->attention->self->query;
  EXPECT_EQ(q->active_adapter(), "default");
  const void* weight_ptr = q->weight.data_ptr();
  {
    c10::NoGradGuard g;
    q->adapter("default")->named_parameters()["core"].fill_(0.2);
    q->adapter("other")->named_parameters()["lora_B"].fill_(0.1);
  }
  const at::Tensor with_default = model(x);
  tlora::set_active_adapter(*model, "other");
  const at::Tensor with_other = model(x);
  EXPECT_FALSE(at::allclose(with_default, with_other));
  EXPECT_TRUE(q->adapter("other")->named_parameters()["lora_A"].requires_grad());
  EXPECT_FALSE(q->adapter("default")->named_parameters()["core"].requires_grad());
  tlora::set_active_adapter(*model, "default");
  EXPECT_TRUE(at::equal(model(x), with_default));
  EXPECT_EQ(q->weight.data_ptr(), weight_ptr);
  {
    tlora::DisableAdapters off(*model);
    EXPECT_TRUE(at::equal(model(x), base));
  }
  EXPECT_TRUE(at::equal(model(x), with_default));
  tlora::set_active_adapter(*model, "");
  EXPECT_TRUE(at::equal(model(x), base));
  tlora::delete_adapter(*model, "other");
  EXPECT_EQ(q->adapter_names(), std::vector<std::string>{"default"});
  EXPECT_NE(error_of([&] { tlora::set_active_adapter(*model, "other"); }).find("no module has an adapter named 'other'"), std::string::npos);
}

TEST(Inject, MergeAndUnloadAndUnload) {
  const at::Tensor x = input();
  for (AdapterKind kind : {AdapterKind::TLoRA, AdapterKind::LoRA, AdapterKind::VeRA, AdapterKind::LoRAXS}) {
    SCOPED_TRACE(tlora::to_string(kind));
    // Two identical adapted models: one is merged, the other unloaded.
    auto make = [&] {
      at::manual_seed(11);
      TinyEncoder model;
      tlora::inject(*model, qv(kind));
      c10::NoGradGuard g;
      for (auto& p : model->parameters()) {
        if (p.requires_grad()) p.add_(at::randn_like(p) * 0.1);
      }
      return model;
    };
    TinyEncoder merged = make(), unloaded = make();
    const at::Tensor adapted = merged(x);
    at::Tensor base;
    {
      tlora::DisableAdapters off(*unloaded);
      base = unloaded(x);
    }
    EXPECT_FALSE(at::allclose(adapted, base));
    tlora::merge_and_unload(*merged);
    EXPECT_TRUE(merged->blocks[0]->attention->self->query->adapter_names().empty());
    EXPECT_LT((merged(x) - adapted).abs().max().item<double>(), tlora::testing::tiny_encoder_tolerance(adapted));
    tlora::unload(*unloaded);
    EXPECT_TRUE(at::equal(unloaded(x), base));
  }
}

}  // namespace
