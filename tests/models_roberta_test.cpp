// RoBERTa against transformers: a small random RobertaForSequenceClassification, its positions,
// its classification head, and loading it into a RobertaModel.
#include "encoder_tolerance.h"
#include "test_util.h"
#include "tlora/adapters/inject.h"
#include "tlora/models/loading.h"
#include "tlora/models/roberta.h"
#include "tlora/models/sequence_classifier.h"
#include "tlora/io/safetensors.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <iostream>
#include <map>
#include <set>
#include <string>

namespace {

namespace models = tlora::models;
using Tensors = std::map<std::string, at::Tensor>;

const std::string kTiny = TLORA_FIXTURE_DIR "/models/roberta-tiny";

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a.to(at::kCPU, at::kDouble) - b.to(at::kCPU, at::kDouble)).abs().max().item<double>();
}

using tlora::testing::error_of;
using tlora::testing::forward_tolerance;
using tlora::testing::gradient_tolerance;

TEST(ModelsRoberta, ParameterNamesAreTheStateDictKeysOfTransformers) {
  const auto file = tlora::safetensors::File::open(kTiny + "/model.safetensors");
  std::set<std::string> keys;
  for (const auto& t : file.tensors()) keys.insert(t.name);
  models::RobertaForSequenceClassification model(models::EncoderConfig::from_pretrained(kTiny));
  std::set<std::string> names;
  for (const auto& p : model->named_parameters()) names.insert(p.key());
  EXPECT_EQ(names, keys);
  const auto modules = model->named_modules();
  for (const char* path :
       {"roberta.embeddings.position_embeddings", "roberta.encoder.layer.1.attention.self.value",
        "roberta.encoder.layer.1.output.LayerNorm", "classifier.dense", "classifier.out_proj"}) {
    EXPECT_TRUE(modules.contains(path)) << path;
  }
  EXPECT_FALSE(modules.contains("roberta.pooler"));
  EXPECT_NE(dynamic_cast<tlora::AdaptableLinearImpl*>(modules["classifier.out_proj"].get()), nullptr);
}

TEST(ModelsRoberta, PositionsStartAfterThePaddingIndexAndSkipPadding) {
  models::RobertaModel model(models::EncoderConfig::from_pretrained(kTiny), false);
  const at::Tensor ids = at::tensor({0, 7, 1, 9, 2, 1, 1}, at::kLong).view({1, 7});
  const at::Tensor expected = at::tensor({2, 3, 1, 4, 5, 1, 1}, at::kLong).view({1, 7});
  EXPECT_TRUE(at::equal(model->embeddings->position_ids_for(ids), expected));
  EXPECT_EQ(model->config().max_sequence_length(), 62);
  EXPECT_NE(error_of([&] {
              model(at::full({1, 63}, 5, at::kLong));
            }).find("a sequence of 63 tokens"),
            std::string::npos);
}

TEST(ModelsRoberta, TinyMatchesTransformers) {
  const Tensors ref = tlora::safetensors::load(kTiny + "/reference.safetensors");
  models::LoadReport report;
  auto model =
      models::from_pretrained<models::RobertaForSequenceClassification>(kTiny, {}, &report);
  EXPECT_TRUE(report.clean()) << report.summary();
  EXPECT_EQ(report.prefix_rule, "");
  model->eval();
  const auto& ids = ref.at("input_ids");
  const auto& mask = ref.at("attention_mask");
  const auto& types = ref.at("token_type_ids");

  const at::Tensor hidden = model->roberta(ids, mask, types).last_hidden_state;
  const at::Tensor logits = model(ids, mask, types);
  const at::Tensor loss = model->loss(logits, ref.at("labels"));
  const double d_hidden = max_abs(hidden, ref.at("last_hidden_state"));
  const double d_logits = max_abs(logits, ref.at("logits"));
  const double d_loss = max_abs(loss, ref.at("loss"));
  const auto config = models::EncoderConfig::from_pretrained(kTiny);
  EXPECT_LT(d_hidden, forward_tolerance(config, ref.at("last_hidden_state")));
  EXPECT_LT(d_logits, forward_tolerance(config, ref.at("logits")));
  EXPECT_LT(d_loss, forward_tolerance(config, ref.at("loss")));
  // token_type_ids default to zeros.
  EXPECT_TRUE(at::equal(model(ids, mask), logits));

  loss.backward();
  auto params = model->named_parameters();
  double d_grad = 0;
  for (const char* name : {"classifier.out_proj.weight", "classifier.dense.weight",
                           "roberta.encoder.layer.0.attention.self.query.weight",
                           "roberta.embeddings.position_embeddings.weight"}) {
    const at::Tensor& expected = ref.at(std::string("grad.") + name);
    const double d = max_abs(params[name].grad(), expected);
    EXPECT_LT(d, gradient_tolerance(config, expected, ids.numel())) << name;
    d_grad = std::max(d_grad, d);
  }
  // The padding position (pad_token_id = 1) gets no gradient.
  EXPECT_EQ(
      params["roberta.embeddings.position_embeddings.weight"].grad()[1].abs().max().item<float>(),
      0);
  std::cout << "roberta-tiny max |tlora - transformers|: hidden " << d_hidden << ", logits "
            << d_logits << ", loss " << d_loss << ", grads " << d_grad << "\n";
}

// The family-independent entry point builds the same model, and can change the configuration.
TEST(ModelsRoberta, SequenceClassifierFromPretrained) {
  const Tensors ref = tlora::safetensors::load(kTiny + "/reference.safetensors");
  auto generic = models::sequence_classifier_from_pretrained(kTiny);
  ASSERT_NE(dynamic_cast<models::RobertaForSequenceClassificationImpl*>(generic.get()), nullptr);
  auto specific = models::from_pretrained<models::RobertaForSequenceClassification>(kTiny);
  generic->eval();
  specific->eval();
  const auto& ids = ref.at("input_ids");
  EXPECT_TRUE(at::equal(generic->forward(ids, ref.at("attention_mask")), specific(ids, ref.at("attention_mask"))));

  const auto five_labels = [](models::EncoderConfig& c) { c.num_labels = 5; };
  EXPECT_NE(error_of([&] { models::sequence_classifier_from_pretrained(kTiny, five_labels); }).find("classifier.out_proj"),
            std::string::npos) << "a head of another shape is refused unless asked for";
  models::LoadReport report;
  auto five = models::sequence_classifier_from_pretrained(kTiny, five_labels, {.allow_shape_mismatch = true}, &report);
  EXPECT_EQ(five->config().num_labels, 5);
  EXPECT_EQ(five->forward(ids).size(1), 5);
  EXPECT_FALSE(report.clean()) << "the saved 3-label head does not fit: a new one is initialised";

  models::EncoderConfig other = models::EncoderConfig::from_pretrained(kTiny);
  other.model_type = "gpt2";
  EXPECT_NE(error_of([&] { models::make_sequence_classifier(other); }).find("no sequence classifier for model_type 'gpt2'"),
            std::string::npos);
}

TEST(ModelsRoberta, BaseModelFromTheClassificationCheckpoint) {
  const Tensors ref = tlora::safetensors::load(kTiny + "/reference.safetensors");
  const auto config = models::EncoderConfig::from_pretrained(kTiny);
  models::RobertaModel model(config, /*add_pooling_layer=*/false);
  // The head's keys have no place in a base model: left out and reported, or refused.
  models::LoadOptions strict;
  strict.allow_other_head = false;
  const std::string message = error_of([&] { models::load_weights(*model, kTiny, strict); });
  EXPECT_NE(message.find("keys of a head the model does not have"), std::string::npos) << message;
  EXPECT_NE(message.find("classifier.out_proj.weight"), std::string::npos) << message;

  const models::LoadReport report = models::load_weights(*model, kTiny);
  EXPECT_EQ(report.prefix_rule, "removed prefix 'roberta.'");
  EXPECT_EQ(report.other_head,
            (std::vector<std::string>{"classifier.dense.bias", "classifier.dense.weight",
                                      "classifier.out_proj.bias", "classifier.out_proj.weight"}));
  EXPECT_TRUE(report.missing.empty() && report.unexpected.empty());
  EXPECT_FALSE(report.clean());
  model->eval();
  const at::Tensor hidden = model(ref.at("input_ids"), ref.at("attention_mask")).last_hidden_state;
  EXPECT_LT(max_abs(hidden, ref.at("last_hidden_state")), forward_tolerance(config, ref.at("last_hidden_state")));

  // With a pooler, which the checkpoint lacks: missing unless allowed.
  models::RobertaModel pooled(config);
  const std::string missing = error_of([&] { models::load_weights(*pooled, kTiny); });
  EXPECT_NE(missing.find("missing keys"), std::string::npos) << missing;
  EXPECT_NE(missing.find("pooler.dense.weight"), std::string::npos) << missing;
}

TEST(ModelsRoberta, ZeroCorePatchGivesTheUnpatchedOutputsExactly) {
  const Tensors ref = tlora::safetensors::load(kTiny + "/reference.safetensors");
  auto model = models::from_pretrained<models::RobertaForSequenceClassification>(kTiny);
  model->eval();
  const at::Tensor before = model(ref.at("input_ids"), ref.at("attention_mask"));
  tlora::InjectConfig config;
  config.adapter.rank = 4;
  config.target_modules = {"query", "value"};
  EXPECT_EQ(tlora::inject(*model, config).modules.size(), 4u);
  EXPECT_TRUE(at::equal(model(ref.at("input_ids"), ref.at("attention_mask")), before));
}

}  // namespace
