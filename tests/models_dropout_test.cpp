// The models' dropout and attention (tlora/models/dropout.h): the Philox-masked CPU paths
// against their definitions and against at::scaled_dot_product_attention.
#include "tolerance.h"
#include "tlora/models/bert.h"
#include "tlora/models/dropout.h"
#include "tlora/models/loading.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>

namespace {

namespace models = tlora::models;
using tlora::testing::float32_tolerance;

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// Drops with probability 2^-32·floor(p·2^32) = 0 (the Philox threshold rounds down), yet takes
// the training path: the op-by-op attention, with nothing dropped.
constexpr double kNothingDropped = 1e-12;

TEST(ModelsDropout, IsTheInputOutsideTrainingOrAtZero) {
  const at::Tensor x = at::randn({4, 5});
  EXPECT_TRUE(models::dropout(x, 0.5, false).is_same(x));
  EXPECT_TRUE(models::dropout(x, 0.0, true).is_same(x));
}

TEST(ModelsDropout, ZeroesAboutPAndScalesTheRest) {
  const double p = 0.3;
  const at::Tensor x = at::rand({200000}) + 1;  // no zeros of its own
  const at::Tensor y = models::dropout(x, p, true);
  const at::Tensor kept = y.ne(0);
  // 4.5 standard deviations of the kept fraction.
  EXPECT_NEAR(kept.to(at::kDouble).mean().item<double>(), 1 - p, 4.5 * std::sqrt(p * (1 - p) / 2e5));
  const at::Tensor expected = x.masked_select(kept) / (1 - p);
  EXPECT_LT(max_abs(y.masked_select(kept), expected), float32_tolerance(expected, 1));
}

TEST(ModelsDropout, FollowsTheDefaultGenerator) {
  const at::Tensor x = at::ones({1000});
  at::manual_seed(4);
  const at::Tensor a = models::dropout(x, 0.5, true);
  const at::Tensor next = models::dropout(x, 0.5, true);
  at::manual_seed(4);
  EXPECT_TRUE(at::equal(models::dropout(x, 0.5, true), a));
  EXPECT_FALSE(at::equal(next, a));
}

TEST(ModelsDropout, GradientIsTheMask) {
  const at::Tensor x = (at::rand({3000}) + 1).requires_grad_();
  const at::Tensor y = models::dropout(x, 0.4, true);
  y.sum().backward();
  EXPECT_LT(max_abs(x.grad() * x.detach(), y.detach()), float32_tolerance(y.detach(), 1, 2));
}

struct Qkv {
  at::Tensor q, k, v;
};

Qkv random_qkv() {
  at::manual_seed(1);
  return {at::randn({2, 3, 5, 8}).requires_grad_(), at::randn({2, 3, 7, 8}).requires_grad_(),
          at::randn({2, 3, 7, 4}).requires_grad_()};
}

// max |ours - SDPA| over the output and the gradients of q, k and v, each as a fraction of its
// rounding tolerance: two products of at most 8 terms forward, two more backward.
double difference_from_sdpa(const at::Tensor& mask) {
  const double scale = 0.3;
  Qkv a = random_qkv(), b = random_qkv();
  const at::Tensor ours = models::attention(a.q, a.k, a.v, mask, kNothingDropped, scale, true);
  const at::Tensor sdpa = at::scaled_dot_product_attention(
      b.q, b.k, b.v, mask.defined() ? std::optional<at::Tensor>(mask) : std::nullopt, 0.0, false,
      scale);
  const at::Tensor upstream = at::randn(ours.sizes());
  ours.backward(upstream);
  sdpa.backward(upstream);
  double d = max_abs(ours, sdpa) / float32_tolerance(sdpa, 8, 2);
  for (auto [x, y] : {std::pair{a.q, b.q}, {a.k, b.k}, {a.v, b.v}}) {
    d = std::max(d, max_abs(x.grad(), y.grad()) / float32_tolerance(y.grad(), 8, 4));
  }
  return d;
}

TEST(ModelsAttention, MatchesSdpaWhenNothingIsDropped) {
  EXPECT_LT(difference_from_sdpa({}), 1);
  // Padded keys per batch row, as the models build their masks.
  at::Tensor keep = at::ones({2, 7}, at::kBool);
  keep[1].slice(0, 4).fill_(false);
  EXPECT_LT(difference_from_sdpa(keep.view({2, 1, 1, 7}).expand({2, 1, 5, 7})), 1);
  const at::Tensor additive = at::randn({2, 1, 5, 7});
  EXPECT_LT(difference_from_sdpa(additive), 1);
}

TEST(ModelsAttention, RowThatAttendsNowhereIsZero) {
  const Qkv t = random_qkv();
  at::Tensor keep = at::ones({5, 7}, at::kBool);
  keep[2].fill_(false);
  const at::Tensor out = models::attention(t.q, t.k, t.v, keep, 0.5, 0.3, true);
  EXPECT_FALSE(out.isnan().any().item<bool>());
  EXPECT_EQ(out.select(2, 2).abs().max().item<float>(), 0);
}

TEST(ModelsAttention, DropsProbabilitiesInTrainingOnly) {
  // q = k = 0: every one of the S keys gets probability 1/S; v = 1: an output is (kept keys)·
  // 1/S/(1-p), so it is a multiple of 2/S for p = 1/2, and 1 on average. S is a power of two,
  // so that those multiples are exact in float32; the bound still allows the worst rounding of a
  // sum of S terms in any order (at most 0.03 units, where a wrong mask or scale is off by whole
  // units or by a factor).
  const int64_t s = 1024;
  const at::Tensor q = at::zeros({1, 4, 50, 8}), k = at::zeros({1, 4, s, 8});
  const at::Tensor v = at::ones({1, 4, s, 1});
  at::manual_seed(2);
  const at::Tensor out = models::attention(q, k, v, {}, 0.5, 1.0, true);
  const at::Tensor units = out * (s / 2.0);
  const double sum_error = tlora::testing::worst_case_sum_error(
      at::kFloat, s, out.abs().max().item<double>());
  EXPECT_LT(max_abs(units, units.round()), sum_error * (s / 2.0));
  // 50·4 outputs, each of standard deviation √(1/S) = 0.032: their mean within 0.01 of 1.
  EXPECT_NEAR(out.mean().item<double>(), 1.0, 0.01);
  EXPECT_GT(out.std().item<double>(), 0.01);
  at::manual_seed(2);
  EXPECT_TRUE(at::equal(models::attention(q, k, v, {}, 0.5, 1.0, true), out));
  // Eval: the sum of S probabilities 1/S, up to float rounding.
  EXPECT_LT(max_abs(models::attention(q, k, v, {}, 0.5, 1.0, false), at::ones_like(out)),
            tlora::testing::worst_case_sum_error(at::kFloat, s, 1.0));
}

TEST(ModelsDropout, TrainingForwardIsReproducibleUnderTheSeed) {
  auto model = models::from_pretrained<models::BertForSequenceClassification>(
      TLORA_FIXTURE_DIR "/models/bert-tiny");
  model->train();
  const at::Tensor ids = at::randint(100, {2, 9}, at::kLong);
  at::manual_seed(7);
  const at::Tensor a = model(ids);
  const at::Tensor b = model(ids);
  at::manual_seed(7);
  EXPECT_TRUE(at::equal(model(ids), a));
  EXPECT_GT(max_abs(a, b), 1e-4);
}

}  // namespace
