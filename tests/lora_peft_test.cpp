// The `lora` adapter kind against Hugging Face PEFT's LoRA: the same tiny encoder, the same
// weights, the same input, compared to what PEFT computed (tests/fixtures/peft_lora, written by
// tools/peft_lora_fixture.py with PEFT's LoraConfig(r=4, lora_alpha=8,
// target_modules=["query", "value"], lora_dropout=0.0), all in float64).
#include "tiny_model.h"
#include "tlora/adapters/inject.h"
#include "tlora/io/safetensors.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>

namespace {

using tlora::testing::TinyEncoder;
using Tensors = std::map<std::string, at::Tensor>;

const std::string kDir = std::string(TLORA_FIXTURE_DIR) + "/peft_lora/";

const nlohmann::json& config() {
  static const nlohmann::json c = [] {
    std::ifstream in(kDir + "config.json");
    EXPECT_TRUE(in.good()) << "cannot read " << kDir << "config.json";
    return nlohmann::json::parse(in);
  }();
  return c;
}
const Tensors& base_weights() {
  static const Tensors t = tlora::safetensors::load(kDir + "base_model.safetensors");
  return t;
}
const Tensors& reference() {
  static const Tensors t = tlora::safetensors::load(kDir + "reference.safetensors");
  return t;
}
const at::Tensor& peft(const std::string& key) {
  const auto it = reference().find(key);
  if (it == reference().end()) throw std::runtime_error("reference.safetensors has no '" + key + "'");
  return it->second;
}

std::vector<std::string> adapted_paths() { return config().at("adapted_paths").get<std::vector<std::string>>(); }

// rtol 1e-10 in double; the atol only covers entries that are zero up to rounding.
constexpr double kRtol = 1e-10, kAtol = 1e-13;

// Checks `actual` against PEFT's `expected` and logs the largest absolute difference.
void expect_close(const at::Tensor& actual, const at::Tensor& expected, const std::string& what) {
  ASSERT_TRUE(actual.defined()) << what << " is undefined";
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  ASSERT_EQ(actual.scalar_type(), at::kDouble) << what;
  ASSERT_EQ(expected.scalar_type(), at::kDouble) << what;
  const double diff = (actual - expected).abs().max().item<double>();
  const double scale = expected.abs().max().item<double>();
  std::cout << "  max |tlora - peft| " << what << ": " << diff << " (max |peft| " << scale << ")\n";
  ::testing::Test::RecordProperty("max_abs_diff " + what, std::to_string(diff));
  EXPECT_TRUE(at::allclose(actual, expected, kRtol, kAtol))
      << what << ": max abs difference " << diff << " (max |peft| " << scale << ")";
}

std::shared_ptr<tlora::AdaptableLinearImpl> host(torch::nn::Module& model, const std::string& path) {
  auto modules = model.named_modules();
  auto* m = modules.find(path);
  if (m == nullptr) throw std::runtime_error("no module '" + path + "'");
  auto h = std::dynamic_pointer_cast<tlora::AdaptableLinearImpl>(*m);
  if (!h) throw std::runtime_error("'" + path + "' is not a tlora::AdaptableLinear");
  return h;
}

// TinyEncoder in float64 holding the fixture's base weights (PEFT's model before get_peft_model).
TinyEncoder base_model() {
  TinyEncoder model;
  model->to(at::kDouble);
  c10::NoGradGuard g;
  auto params = model->named_parameters();
  std::set<std::string> ours, theirs;
  for (const auto& p : params) ours.insert(p.key());
  for (const auto& [k, v] : base_weights()) theirs.insert(k);
  EXPECT_EQ(ours, theirs) << "the Python model's state dict has our parameter names";
  for (const auto& [k, v] : base_weights()) {
    at::Tensor* p = params.find(k);
    if (p == nullptr) continue;
    EXPECT_EQ(p->sizes(), v.sizes()) << k;
    p->copy_(v);
  }
  return model;
}

tlora::InjectConfig peft_config() {
  tlora::InjectConfig c;
  c.adapter.kind = tlora::AdapterKind::LoRA;
  c.adapter.rank = config().at("r").get<int64_t>();
  c.adapter.scale = config().at("lora_alpha").get<double>();
  c.adapter.dropout = config().at("lora_dropout").get<double>();
  c.target_modules = config().at("target_modules").get<std::vector<std::string>>();
  return c;
}

// The injected model with PEFT's lora_A and lora_B copied into every adapter.
TinyEncoder peft_model(tlora::InjectReport* report = nullptr) {
  TinyEncoder model = base_model();
  const tlora::InjectReport r = tlora::inject(*model, peft_config());
  if (report) *report = r;
  c10::NoGradGuard g;
  for (const auto& path : adapted_paths()) {
    auto params = host(*model, path)->adapter("default")->named_parameters();
    params["lora_A"].copy_(peft(path + ".lora_A"));
    params["lora_B"].copy_(peft(path + ".lora_B"));
  }
  return model;
}

TEST(LoRAvsPEFT, FixtureIsWhatWeExpect) {
  EXPECT_EQ(config().at("r"), 4);
  EXPECT_EQ(config().at("lora_alpha"), 8);
  EXPECT_EQ(config().at("dtype"), "float64");
  EXPECT_EQ(config().at("trainable_params"), 2 * 2 * 4 * (16 + 16));
  std::cout << "  fixture: torch " << config().at("versions").at("torch").get<std::string>() << ", peft "
            << config().at("versions").at("peft").get<std::string>() << "\n";
}

// The C++ TinyEncoder computes what the Python model does: checked without adapters, so that
// any difference in the adapted comparison is the adapter's.
TEST(LoRAvsPEFT, BaseModelMatchesThePythonModel) {
  TinyEncoder model = base_model();
  expect_close(model(peft("input")), peft("base_output"), "base output");
}

TEST(LoRAvsPEFT, InjectionMatchesPEFT) {
  TinyEncoder model = base_model();
  const at::Tensor x = peft("input");
  const at::Tensor before = model(x).detach();
  const tlora::InjectReport report = tlora::inject(*model, peft_config());
  EXPECT_EQ(report.trainable_params, config().at("trainable_params").get<int64_t>());
  EXPECT_EQ(report.all_params, config().at("all_params").get<int64_t>());
  std::vector<std::string> paths;
  for (const auto& m : report.modules) {
    paths.push_back(m.path);
    EXPECT_EQ(m.rank, 4);
    EXPECT_EQ(m.scale, 8.0);
  }
  EXPECT_EQ(paths, adapted_paths());
  // PEFT's init_lora_weights=True: A ~ kaiming_uniform_(a=√5) = U(-1/√in, 1/√in), B = 0, so the
  // fresh adapter leaves the outputs unchanged. Our A comes from our own generator, not torch's.
  for (const auto& path : adapted_paths()) {
    auto params = host(*model, path)->adapter("default")->named_parameters();
    const at::Tensor& a = params["lora_A"];
    const at::Tensor& b = params["lora_B"];
    EXPECT_EQ(a.sizes(), peft(path + ".lora_A").sizes()) << path;
    EXPECT_EQ(b.sizes(), peft(path + ".lora_B").sizes()) << path;
    EXPECT_EQ(a.scalar_type(), at::kDouble);
    const double bound = 1.0 / std::sqrt(double(a.size(1)));
    EXPECT_LE(a.abs().max().item<double>(), bound) << path;
    EXPECT_LE(peft(path + ".lora_A").abs().max().item<double>(), bound) << path;
    EXPECT_GT(a.abs().max().item<double>(), 0.5 * bound) << path;
    EXPECT_EQ(b.abs().max().item<double>(), 0.0) << path;
  }
  EXPECT_TRUE(at::equal(model(x), before));
}

TEST(LoRAvsPEFT, ForwardAndGradientsMatchPEFT) {
  tlora::InjectReport report;
  TinyEncoder model = peft_model(&report);
  EXPECT_EQ(report.trainable_params, config().at("trainable_params").get<int64_t>());
  const at::Tensor x = peft("input").clone().requires_grad_(true);
  const at::Tensor out = model(x);
  expect_close(out, peft("output"), "output");
  EXPECT_FALSE(at::allclose(out, peft("base_output"))) << "the adapter has an effect";
  (out * peft("R")).sum().backward();
  expect_close(x.grad(), peft("input.grad"), "input.grad");
  for (const auto& path : adapted_paths()) {
    auto params = host(*model, path)->adapter("default")->named_parameters();
    for (const char* name : {"lora_A", "lora_B"}) {
      expect_close(params[name].grad(), peft(path + "." + name + ".grad"), path + "." + name + ".grad");
    }
  }
  // Only the adapters were trainable, as in PEFT.
  for (const auto& p : model->named_parameters()) {
    const bool adapter = p.key().find(".default.lora_") != std::string::npos;
    EXPECT_EQ(p.value().requires_grad(), adapter) << p.key();
  }
}

TEST(LoRAvsPEFT, MergeMatchesPEFT) {
  TinyEncoder model = peft_model();
  const at::Tensor x = peft("input");
  const at::Tensor adapted = model(x).detach();
  for (const auto& path : adapted_paths()) {
    auto h = host(*model, path);
    expect_close(h->weight.detach() + h->adapter("default")->delta_weight(), peft(path + ".merged_weight"),
                 path + " W0 + delta_weight()");
  }
  tlora::merge_and_unload(*model);
  for (const auto& path : adapted_paths()) {
    expect_close(host(*model, path)->weight.detach(), peft(path + ".merged_weight"), path + " merged weight");
  }
  expect_close(model(x), peft("output"), "merged output");
  expect_close(adapted, peft("output"), "adapted output before merging");
}

}  // namespace
