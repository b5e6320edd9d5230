// causal_lm_loss against the loss over the full logits, in float64 on a tiny adapted LLaMA.
#include "test_util.h"
#include "tolerance.h"
#include "tlora/adapters/inject.h"
#include "tlora/models/causal_lm_loss.h"
#include "tlora/models/llama.h"
#include "tlora/io/safetensors.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <string>

namespace {

namespace models = tlora::models;

const std::string kFixtures = TLORA_FIXTURE_DIR "/llama";

// llama-tiny in float64 with TLoRA on every projection and cores moved off zero, so that the
// adapters take part in the loss and its gradient.
models::LlamaForCausalLM adapted_model() {
  models::LlamaForCausalLM model = models::load_llama(kFixtures + "/llama-tiny");
  model->to(at::kDouble);
  tlora::InjectConfig config;
  config.adapter.rank = 4;
  config.target_modules = {"q_proj", "v_proj", "gate_proj", "down_proj"};
  tlora::inject(*model, config);
  at::manual_seed(2);
  at::NoGradGuard no_grad;
  for (auto& p : tlora::trainable_parameters(*model)) p.normal_(0, 0.3);
  return model;
}

TEST(CausalLmLoss, EqualsTheLossOverAllLogitsWithItsGradients) {
  models::LlamaForCausalLM model = adapted_model();
  const int64_t vocab = model->config().vocab_size, batch = 3, seq = 7;
  at::manual_seed(4);
  const at::Tensor ids = at::randint(vocab, {batch, seq}, at::kLong);
  // Right padding on row 1; answers only on part of each row, as in instruction data.
  at::Tensor mask = at::ones({batch, seq}, at::kLong);
  mask[1].slice(0, 5).zero_();
  at::Tensor targets = at::full({batch, seq}, models::kIgnoreIndex, at::kLong);
  targets[0].slice(0, 3, 6).copy_(ids[0].slice(0, 4, 7));
  targets[1].slice(0, 2, 4).copy_(ids[1].slice(0, 3, 5));
  targets[2].slice(0, 0, 6).copy_(ids[2].slice(0, 1, 7));

  const auto parameters = tlora::trainable_parameters(*model);
  const at::Tensor logits = model(ids, mask);
  const at::Tensor full = at::cross_entropy_loss(logits.reshape({-1, vocab}), targets.reshape(-1), {},
                                                 at::Reduction::Mean, models::kIgnoreIndex);
  const auto full_grads = torch::autograd::grad({full}, parameters);
  const at::Tensor ours = models::causal_lm_loss(*model, ids, mask, targets);
  const auto our_grads = torch::autograd::grad({ours}, parameters);

  const int depth = static_cast<int>(2 * model->config().num_hidden_layers + 2);
  const int64_t width = model->config().intermediate_size;
  EXPECT_LE(std::abs(ours.item<double>() - full.item<double>()),
            tlora::testing::rounding_tolerance(at::kDouble, full.item<double>(), width, depth));
  ASSERT_EQ(our_grads.size(), full_grads.size());
  for (size_t i = 0; i < our_grads.size(); ++i) {
    const double scale = full_grads[i].abs().max().item<double>();
    EXPECT_GT(scale, 0) << "parameter " << i << " takes no part in the loss";
    EXPECT_LE((our_grads[i] - full_grads[i]).abs().max().item<double>(),
              tlora::testing::rounding_tolerance(at::kDouble, scale, width, depth))
        << "parameter " << i;
  }
  const at::Tensor summed = models::causal_lm_loss(*model, ids, mask, targets, at::Reduction::Sum);
  EXPECT_NEAR(summed.item<double>(), ours.item<double>() * targets.ne(models::kIgnoreIndex).sum().item<double>(),
              1e-9 * summed.abs().item<double>());
}

TEST(CausalLmLoss, TargetsOfAnotherShapeAreRefused) {
  models::LlamaForCausalLM model = models::load_llama(kFixtures + "/llama-tiny");
  const at::Tensor ids = at::zeros({2, 5}, at::kLong);
  const std::string error =
      tlora::testing::error_of([&] { models::causal_lm_loss(*model, ids, {}, at::zeros({2, 4}, at::kLong)); });
  EXPECT_TRUE(tlora::testing::contains(error, "[2, 4]")) << error;
  EXPECT_TRUE(tlora::testing::contains(error, "[2, 5]")) << error;
}

}  // namespace
