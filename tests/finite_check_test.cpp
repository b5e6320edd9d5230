// check_finite_gradients: silent while every gradient is finite, and at the first step with a
// NaN or an infinity it names that step, the parameter and how many elements are affected.
#include "test_util.h"
#include "tlora/core/finite_check.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include <limits>

namespace {

using tlora::testing::contains;
using tlora::testing::error_of;

// Two linear layers on separate inputs, so a bad value in one input reaches only the second
// layer's weight gradient: loss = sum(first(x)) + sum(second(y)) gives
// d loss / d second.weight = ones(out, batch) · y, whose column j is the sum of y[:, j].
struct TwoLayers : torch::nn::Module {
  TwoLayers()
      : first(register_module("first", torch::nn::Linear(4, 3))),
        second(register_module("second", torch::nn::Linear(5, 6))) {}
  at::Tensor loss(const at::Tensor& x, const at::Tensor& y) {
    return first(x).sum() + second(y).sum();
  }
  torch::nn::Linear first, second;
};

// Runs steps 0..4; at `bad_step` the input y gets `value` at [0, 2]. Returns the error of the
// first step check_finite_gradients refuses, or "" if none.
std::string train(TwoLayers& model, int bad_step, double value) {
  for (int step = 0; step < 5; ++step) {
    model.zero_grad();
    at::Tensor y = at::randn({2, 5});
    if (step == bad_step) y[0][2] = value;
    model.loss(at::randn({2, 4}), y).backward();
    try {
      tlora::check_finite_gradients(model, step);
    } catch (const c10::Error& e) {
      return e.what_without_backtrace();
    }
  }
  return "";
}

TEST(FiniteCheck, FiniteGradientsPass) {
  at::manual_seed(0);
  TwoLayers model;
  EXPECT_EQ(train(model, /*bad_step=*/-1, 0.0), "");
  EXPECT_FALSE(tlora::find_non_finite_gradient(model));
  TwoLayers untrained;  // no gradients at all
  EXPECT_FALSE(tlora::find_non_finite_gradient(untrained));
}

TEST(FiniteCheck, NaNIsCaughtAtTheStepItAppearsNamingTheParameter) {
  at::manual_seed(0);
  TwoLayers model;
  const std::string message = train(model, /*bad_step=*/3, std::numeric_limits<double>::quiet_NaN());
  EXPECT_TRUE(contains(message, "at step 3:"));
  // Column 2 of second.weight's gradient, one element per output: 6 NaN.
  EXPECT_TRUE(contains(message, "parameter 'second.weight' has 6 NaN and 0 infinite of its 30"));
  const auto bad = tlora::find_non_finite_gradient(model);
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->parameter, "second.weight");
  EXPECT_EQ(bad->nan_count, 6);
  EXPECT_EQ(bad->inf_count, 0);
  EXPECT_EQ(bad->numel, 30);
  // The bias gradient does not see y, and the first layer not at all.
  EXPECT_TRUE(model.second->bias.grad().isfinite().all().item<bool>());
}

TEST(FiniteCheck, InfinityIsCaughtAndCountedApartFromNaN) {
  at::manual_seed(0);
  TwoLayers model;
  const std::string message = train(model, /*bad_step=*/0, -std::numeric_limits<double>::infinity());
  EXPECT_TRUE(contains(message, "at step 0: parameter 'second.weight' has 0 NaN and 6 infinite"));
}

TEST(FiniteCheck, TheFirstBadParameterInModuleOrderIsNamed) {
  at::manual_seed(0);
  TwoLayers model;
  model.zero_grad();
  model.loss(at::randn({2, 4}), at::randn({2, 5})).backward();
  model.second->bias.mutable_grad()[1] = std::numeric_limits<float>::infinity();
  model.first->weight.mutable_grad()[0][0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(tlora::find_non_finite_gradient(model)->parameter, "first.weight");
  // A frozen parameter without a gradient is skipped rather than taken for a finite one.
  model.first->weight.mutable_grad() = at::Tensor();
  model.first->weight.set_requires_grad(false);
  EXPECT_EQ(tlora::find_non_finite_gradient(model)->parameter, "second.bias");
  EXPECT_TRUE(contains(error_of([&] { tlora::check_finite_gradients(model, 12); }),
                       "at step 12: parameter 'second.bias' has 0 NaN and 1 infinite of its 6"));
}

}  // namespace
