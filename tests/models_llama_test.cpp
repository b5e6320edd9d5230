// LLaMA-family decoders against transformers: small random LLaMA and Qwen2 folders, and the
// packaged SmolLM2-135M-Instruct GGUF (fixtures by tools/llama_fixtures.py).
#include "packaged_model.h"
#include "test_util.h"
#include "tolerance.h"
#include "tlora/adapters/inject.h"
#include "tlora/gguf/file.h"
#include "tlora/models/generation.h"
#include "tlora/models/llama.h"
#include "tlora/text/bpe.h"
#include "tlora/text/chat_template.h"
#include "tlora/io/safetensors.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <string>

namespace {

namespace models = tlora::models;
using tlora::testing::contains;
using tlora::testing::error_of;

const std::string kFixtures = TLORA_FIXTURE_DIR "/llama";


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

INSTANTIATE_TEST_SUITE_P(Models, TinyFolder,
                         testing::Values("llama-tiny", "qwen2-tiny", "llama-linear-tiny", "llama3-tiny"),
                         [](const auto& info) {
                           std::string name = info.param.substr(0, info.param.rfind('-'));
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(ModelsLlama, QwenHasBiasesAndATiedHead) {
  models::LlamaForCausalLM model = models::load_llama(kFixtures + "/qwen2-tiny");
  EXPECT_TRUE(model->config().tie_word_embeddings);
  EXPECT_EQ(model->lm_head->weight.data_ptr(), model->model->embed_tokens->weight.data_ptr());
  const auto params = model->named_parameters();
  EXPECT_NE(params.find("model.layers.0.self_attn.q_proj.bias"), nullptr);
  EXPECT_EQ(params.find("model.layers.0.self_attn.o_proj.bias"), nullptr);
  // The tied weight is one tensor under two names: counted, and given to an optimizer, once.
  int64_t listed = 0;
  for (const auto& p : params) listed += p.value().numel();
  tlora::InjectConfig config;
  config.target_modules = {"q_proj"};
  config.modules_to_save = {"lm_head"};
  const auto report = tlora::inject(*model, config);
  const int64_t adapters = report.trainable_params - model->lm_head->weight.numel();
  EXPECT_EQ(report.all_params, listed - model->lm_head->weight.numel() + adapters);
  EXPECT_EQ(tlora::trainable_parameters(*model).size(), 2u * 2 + 1) << "M and alpha of two layers, the shared weight once";
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
  dir.write("config.json", R"({"model_type": "llama", "rope_scaling": {"rope_type": "yarn", "factor": 8.0}})");
  EXPECT_TRUE(contains(error_of([&] { models::LlamaConfig::from_pretrained(dir.path()); }),
                       "rope_scaling rope_type 'yarn' is not supported"));
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
  const std::string path = tlora::testing::packaged_smollm2();
  if (path.empty()) GTEST_SKIP() << tlora::testing::kNoPackagedSmolLM2;
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

nlohmann::json generation_fixture() {
  std::ifstream in(kFixtures + "/smollm2_generation.json");
  return nlohmann::json::parse(in);
}

std::vector<tlora::text::ChatMessage> messages_of(const nlohmann::json& conversation) {
  std::vector<tlora::text::ChatMessage> out;
  for (const auto& m : conversation) out.push_back({m["role"], m["content"]});
  return out;
}

TEST(ModelsLlama, SmolLM2ChatTemplateRendersAsTransformers) {
  const std::string path = tlora::testing::packaged_smollm2();
  if (path.empty()) GTEST_SKIP() << tlora::testing::kNoPackagedSmolLM2;
  const tlora::gguf::File file = tlora::gguf::File::open(path);
  const auto chat = tlora::text::ChatTemplate::from_jinja(file.get_string("tokenizer.chat_template"));
  ASSERT_TRUE(chat.default_system().has_value());
  const auto fixture = generation_fixture();
  for (size_t i = 0; i < fixture["conversations"].size(); ++i) {
    const auto messages = messages_of(fixture["conversations"][i]);
    EXPECT_EQ(chat.apply(messages, true), fixture["rendered"][i].get<std::string>()) << i;
    EXPECT_EQ(chat.apply(messages, false), fixture["rendered_without_prompt"][i].get<std::string>()) << i;
  }
  EXPECT_TRUE(contains(error_of([] { tlora::text::ChatTemplate::from_jinja("{{ bos_token }}[INST] {{ message }} [/INST]"); }),
                       "chat template not supported"));
}

TEST(ModelsLlama, SmolLM2GreedyGenerationMatchesTransformers) {
  const std::string path = tlora::testing::packaged_smollm2();
  if (path.empty()) GTEST_SKIP() << tlora::testing::kNoPackagedSmolLM2;
  const auto tokenizer = tlora::text::ByteLevelBPETokenizer::from_gguf(tlora::gguf::File::open(path));
  models::LlamaForCausalLM model = models::load_llama(path);
  model->eval();
  const auto fixture = generation_fixture();
  std::vector<std::vector<int64_t>> prompts;
  for (size_t i = 0; i < fixture["prompts"].size(); ++i) {
    prompts.push_back(tokenizer.encode(fixture["rendered"][i].get<std::string>(), false).ids);
    EXPECT_EQ(prompts.back(), fixture["prompts"][i].get<std::vector<int64_t>>()) << i;
  }
  models::GenerationOptions options;
  options.max_new_tokens = fixture["max_new_tokens"];
  options.eos_token_ids = {fixture["eos_token_id"].get<int64_t>()};
  options.pad_token_id = fixture["pad_token_id"];
  std::vector<std::vector<int64_t>> streamed(prompts.size());
  const auto out = models::generate(*model, prompts, options, [&](size_t row, int64_t t) { streamed[row].push_back(t); });
  for (size_t i = 0; i < out.size(); ++i) {
    auto expected = fixture["generated"][i].get<std::vector<int64_t>>();
    const auto eos = std::find(expected.begin(), expected.end(), options.eos_token_ids[0]);
    if (eos != expected.end()) expected.erase(eos + 1, expected.end());
    EXPECT_EQ(out[i].tokens, expected) << i << ": " << tokenizer.decode(out[i].tokens);
    EXPECT_EQ(streamed[i], out[i].tokens);
  }
  EXPECT_EQ(tokenizer.decode(out[0].tokens, true), "The capital of France is Paris.");
}

TEST(ModelsLlama, GenerationOptionsDoWhatTheySay) {
  models::LlamaForCausalLM model = models::load_llama(kFixtures + "/llama-tiny");
  model->eval();
  const std::vector<std::vector<int64_t>> prompts = {{5, 6, 7}, {8, 9}};
  models::GenerationOptions greedy;
  greedy.max_new_tokens = 6;
  const auto g = models::generate(*model, prompts, greedy);
  EXPECT_EQ(g[0].tokens.size(), 6u);
  EXPECT_EQ(g[0].finish_reason, "length");
  // The cached steps compute what one forward over the whole sequence computes.
  std::vector<int64_t> full = prompts[0];
  full.insert(full.end(), g[0].tokens.begin(), g[0].tokens.end() - 1);
  const at::Tensor logits = model(at::tensor(full, at::kLong).unsqueeze(0));
  for (size_t i = 0; i < g[0].tokens.size(); ++i) EXPECT_EQ(logits[0][2 + i].argmax().item<int64_t>(), g[0].tokens[i]) << i;

  models::GenerationOptions top1 = greedy;
  top1.temperature = 0.7;
  top1.top_k = 1;
  EXPECT_EQ(models::generate(*model, prompts, top1)[1].tokens, g[1].tokens) << "top-k 1 is greedy";
  models::GenerationOptions nucleus = greedy;
  nucleus.temperature = 1.0;
  nucleus.top_p = 1e-6;
  EXPECT_EQ(models::generate(*model, prompts, nucleus)[1].tokens, g[1].tokens) << "a tiny top-p keeps the likeliest only";
  models::GenerationOptions sampled = greedy;
  sampled.temperature = 1.0;
  sampled.seed = 3;
  EXPECT_EQ(models::generate(*model, prompts, sampled)[0].tokens, models::generate(*model, prompts, sampled)[0].tokens)
      << "one seed, one sample";

  models::GenerationOptions eos = greedy;
  eos.eos_token_ids = {g[0].tokens[2]};
  const auto stopped = models::generate(*model, prompts, eos);
  EXPECT_EQ(stopped[0].finish_reason, "eos");
  EXPECT_LE(stopped[0].tokens.size(), 3u);
  models::GenerationOptions stop = greedy;
  stop.decode = [](std::span<const int64_t> ids) {
    std::string s;
    for (const int64_t id : ids) s += "<" + std::to_string(id) + ">";
    return s;
  };
  stop.stop_strings = {"<" + std::to_string(g[0].tokens[3]) + ">"};
  const auto cut = models::generate(*model, prompts, stop);
  EXPECT_EQ(cut[0].finish_reason, "stop_string");
  EXPECT_EQ(stop.decode(cut[0].tokens).find(stop.stop_strings[0]), std::string::npos) << "the match is cut off";

  // transformers' repetition penalty, written out: seen tokens' logits divided (or, negative,
  // multiplied) by it.
  models::GenerationOptions penalised = greedy;
  penalised.max_new_tokens = 1;
  penalised.repetition_penalty = 3.0;
  at::Tensor last = model(at::tensor(prompts[0], at::kLong).unsqueeze(0))[0][-1].clone();
  for (const int64_t t : prompts[0]) {
    const double v = last[t].item<double>();
    last[t] = v < 0 ? v * 3.0 : v / 3.0;
  }
  EXPECT_EQ(models::generate(*model, prompts, penalised)[0].tokens, std::vector<int64_t>{last.argmax().item<int64_t>()});
}

}  // namespace
