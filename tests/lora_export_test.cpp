// export_lora: TLoRA written as a standard LoRA. Checked against the adapter's own ΔW, and
// against the real consumers — PEFT on transformers' models and llama.cpp on the packaged SmolLM2
// GGUF — through fixtures tools/export_fixtures.py writes from this test's exports (run with
// TLORA_EXPORT_FIXTURE_DIR set, the test writes them there).
#include "packaged_model.h"
#include "test_util.h"
#include "tolerance.h"
#include "tlora/gguf/file.h"
#include "tlora/adapters/inject.h"
#include "tlora/models/lora_export.h"
#include "tlora/models/bert.h"
#include "tlora/models/llama.h"
#include "tlora/models/loading.h"
#include "tlora/core/random.h"
#include "tlora/io/safetensors.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <string>

namespace {

namespace models = tlora::models;
namespace fs = std::filesystem;
using tlora::testing::contains;
using tlora::testing::error_of;
using Tensors = std::map<std::string, at::Tensor>;

const std::string kFixtures = TLORA_FIXTURE_DIR;
const std::vector<std::string> kDecoderTargets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};


// Random trained-looking values for every adapter parameter, from Philox streams keyed by the
// parameter's name: the same on every CPU and kernel (LibTorch's normal_ is not).
void randomize(torch::nn::Module& model, double std) {
  at::NoGradGuard no_grad;
  for (auto& p : model.named_parameters()) {
    if (!p.value().requires_grad()) continue;
    p.value().copy_(tlora::philox_normal(p.value().sizes(), std, 42, tlora::stream_id(p.key()), p.value().scalar_type()));
  }
}

tlora::InjectConfig tlora_config(std::vector<std::string> targets, int64_t rank) {
  tlora::InjectConfig c;
  c.adapter.rank = rank;
  c.adapter.seed = 7;
  c.target_modules = std::move(targets);
  return c;
}

// An empty folder under the test's temporary directory, or under $TLORA_EXPORT_FIXTURE_DIR.
fs::path out_dir(const std::string& name) {
  const char* fixture = std::getenv("TLORA_EXPORT_FIXTURE_DIR");
  const std::string base = fixture ? fixture : ::testing::TempDir() + "tlora_export_test";
  return fs::path(base) / name;
}

// The exported tensors are the fixture's (which the consumers were run on), up to the rounding
// of A' = M·A and B' = α·B, which depends on the CPU's kernels.
void expect_same_tensors(const Tensors& exported, const Tensors& fixture) {
  ASSERT_EQ(exported.size(), fixture.size());
  for (const auto& [key, t] : fixture) {
    const at::Tensor& e = exported.at(key);
    ASSERT_EQ(e.sizes(), t.sizes()) << key;
    EXPECT_LE((e - t).abs().max().item<double>(), tlora::testing::float32_tolerance(t, 64, 2)) << key;
  }
}

Tensors gguf_tensors(const fs::path& file) {
  const tlora::gguf::File f = tlora::gguf::File::open(file);
  Tensors out;
  for (const auto& info : f.tensors()) out[info.name] = f.load(info.name);
  return out;
}

// Each exported B'·A' is the adapter's ΔW.
void expect_delta_weights(torch::nn::Module& model, const Tensors& peft) {
  for (const auto& [path, host] : tlora::adapter_hosts(model)) {
    if (!host->adapter("default")) continue;  // a layer that was not targeted
    const at::Tensor delta = host->adapter("default")->delta_weight();
    const at::Tensor a = peft.at("base_model.model." + path + ".lora_A.weight");
    const at::Tensor b = peft.at("base_model.model." + path + ".lora_B.weight");
    const double tol = tlora::testing::float32_tolerance(delta, a.size(0), 2);
    EXPECT_LE((b.mm(a) - delta).abs().max().item<double>(), tol) << path;
  }
}

TEST(LoraExport, DecoderToPeftAndGguf) {
  auto model = models::load_llama(kFixtures + "/llama/llama-tiny");
  model->eval();
  tlora::inject(*model, tlora_config(kDecoderTargets, 4));
  randomize(*model, 0.3);
  const fs::path peft = out_dir("llama-tiny-peft"), gguf = out_dir("llama-tiny-gguf");
  tlora::export_lora(*model, peft, tlora::LoraFormat::Peft, {.base_model = "llama-tiny", .task_type = "CAUSAL_LM"});
  tlora::export_lora(*model, gguf, tlora::LoraFormat::Gguf);
  const Tensors tensors = tlora::safetensors::load(peft / tlora::kPeftModelFile);
  EXPECT_EQ(tensors.size(), 2u * 7 * 2);
  expect_delta_weights(*model, tensors);

  const tlora::gguf::File file = tlora::gguf::File::open(gguf / tlora::kGgufAdapterFile);
  EXPECT_EQ(file.get_string("general.type"), "adapter");
  EXPECT_EQ(file.get_string("adapter.type"), "lora");
  EXPECT_EQ(file.get_float("adapter.lora.alpha"), 4.0);
  const tlora::gguf::TensorInfo* a = file.find_tensor("blk.1.ffn_down.weight.lora_a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->ne, (std::vector<int64_t>{64, 4})) << "ggml ne [n_in, r]";
  EXPECT_EQ(file.find_tensor("blk.0.attn_q.weight.lora_b")->ne, (std::vector<int64_t>{4, 32})) << "ggml ne [r, n_out]";
  // attn_v's B is as it is; attn_q's rows are in llama.cpp's order.
  EXPECT_TRUE(at::equal(file.load("blk.0.attn_v.weight.lora_b"), tensors.at("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight")));
  EXPECT_FALSE(at::equal(file.load("blk.0.attn_q.weight.lora_b"), tensors.at("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight")));

  if (std::getenv("TLORA_EXPORT_FIXTURE_DIR")) return;
  // What PEFT computes with this export on transformers' LlamaForCausalLM.
  const fs::path fixture = kFixtures + "/export/llama-tiny";
  expect_same_tensors(tensors, tlora::safetensors::load(fixture / tlora::kPeftModelFile));
  const Tensors ref = tlora::safetensors::load(fixture / "peft_logits.safetensors");
  const at::Tensor ours = model(ref.at("input_ids"));
  const double tol = tlora::testing::float32_tolerance(ref.at("logits"), 64, 5);
  EXPECT_LE((ours - ref.at("logits")).abs().max().item<double>(), tol);
}

TEST(LoraExport, EveryKindExportsItsDeltaWeight) {
  for (const auto kind : {tlora::AdapterKind::LoRA, tlora::AdapterKind::VeRA, tlora::AdapterKind::LoRAXS}) {
    auto model = models::load_llama(kFixtures + "/llama/llama-tiny");
    auto config = tlora_config(kDecoderTargets, 4);
    config.adapter.kind = kind;
    tlora::inject(*model, config);
    randomize(*model, 0.3);
    const fs::path peft = out_dir(std::string("kinds-") + std::string(tlora::to_string(kind)));
    tlora::export_lora(*model, peft, tlora::LoraFormat::Peft);
    SCOPED_TRACE(std::string(tlora::to_string(kind)));
    expect_delta_weights(*model, tlora::safetensors::load(peft / tlora::kPeftModelFile));
  }
}

TEST(LoraExport, EncoderWithAHeadToPeft) {
  const std::string dir = kFixtures + "/models/bert-tiny";
  auto model = models::from_pretrained<models::BertForSequenceClassification>(dir);
  model->eval();
  auto config = tlora_config({"query", "value"}, 2);
  config.modules_to_save = {"classifier"};
  tlora::inject(*model, config);
  randomize(*model, 0.3);
  const fs::path peft = out_dir("bert-tiny-peft");
  tlora::export_lora(*model, peft, tlora::LoraFormat::Peft, {.task_type = "SEQ_CLS", .modules_to_save = {"classifier"}});
  const Tensors tensors = tlora::safetensors::load(peft / tlora::kPeftModelFile);
  expect_delta_weights(*model, tensors);
  EXPECT_TRUE(at::equal(tensors.at("base_model.model.classifier.weight"), model->classifier->weight));
  EXPECT_TRUE(contains(error_of([&] { tlora::export_lora(*model, out_dir("refused"), tlora::LoraFormat::Gguf); }),
                       "the GGUF format is llama.cpp's, for LLaMA-family models"));

  if (std::getenv("TLORA_EXPORT_FIXTURE_DIR")) return;
  const fs::path fixture = kFixtures + "/export/bert-tiny";
  expect_same_tensors(tensors, tlora::safetensors::load(fixture / tlora::kPeftModelFile));
  const Tensors ref = tlora::safetensors::load(fixture / "peft_logits.safetensors");
  const at::Tensor ours = model(ref.at("input_ids"), ref.at("attention_mask"));
  const double tol = tlora::testing::float32_tolerance(ref.at("logits"), 128, 5);
  EXPECT_LE((ours - ref.at("logits")).abs().max().item<double>(), tol);
}

// llama.cpp applies the GGUF adapter to the Q4_1 SmolLM2 with its quantized kernels (8-bit
// activations), so its logits differ from ours by the quantization; the adapter's effect — logits
// with minus without it — must agree far more tightly than the adapter's size.
TEST(LoraExport, LlamaCppServesTheGgufAdapterOnSmolLM2) {
  const std::string path = tlora::testing::packaged_smollm2();
  if (path.empty()) GTEST_SKIP() << tlora::testing::kNoPackagedSmolLM2;
  auto model = models::load_llama(path);
  model->eval();
  auto config = tlora_config({"q_proj", "v_proj"}, 4);
  config.layers_to_transform = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
  tlora::inject(*model, config);
  randomize(*model, 2.0);  // an effect of several logits, well above llama.cpp's quantization noise
  const fs::path gguf = out_dir("smollm2-gguf");
  tlora::export_lora(*model, gguf, tlora::LoraFormat::Gguf);
  if (std::getenv("TLORA_EXPORT_FIXTURE_DIR")) return;

  const fs::path fixture = kFixtures + "/export/smollm2";
  expect_same_tensors(gguf_tensors(gguf / tlora::kGgufAdapterFile), gguf_tensors(fixture / tlora::kGgufAdapterFile));
  const Tensors ref = tlora::safetensors::load(fixture / "llamacpp_logits.safetensors");
  at::NoGradGuard no_grad;
  const at::Tensor ids = ref.at("input_ids").unsqueeze(0);
  const int64_t vocab = ref.at("with").size(-1);  // the fixture keeps a slice of the vocabulary
  const at::Tensor with = model(ids)[0].slice(-1, 0, vocab);
  at::Tensor without;
  {
    tlora::DisableAdapters off(*model);
    without = model(ids)[0].slice(-1, 0, vocab);
  }
  const at::Tensor effect = with - without, theirs = ref.at("with") - ref.at("without");
  // llama.cpp's 8-bit activations put its base logits about 1% (Frobenius) from ours, and its
  // adapter effect, the adapter enlarging the activations, about 9% from ours; with attn_q's rows
  // left in Hugging Face's order (a wrong export) the effect is 49% off. 25% separates the two.
  const double noise = ((without - ref.at("without")).norm() / ref.at("without").norm()).item<double>();
  const double gap = (effect - theirs).norm().item<double>(), size = effect.norm().item<double>();
  std::cout << "llama.cpp vs tlora on SmolLM2: base logits " << 100 * noise << "% apart (Frobenius); the adapter "
            << "effects " << 100 * gap / size << "% apart\n";
  EXPECT_GT(size, 10 * (without - ref.at("without")).norm().item<double>()) << "the effect stands above the noise";
  EXPECT_LE(gap, 0.25 * size) << "llama.cpp applies the adapter as tlora does";
}

}  // namespace
