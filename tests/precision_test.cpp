// bfloat16 mixed precision (tlora/precision.h): the autocast guard, the frozen-matrix cast, the
// tri-linear map under autocast against a float64 reference and the bfloat16 LibTorch chain, and
// a training step of a patched BERT.
#include "test_util.h"
#include "tiny_model.h"
#include "tolerance.h"
#include "tlora/core/functional.h"
#include "tlora/adapters/inject.h"
#include "tlora/models/bert.h"
#include "tlora/models/loading.h"
#include "tlora/core/precision.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <string>
#include <vector>

namespace {

using tlora::AutocastGuard;
using tlora::Precision;
using tlora::testing::error_of;

TEST(Precision, NamesRoundTripAndUnknownNamesAreRefused) {
  for (Precision p : {Precision::Float32, Precision::BFloat16Mixed, Precision::BFloat16}) {
    EXPECT_EQ(tlora::parse_precision(tlora::to_string(p)), p);
  }
  EXPECT_TRUE(tlora::testing::contains(error_of([] { tlora::parse_precision("bf32"); }),
                                       "unknown precision 'bf32'; choose fp32, bf16-mixed or bf16"));
}

TEST(Precision, AutocastGuardNestsAndRestores) {
  ASSERT_FALSE(at::autocast::is_autocast_enabled(at::kCPU));
  {
    AutocastGuard outer(at::kCPU);
    EXPECT_TRUE(at::autocast::is_autocast_enabled(at::kCPU));
    EXPECT_EQ(at::autocast::get_autocast_dtype(at::kCPU), at::kBFloat16);
    EXPECT_EQ(at::linear(at::randn({2, 3}), at::randn({4, 3})).scalar_type(), at::kBFloat16);
    {
      AutocastGuard off(at::kCPU, at::kBFloat16, /*enabled=*/false);
      EXPECT_EQ(at::linear(at::randn({2, 3}), at::randn({4, 3})).scalar_type(), at::kFloat);
    }
    EXPECT_TRUE(at::autocast::is_autocast_enabled(at::kCPU));
  }
  EXPECT_FALSE(at::autocast::is_autocast_enabled(at::kCPU));
}

TEST(Precision, CastsTheFrozenMatricesOnly) {
  tlora::testing::TinyEncoder model;
  tlora::InjectConfig config;
  config.adapter.rank = 4;
  config.target_modules = {"query", "value"};
  config.modules_to_save = {"classifier"};
  tlora::inject(*model, config);
  // Per layer: query, key, value, output, intermediate, output weights; the head trains.
  EXPECT_EQ(tlora::cast_frozen_matrices_(*model, at::kBFloat16), 2 * 6);
  for (const auto& p : model->named_parameters()) {
    const bool frozen_matrix = !p.value().requires_grad() && p.value().dim() == 2;
    EXPECT_EQ(p.value().scalar_type(), frozen_matrix ? at::kBFloat16 : at::kFloat) << p.key();
  }
  // The adapters' fixed projections stay as the adapter's other tensors are.
  for (const auto& b : model->named_buffers()) EXPECT_EQ(b.value().scalar_type(), at::kFloat) << b.key();
  EXPECT_EQ(tlora::cast_frozen_matrices_(*model, at::kBFloat16), 0) << "idempotent";
}

// max |a − reference| over the output and the gradients of x, M and α.
struct Errors {
  double y, dx, dcore, dscale;
};

Errors errors_against(const at::Tensor& y, const std::vector<at::Tensor>& grads, const at::Tensor& y_ref,
                      const std::vector<at::Tensor>& grads_ref) {
  const auto d = [](const at::Tensor& a, const at::Tensor& b) {
    return (a.to(at::kDouble) - b).abs().max().item<double>();
  };
  return {d(y, y_ref), d(grads[0], grads_ref[0]), d(grads[1], grads_ref[1]), d(grads[2], grads_ref[2])};
}

TEST(Precision, TriLinearUnderAutocastIsAtLeastAsAccurateAsTheBf16Chain) {
  at::manual_seed(5);
  const int64_t n = 64, in = 96, out = 80, r = 8;
  const auto f64 = at::TensorOptions(at::kDouble);
  const tlora::TriLinearWeights w64{at::randn({out, in}, f64) / 10, at::randn({out}, f64),
                                    at::randn({r, in}, f64) / 10,  at::randn({out, r}, f64) / 3,
                                    at::randn({r, r}, f64),        at::full({}, 0.7, f64)};
  const at::Tensor x64 = at::randn({n, in}, f64);
  const at::Tensor upstream = at::randn({n, out}, f64);
  // The float64 reference, with its gradients.
  const auto run = [&](const at::Tensor& x, const tlora::TriLinearWeights& w, bool composed, bool autocast) {
    const at::Tensor xi = x.detach().requires_grad_(true);
    const at::Tensor core = w.core.detach().requires_grad_(true);
    const at::Tensor scale = w.scale.detach().requires_grad_(true);
    const tlora::TriLinearWeights wi{w.weight, w.bias, w.down, w.up, core, scale};
    at::Tensor y;
    {
      AutocastGuard guard(at::kCPU, at::kBFloat16, autocast);
      y = composed ? tlora::tri_linear_composed(xi, wi) : tlora::tri_linear(xi, wi, tlora::Strategy::Factored);
    }
    const auto g = torch::autograd::grad({(y.to(at::kDouble) * upstream).sum()}, {xi, core, scale});
    return std::pair{y, g};
  };
  const auto [y_ref, g_ref] = run(x64, w64, true, false);

  // What a bf16-mixed model holds: float32 input, trainable core and scale in float32, the
  // frozen weight and projections in bfloat16 or float32 (autocast casts them either way).
  for (const at::ScalarType frozen : {at::kBFloat16, at::kFloat}) {
    SCOPED_TRACE(c10::toString(frozen));
    const tlora::TriLinearWeights w{w64.weight.to(frozen), w64.bias.to(at::kFloat), w64.down.to(frozen),
                                    w64.up.to(frozen),     w64.core.to(at::kFloat), w64.scale.to(at::kFloat)};
    const at::Tensor x = x64.to(at::kFloat);
    const auto [y, g] = run(x, w, false, true);
    EXPECT_EQ(y.scalar_type(), at::kBFloat16) << "a linear layer's output under autocast";
    EXPECT_EQ(g[0].scalar_type(), at::kFloat) << "the gradient returns to the input's dtype";
    EXPECT_EQ(g[1].scalar_type(), at::kFloat);
    EXPECT_EQ(g[2].scalar_type(), at::kFloat);
    const Errors ours = errors_against(y, g, y_ref, g_ref);
    // The chain checks dtypes itself; under autocast its float32 copies become bfloat16 again.
    const tlora::TriLinearWeights w_chain{w.weight.to(at::kFloat), w.bias, w.down.to(at::kFloat),
                                          w.up.to(at::kFloat), w.core, w.scale};
    const auto [y_chain, g_chain] = run(x, w_chain, true, true);
    EXPECT_EQ(y_chain.scalar_type(), at::kBFloat16);
    const Errors chain = errors_against(y_chain, g_chain, y_ref, g_ref);
    // The design's rule for low precision: at most twice the same-precision chain's error.
    EXPECT_LE(ours.y, 2 * chain.y);
    EXPECT_LE(ours.dx, 2 * chain.dx);
    EXPECT_LE(ours.dcore, 2 * chain.dcore);
    EXPECT_LE(ours.dscale, 2 * chain.dscale);
    // And far from float32's: bfloat16 was really used (a rounding of the output alone).
    EXPECT_GT(ours.y, tlora::testing::float32_tolerance(y_ref, in, 2));
    std::cout << "bf16-mixed tri_linear (frozen " << frozen << ") max error vs float64: y " << ours.y << " (chain "
              << chain.y << "), dx " << ours.dx << " (" << chain.dx << "), dM " << ours.dcore << " ("
              << chain.dcore << "), dα " << ours.dscale << " (" << chain.dscale << ")\n";
  }
}

// LoRA's case: A and B trained in float32 while autocast runs the products in bfloat16. Their
// gradients come back in float32, within twice the bfloat16 chain's error of float64's.
TEST(Precision, TrainedFactorsUnderAutocastAreAsAccurateAsTheBf16Chain) {
  at::manual_seed(6);
  const int64_t n = 64, in = 96, out = 80, r = 8;
  const auto f64 = at::TensorOptions(at::kDouble);
  const tlora::TriLinearWeights w64{at::randn({out, in}, f64) / 10, at::Tensor(), at::randn({r, in}, f64) / 10,
                                    at::randn({out, r}, f64) / 3, at::eye(r, f64), at::full({}, 2.0, f64)};
  const at::Tensor x64 = at::randn({n, in}, f64);
  const at::Tensor upstream = at::randn({n, out}, f64);
  const auto run = [&](at::ScalarType dtype, bool composed, bool autocast) {
    const auto cast = [&](const at::Tensor& t) { return t.to(dtype); };
    const at::Tensor down = cast(w64.down).requires_grad_(true), up = cast(w64.up).requires_grad_(true);
    const tlora::TriLinearWeights w{cast(w64.weight), {}, down, up, cast(w64.core), cast(w64.scale)};
    at::Tensor y;
    {
      AutocastGuard guard(at::kCPU, at::kBFloat16, autocast);
      y = composed ? tlora::tri_linear_composed(cast(x64), w) : tlora::tri_linear(cast(x64), w, tlora::Strategy::Factored);
    }
    return torch::autograd::grad({(y.to(at::kDouble) * upstream).sum()}, {down, up});
  };
  const auto ref = run(at::kDouble, true, false);
  const auto ours = run(at::kFloat, false, true);
  const auto chain = run(at::kFloat, true, true);
  const auto d = [](const at::Tensor& a, const at::Tensor& b) { return (a.to(at::kDouble) - b).abs().max().item<double>(); };
  for (size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(i == 0 ? "dA" : "dB");
    EXPECT_EQ(ours[i].scalar_type(), at::kFloat);
    EXPECT_LE(d(ours[i], ref[i]), 2 * d(chain[i], ref[i]));
    std::cout << "bf16-mixed trained factor " << i << " max error vs float64: " << d(ours[i], ref[i]) << " (chain " << d(chain[i], ref[i]) << ") of max " << ref[i].abs().max().item<double>() << "\n";
    // bfloat16 was really used: far from float32's rounding of the same sums.
    EXPECT_GT(d(ours[i], ref[i]), tlora::testing::float32_tolerance(ref[i], n, 2));
  }
}

TEST(Precision, MixedTrainingStepOfAPatchedBert) {
  const std::string dir = TLORA_FIXTURE_DIR "/models/bert-tiny";
  const auto make = [&] {
    auto model = tlora::models::from_pretrained<tlora::models::BertForSequenceClassification>(dir);
    tlora::InjectConfig config;
    config.adapter.rank = 4;
    config.target_modules = {"query", "value"};
    config.modules_to_save = {"classifier"};
    tlora::inject(*model, config);
    at::NoGradGuard no_grad;
    for (auto& p : model->named_parameters()) {
      if (p.key().ends_with(".default.core")) p.value().normal_(0, 0.5);
    }
    model->eval();  // no dropout: both precisions compute the same function
    return model;
  };
  at::manual_seed(3);
  auto fp32 = make();
  at::manual_seed(3);
  auto mixed = make();
  EXPECT_GT(tlora::cast_frozen_matrices_(*mixed, at::kBFloat16), 0);
  const at::Tensor ids = at::randint(1, 500, {4, 12}, at::kLong);
  const at::Tensor labels = at::randint(0, 2, {4, 4}).to(at::kFloat);

  const at::Tensor loss32 = fp32->loss(fp32(ids), labels);
  loss32.backward();
  at::Tensor loss16, hidden;
  {
    AutocastGuard guard(at::kCPU);
    hidden = mixed->bert(ids).last_hidden_state;
    loss16 = mixed->loss(mixed(ids), labels);
  }
  EXPECT_EQ(hidden.scalar_type(), at::kFloat) << "the residual stream and LayerNorm stay in float32";
  EXPECT_EQ(loss16.scalar_type(), at::kFloat);
  loss16.backward();

  // bfloat16 rounds each of the model's products: relative to the float32 values, the norm of
  // the difference is of the order of √K·u per stage (K = 64, u = 2^-8) over its 2·2 + 2 stages.
  const double bound = 6 * std::sqrt(64.0) * tlora::testing::unit_roundoff(at::kBFloat16);
  EXPECT_LT(std::abs(loss16.item<double>() - loss32.item<double>()), bound * std::abs(loss32.item<double>()));
  auto p32 = fp32->named_parameters();
  int checked = 0;
  for (const auto& p : mixed->named_parameters()) {
    if (!p.value().requires_grad()) {
      EXPECT_FALSE(p.value().grad().defined()) << p.key();
      continue;
    }
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_EQ(p.value().scalar_type(), at::kFloat) << p.key() << ": master weights stay float32";
    EXPECT_EQ(p.value().grad().scalar_type(), at::kFloat) << p.key();
    const at::Tensor g32 = p32[p.key()].grad();
    const double relative = (p.value().grad() - g32).norm().item<double>() / g32.norm().item<double>();
    EXPECT_LT(relative, bound) << p.key();
    ++checked;
  }
  EXPECT_EQ(checked, 2 * 2 * 2 + 2) << "core and scale of 4 layers, the head's weight and bias";
}

}  // namespace
