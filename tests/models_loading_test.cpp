// Weight loading: the strict key report, the base-model prefix, new heads, sharded checkpoints.
#include "test_util.h"
#include "tlora/adapters/inject.h"
#include "tlora/models/bert.h"
#include "tlora/models/loading.h"
#include "tlora/io/safetensors.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace {

namespace models = tlora::models;
using Tensors = std::map<std::string, at::Tensor>;

const std::string kTiny = TLORA_FIXTURE_DIR "/models/bert-tiny";

using tlora::testing::error_of;

// A scratch folder removed with the files written through it (POSIX calls: std::filesystem
// operations are unsafe next to LibTorch's copy of them).
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "tlora_models_XXXXXX";
    EXPECT_NE(::mkdtemp(pattern.data()), nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    for (const auto& f : files_) ::unlink(f.c_str());
    ::rmdir(path_.c_str());
  }
  // The path of `name` inside the folder, removed with it.
  std::string file(const std::string& name) {
    files_.push_back(path_ + "/" + name);
    return files_.back();
  }
  // model.safetensors and bert-tiny's config.json: a model folder.
  std::string write_model(const Tensors& tensors) {
    tlora::safetensors::save(file("model.safetensors"), tensors, {{"format", "pt"}});
    copy_config();
    return path_;
  }
  void copy_config() {
    std::ifstream in(kTiny + "/config.json");
    std::ofstream(file("config.json")) << in.rdbuf();
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

Tensors tiny_tensors() { return tlora::safetensors::load(kTiny + "/model.safetensors"); }

models::BertForSequenceClassification tiny_model() {
  return models::BertForSequenceClassification(models::EncoderConfig::from_pretrained(kTiny));
}

Tensors parameters(const torch::nn::Module& m) {
  Tensors out;
  for (const auto& p : m.named_parameters()) out.emplace(p.key(), p.value().detach().clone());
  return out;
}

bool same(const Tensors& a, const Tensors& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [k, v] : a) {
    if (!b.count(k) || !at::equal(v, b.at(k))) return false;
  }
  return true;
}

TEST(ModelsLoading, LoadsEveryParameterOneToOne) {
  auto model = tiny_model();
  const models::LoadReport report = models::load_weights(*model, kTiny);
  EXPECT_TRUE(report.clean()) << report.summary();
  EXPECT_EQ(report.loaded.size(), tiny_tensors().size());
  EXPECT_TRUE(report.initialized.empty());
  EXPECT_TRUE(same(parameters(*model), tiny_tensors()));
  EXPECT_NE(report.summary().find("loaded 41 parameters from"), std::string::npos)
      << report.summary();
}

TEST(ModelsLoading, RefusesAMissingKeyNamingIt) {
  Tensors tensors = tiny_tensors();
  tensors.erase("bert.encoder.layer.1.attention.self.key.bias");
  TempDir dir;
  const std::string path = dir.write_model(tensors);
  auto model = tiny_model();
  const Tensors before = parameters(*model);
  const std::string message = error_of([&] { models::load_weights(*model, path); });
  EXPECT_NE(message.find("missing keys"), std::string::npos) << message;
  EXPECT_NE(message.find("bert.encoder.layer.1.attention.self.key.bias"), std::string::npos)
      << message;
  EXPECT_NE(message.find("allow_missing"), std::string::npos) << message;
  EXPECT_TRUE(same(parameters(*model), before));  // unchanged on error

  models::LoadOptions options;
  options.allow_missing = true;
  const models::LoadReport report = models::load_weights(*model, path, options);
  EXPECT_EQ(report.missing,
            std::vector<std::string>{"bert.encoder.layer.1.attention.self.key.bias"});
  EXPECT_EQ(report.initialized, report.missing);
  EXPECT_EQ(model->bert->encoder->blocks[1]->attention->self->key->bias.abs().max().item<float>(),
            0);
}

TEST(ModelsLoading, RefusesAnUnexpectedKeyNamingIt) {
  Tensors tensors = tiny_tensors();
  tensors.emplace("bert.encoder.layer.0.attention.self.rotary.weight", at::zeros({4}));
  TempDir dir;
  const std::string path = dir.write_model(tensors);
  auto model = tiny_model();
  const std::string message = error_of([&] { models::load_weights(*model, path); });
  EXPECT_NE(message.find("unexpected keys"), std::string::npos) << message;
  EXPECT_NE(message.find("bert.encoder.layer.0.attention.self.rotary.weight"), std::string::npos)
      << message;
  models::LoadOptions options;
  options.allow_unexpected = true;
  const models::LoadReport report = models::load_weights(*model, path, options);
  EXPECT_EQ(report.unexpected,
            std::vector<std::string>{"bert.encoder.layer.0.attention.self.rotary.weight"});
  EXPECT_TRUE(report.missing.empty());
}

TEST(ModelsLoading, RefusesAShapeMismatchNamingIt) {
  Tensors tensors = tiny_tensors();
  tensors["bert.encoder.layer.0.intermediate.dense.weight"] = at::zeros({60, 32});
  TempDir dir;
  const std::string path = dir.write_model(tensors);
  auto model = tiny_model();
  const Tensors before = parameters(*model);
  const std::string message = error_of([&] { models::load_weights(*model, path); });
  EXPECT_NE(
      message.find("shape mismatches: bert.encoder.layer.0.intermediate.dense.weight file [60, 32] "
                   "vs model [64, 32]"),
      std::string::npos)
      << message;
  EXPECT_TRUE(same(parameters(*model), before));

  models::LoadOptions options;
  options.allow_shape_mismatch = true;
  const models::LoadReport report = models::load_weights(*model, path, options);
  ASSERT_EQ(report.mismatched.size(), 1u);
  EXPECT_EQ(report.mismatched[0].file_shape, (std::vector<int64_t>{60, 32}));
  EXPECT_EQ(report.initialized,
            std::vector<std::string>{"bert.encoder.layer.0.intermediate.dense.weight"});
  EXPECT_EQ(report.loaded.size(), tensors.size() - 1);
}

TEST(ModelsLoading, RefusesIntegerTensorsForParameters) {
  Tensors tensors = tiny_tensors();
  tensors["classifier.bias"] = at::zeros({4}, at::kLong);
  TempDir dir;
  auto model = tiny_model();
  const std::string message =
      error_of([&] { models::load_weights(*model, dir.write_model(tensors)); });
  EXPECT_NE(message.find("key 'classifier.bias'"), std::string::npos) << message;
}

TEST(ModelsLoading, NewHeadIsInitialisedAsTransformersDoesAndReported) {
  Tensors base;  // a base-model checkpoint: no prefix, no classifier
  for (const auto& [k, v] : tiny_tensors()) {
    if (k.starts_with("bert.")) base.emplace(k.substr(5), v);
  }
  base.emplace("embeddings.position_ids", at::arange(64, at::kLong).view({1, 64}));
  TempDir dir;
  const std::string path = dir.write_model(base);
  models::EncoderConfig config = models::EncoderConfig::from_pretrained(kTiny);
  config.num_labels = 300;  // enough weights for a meaningful standard deviation
  config.initializer_range = 0.05;
  models::BertForSequenceClassification model(config);
  models::LoadOptions options;
  options.seed = 7;
  const models::LoadReport report = models::load_weights(*model, path, options);
  EXPECT_EQ(report.prefix_rule, "added prefix 'bert.'");
  const std::vector<std::string> head = {"classifier.weight", "classifier.bias"};
  EXPECT_EQ(report.missing, head);
  EXPECT_EQ(report.initialized, head);
  EXPECT_EQ(report.ignored, std::vector<std::string>{"embeddings.position_ids"});
  EXPECT_NEAR(model->classifier->weight.std().item<double>(), 0.05, 0.002);
  EXPECT_NEAR(model->classifier->weight.mean().item<double>(), 0, 0.002);
  EXPECT_EQ(model->classifier->bias.abs().max().item<float>(), 0);
  EXPECT_NE(report.summary().find("initialised: classifier.weight, classifier.bias"),
            std::string::npos);

  // The seed makes the head reproducible; a strict load refuses the missing head.
  models::BertForSequenceClassification again(config);
  models::load_weights(*again, path, options);
  EXPECT_TRUE(at::equal(again->classifier->weight, model->classifier->weight));
  options.allow_new_head = false;
  const std::string message = error_of([&] { models::load_weights(*again, path, options); });
  EXPECT_NE(message.find("missing head keys: classifier.weight, classifier.bias"),
            std::string::npos)
      << message;
}

TEST(ModelsLoading, HeadCheckpointIntoABaseModelRemovesThePrefix) {
  models::BertModel base(models::EncoderConfig::from_pretrained(kTiny));
  const models::LoadReport report = models::load_weights(*base, kTiny);
  EXPECT_EQ(report.prefix_rule, "removed prefix 'bert.'");
  EXPECT_EQ(report.other_head, (std::vector<std::string>{"classifier.bias", "classifier.weight"}));
  EXPECT_TRUE(report.missing.empty() && report.unexpected.empty());
  EXPECT_NE(report.summary().find("left out (another head): classifier.bias, classifier.weight"),
            std::string::npos)
      << report.summary();
  const Tensors file = tiny_tensors();
  EXPECT_TRUE(at::equal(base->pooler->dense->weight, file.at("bert.pooler.dense.weight")));
}

TEST(ModelsLoading, PretrainingHeadsAreLeftOutAndReported) {
  // bert-base-uncased's file is a BertForPreTraining: bert.* plus the cls.* heads.
  Tensors tensors = tiny_tensors();
  tensors.erase("classifier.weight");
  tensors.erase("classifier.bias");
  tensors.emplace("cls.predictions.bias", at::zeros({500}));
  tensors.emplace("cls.seq_relationship.weight", at::zeros({2, 32}));
  TempDir dir;
  const std::string path = dir.write_model(tensors);
  auto model = tiny_model();
  const models::LoadReport report = models::load_weights(*model, path);
  EXPECT_EQ(report.other_head,
            (std::vector<std::string>{"cls.predictions.bias", "cls.seq_relationship.weight"}));
  EXPECT_EQ(report.missing, (std::vector<std::string>{"classifier.weight", "classifier.bias"}));
  EXPECT_EQ(report.prefix_rule, "");
  EXPECT_TRUE(report.unexpected.empty());

  // In a file without the base-model prefix, a key the model lacks is unexpected.
  Tensors base;
  for (const auto& [k, v] : tiny_tensors()) {
    if (k.starts_with("bert.")) base.emplace(k.substr(5), v);
  }
  base.emplace("cls.predictions.bias", at::zeros({500}));
  TempDir base_dir;
  models::BertModel bert(models::EncoderConfig::from_pretrained(kTiny));
  const std::string message =
      error_of([&] { models::load_weights(*bert, base_dir.write_model(base)); });
  EXPECT_NE(
      message.find("unexpected keys (the file has them, the model does not): cls.predictions.bias"),
      std::string::npos)
      << message;
}

TEST(ModelsLoading, ShardedCheckpoints) {
  Tensors first, second;
  for (const auto& [k, v] : tiny_tensors())
    (k < "bert.encoder.layer.1" ? first : second).emplace(k, v);
  TempDir dir;
  tlora::safetensors::save(dir.file("model-00001-of-00002.safetensors"), first);
  tlora::safetensors::save(dir.file("model-00002-of-00002.safetensors"), second);
  dir.copy_config();
  const auto write_index = [&](const std::string& wrong_key) {
    std::ofstream index(dir.file("model.safetensors.index.json"));
    index << "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {";
    bool comma = false;
    for (const auto& [k, v] : first) {
      index << (comma ? "," : "") << '"' << k << "\": \"model-0000" << (k == wrong_key ? 2 : 1)
            << "-of-00002.safetensors\"";
      comma = true;
    }
    for (const auto& [k, v] : second)
      index << ",\"" << k << "\": \"model-00002-of-00002.safetensors\"";
    index << "}}";
  };
  write_index("");
  EXPECT_EQ(models::weight_files(dir.path()).size(), 2u);
  models::LoadReport report;
  auto model =
      models::from_pretrained<models::BertForSequenceClassification>(dir.path(), {}, &report);
  EXPECT_TRUE(report.clean()) << report.summary();
  EXPECT_EQ(report.files.size(), 2u);
  EXPECT_TRUE(same(parameters(*model), tiny_tensors()));

  write_index("bert.embeddings.LayerNorm.bias");
  const std::string message = error_of([&] { models::load_weights(*model, dir.path()); });
  EXPECT_NE(
      message.find("puts 'bert.embeddings.LayerNorm.bias' in model-00002-of-00002.safetensors, "
                   "which does not hold it"),
      std::string::npos)
      << message;
}

TEST(ModelsLoading, NamesWhatIsMissingFromAFolder) {
  TempDir dir;
  dir.copy_config();
  auto model = tiny_model();
  const std::string message = error_of([&] { models::load_weights(*model, dir.path()); });
  EXPECT_NE(message.find("neither model.safetensors nor model.safetensors.index.json"),
            std::string::npos)
      << message;
}

TEST(ModelsLoading, ConvertsToTheModelsDtypeAndLeavesAdaptersAlone) {
  auto model = tiny_model();
  tlora::InjectConfig config;
  config.adapter.rank = 2;
  config.target_modules = {"query"};
  tlora::inject(*model, config);
  model->to(at::kDouble);
  at::Tensor core =
      model->named_parameters()["bert.encoder.layer.0.attention.self.query.default.core"];
  {
    c10::NoGradGuard no_grad;
    core.fill_(0.5);
  }
  const models::LoadReport report = models::load_weights(*model, kTiny);
  EXPECT_TRUE(report.clean()) << report.summary();
  EXPECT_EQ(core.max().item<double>(), 0.5);
  EXPECT_EQ(model->classifier->weight.scalar_type(), at::kDouble);
  EXPECT_TRUE(
      at::equal(model->classifier->weight, tiny_tensors().at("classifier.weight").to(at::kDouble)));
}

}  // namespace
