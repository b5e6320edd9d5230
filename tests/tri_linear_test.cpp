// The custom autograd function against finite differences and the composed LibTorch chain.
#include "tlora/core/functional.h"
#include "tlora/core/live_bytes.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <string>
#include <vector>

namespace {

using tlora::AdapterDropout;
using tlora::DropoutPosition;
using tlora::Strategy;
using tlora::TriLinearWeights;

constexpr int64_t kIn = 5, kOut = 4, kRank = 3;

TriLinearWeights random_weights(at::ScalarType dtype = at::kDouble, bool with_bias = true) {
  at::manual_seed(17);
  const auto o = at::TensorOptions(dtype);
  TriLinearWeights w{at::randn({kOut, kIn}, o), with_bias ? at::randn({kOut}, o) : at::Tensor(),
                     at::randn({kRank, kIn}, o),  at::randn({kOut, kRank}, o),
                     at::randn({kRank, kRank}, o), at::full({}, 0.7, o)};
  w.core.requires_grad_(true);
  w.scale.requires_grad_(true);
  return w;
}

AdapterDropout dropout(double p, DropoutPosition position) {
  return AdapterDropout{p, position, /*seed=*/99, /*stream=*/1234};
}

struct Case {
  Strategy strategy;
  AdapterDropout dropout;
  std::string name;
};

std::vector<Case> cases() {
  return {{Strategy::Factored, {}, "factored"},
          {Strategy::Merged, {}, "merged"},
          {Strategy::Auto, {}, "auto"},
          {Strategy::Factored, dropout(0.4, DropoutPosition::Output), "factored_dropout_output"},
          {Strategy::Factored, dropout(0.4, DropoutPosition::Input), "factored_dropout_input"},
          {Strategy::Auto, dropout(0.4, DropoutPosition::Output), "auto_dropout_output"}};
}

// Loss L = Σ y ⊙ R, so ∂L/∂y = R is dense and every output element matters.
double loss(const at::Tensor& y, const at::Tensor& r) { return (y * r).sum().item<double>(); }

// Central differences of L with respect to every element of `param`. L is linear in each of
// x, M and α alone, so the differences are exact up to rounding.
at::Tensor finite_difference(at::Tensor param, const std::function<double()>& eval) {
  at::NoGradGuard no_grad;
  const double eps = 1e-6;
  at::Tensor grad = at::zeros_like(param);
  auto flat = param.view({-1});
  auto g = grad.view({-1});
  for (int64_t i = 0; i < flat.numel(); ++i) {
    const double v = flat[i].item<double>();
    flat[i] = v + eps;
    const double up = eval();
    flat[i] = v - eps;
    const double down = eval();
    flat[i] = v;
    g[i] = (up - down) / (2 * eps);
  }
  return grad;
}

TEST(TriLinear, GradientsMatchFiniteDifferences) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    TriLinearWeights w = random_weights();
    w.weight.requires_grad_(true);  // full fine-tuning path: dW and db too
    w.bias.requires_grad_(true);
    const at::Tensor x = at::randn({2, 3, kIn}, at::kDouble).requires_grad_(true);
    const at::Tensor r = at::randn({2, 3, kOut}, at::kDouble);
    const at::Tensor y = tlora::tri_linear(x, w, c.strategy, c.dropout);
    const auto grads = torch::autograd::grad({(y * r).sum()}, {x, w.core, w.scale, w.weight, w.bias});

    auto eval = [&] { return loss(tlora::tri_linear(x, w, c.strategy, c.dropout), r); };
    const std::vector<at::Tensor> params{x, w.core, w.scale, w.weight, w.bias};
    const char* names[] = {"x", "core", "scale", "weight", "bias"};
    for (size_t i = 0; i < params.size(); ++i) {
      const at::Tensor numeric = finite_difference(params[i].detach(), eval);
      EXPECT_TRUE(at::allclose(grads[i], numeric, 1e-7, 1e-8))
          << names[i] << "\nanalytic " << grads[i] << "\nnumeric " << numeric;
    }
  }
}

// LoRA trains A and B through the same function (M = I, α = alpha/r); L is linear in each of
// A and B alone as well.
TEST(TriLinear, TrainedFactorsMatchFiniteDifferencesAndTheChain) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    TriLinearWeights w = random_weights();
    w.down.requires_grad_(true);
    w.up.requires_grad_(true);
    const at::Tensor x = at::randn({2, 3, kIn}, at::kDouble).requires_grad_(true);
    const at::Tensor r = at::randn({2, 3, kOut}, at::kDouble);
    const std::vector<at::Tensor> params{x, w.down, w.up, w.core, w.scale};
    const auto grads = torch::autograd::grad({(tlora::tri_linear(x, w, c.strategy, c.dropout) * r).sum()}, params);
    const auto chain = torch::autograd::grad({(tlora::tri_linear_composed(x, w, c.dropout) * r).sum()}, params);
    auto eval = [&] { return loss(tlora::tri_linear(x, w, c.strategy, c.dropout), r); };
    const char* names[] = {"x", "down", "up", "core", "scale"};
    for (size_t i = 0; i < params.size(); ++i) {
      const at::Tensor numeric = finite_difference(params[i].detach(), eval);
      EXPECT_TRUE(at::allclose(grads[i], numeric, 1e-7, 1e-8))
          << names[i] << "\nanalytic " << grads[i] << "\nnumeric " << numeric;
      EXPECT_TRUE(at::allclose(grads[i], chain[i], 1e-12, 1e-12)) << names[i];
    }
  }
}

TEST(TriLinear, EqualsComposedChainForEveryStrategy) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const TriLinearWeights w = random_weights();
    const at::Tensor x = at::randn({7, kIn}, at::kDouble).requires_grad_(true);
    const at::Tensor r = at::randn({7, kOut}, at::kDouble);
    const at::Tensor y = tlora::tri_linear(x, w, c.strategy, c.dropout);
    const at::Tensor ref = tlora::tri_linear_composed(x, w, c.dropout);
    EXPECT_TRUE(at::allclose(y, ref, 1e-12, 1e-12));
    const auto g = torch::autograd::grad({(y * r).sum()}, {x, w.core, w.scale});
    const auto gr = torch::autograd::grad({(ref * r).sum()}, {x, w.core, w.scale});
    for (size_t i = 0; i < g.size(); ++i) EXPECT_TRUE(at::allclose(g[i], gr[i], 1e-12, 1e-12)) << i;
  }
}

// Merged backward takes the factored route for dx when N ≤ out and rebuilds W_eff otherwise.
TEST(TriLinear, MergedBackwardRoutesAgree) {
  for (int64_t n : std::initializer_list<int64_t>{1, 2, kOut, kOut + 1, 9}) {
    SCOPED_TRACE(n);
    const TriLinearWeights w = random_weights();
    const at::Tensor x = at::randn({n, kIn}, at::kDouble).requires_grad_(true);
    const at::Tensor r = at::randn({n, kOut}, at::kDouble);
    const auto g = torch::autograd::grad({(tlora::tri_linear(x, w, Strategy::Merged) * r).sum()}, {x, w.core, w.scale});
    const auto gr = torch::autograd::grad({(tlora::tri_linear_composed(x, w) * r).sum()}, {x, w.core, w.scale});
    for (size_t i = 0; i < g.size(); ++i) EXPECT_TRUE(at::allclose(g[i], gr[i], 1e-12, 1e-12)) << i;
  }
}

TEST(TriLinear, DropoutChangesTheOutputAndIsReproducible) {
  const TriLinearWeights w = random_weights();
  const at::Tensor x = at::randn({64, kIn}, at::kDouble);
  const auto d = dropout(0.5, DropoutPosition::Output);
  const at::Tensor a = tlora::tri_linear(x, w, Strategy::Factored, d);
  EXPECT_TRUE(at::equal(a, tlora::tri_linear(x, w, Strategy::Factored, d)));
  EXPECT_FALSE(at::allclose(a, tlora::tri_linear(x, w, Strategy::Factored, {})));
  auto other = d;
  other.stream += 1;
  EXPECT_FALSE(at::allclose(a, tlora::tri_linear(x, w, Strategy::Factored, other)));
}

TEST(TriLinear, WithoutBiasAndWithoutInputGrad) {
  const TriLinearWeights w = random_weights(at::kDouble, /*with_bias=*/false);
  const at::Tensor x = at::randn({3, kIn}, at::kDouble);
  for (Strategy s : {Strategy::Factored, Strategy::Merged}) {
    const at::Tensor y = tlora::tri_linear(x, w, s);
    const at::Tensor ref = tlora::tri_linear_composed(x, w);
    EXPECT_TRUE(at::allclose(y, ref, 1e-12, 1e-12));
    const auto g = torch::autograd::grad({y.pow(2).sum()}, {w.core, w.scale});
    const auto gr = torch::autograd::grad({ref.pow(2).sum()}, {w.core, w.scale});
    EXPECT_TRUE(at::allclose(g[0], gr[0], 1e-12, 1e-12) && at::allclose(g[1], gr[1], 1e-12, 1e-12));
  }
}

TEST(TriLinear, NonContiguousInput) {
  const TriLinearWeights w = random_weights();
  const at::Tensor x = at::randn({kIn, 6}, at::kDouble).t();  // [6, in], transposed storage
  ASSERT_FALSE(x.is_contiguous());
  for (Strategy s : {Strategy::Factored, Strategy::Merged}) {
    EXPECT_TRUE(at::allclose(tlora::tri_linear(x, w, s), tlora::tri_linear_composed(x, w), 1e-12, 1e-12));
  }
}

TEST(TriLinear, HalfPrecisionAccumulatesInFloat) {
  const TriLinearWeights w64 = random_weights();
  const at::Tensor x64 = at::randn({32, kIn}, at::kDouble);
  const at::Tensor ref = tlora::tri_linear_composed(x64, w64);
  for (auto dt : {at::kBFloat16, at::kHalf}) {
    SCOPED_TRACE(c10::toString(dt));
    TriLinearWeights w{w64.weight.to(dt), w64.bias.to(dt), w64.down.to(dt), w64.up.to(dt),
                       w64.core.detach().to(at::kFloat).requires_grad_(true),
                       w64.scale.detach().to(at::kFloat).requires_grad_(true)};
    const at::Tensor x = x64.to(dt);
    for (Strategy s : {Strategy::Factored, Strategy::Merged}) {
      const at::Tensor y = tlora::tri_linear(x, w, s);
      EXPECT_EQ(y.scalar_type(), dt);
      // Our error against fp64 at most 2x that of the same-precision LibTorch chain.
      const double ours = (y.to(at::kDouble) - ref).abs().max().item<double>();
      TriLinearWeights wc = w;
      wc.core = w.core.to(dt);
      wc.scale = w.scale.to(dt);
      const double chain =
          (tlora::tri_linear_composed(x, wc).to(at::kDouble) - ref).abs().max().item<double>();
      EXPECT_LE(ours, 2 * chain + 1e-3) << "ours " << ours << " chain " << chain;
      const auto g = torch::autograd::grad({y.to(at::kFloat).sum()}, {w.core, w.scale});
      EXPECT_EQ(g[0].scalar_type(), at::kFloat);
      EXPECT_EQ(g[1].scalar_type(), at::kFloat);
    }
  }
}

TEST(TriLinear, AutoStrategyCostModel) {
  EXPECT_EQ(tlora::choose_strategy(4096, 768, 768, 32, false), Strategy::Merged);
  EXPECT_EQ(tlora::choose_strategy(16, 768, 768, 32, false), Strategy::Factored);
  EXPECT_EQ(tlora::choose_strategy(4096, 768, 768, 32, true), Strategy::Factored);
  EXPECT_EQ(tlora::choose_strategy(768, 768, 768, 32, false), Strategy::Merged);  // 2·in·out/(in+out)
  EXPECT_EQ(tlora::choose_strategy(767, 768, 768, 32, false), Strategy::Factored);
}

// What the graph keeps alive after forward, measured by a counting allocator.
int64_t saved_bytes(const std::function<at::Tensor()>& forward) {
  const tlora::LiveBytes live(c10::kCPU);
  const int64_t before = live.current();
  at::Tensor y = forward();
  return live.current() - before - static_cast<int64_t>(y.nbytes());
}

TEST(TriLinear, KeepsOnlyRankSizedActivations) {
  const int64_t n = 512, in = 64, out = 48, r = 4;
  const auto o = at::TensorOptions(at::kFloat);
  TriLinearWeights w{at::randn({out, in}, o), at::randn({out}, o), at::randn({r, in}, o),
                     at::randn({out, r}, o), at::randn({r, r}, o).requires_grad_(true),
                     at::full({}, 0.5, o).requires_grad_(true)};
  // x comes from an op that keeps nothing, as an activation inside a network would.
  const at::Tensor x0 = at::randn({n, in}, o).requires_grad_(true);
  const int64_t u_bytes = n * r * 4;
  for (const auto& d : {AdapterDropout{}, dropout(0.5, DropoutPosition::Output),
                        dropout(0.5, DropoutPosition::Input)}) {
    SCOPED_TRACE(d.p == 0 ? "no dropout" : std::string(tlora::to_string(d.position)));
    const int64_t ours = saved_bytes([&] { return tlora::tri_linear(x0 * 2, w, Strategy::Factored, d); });
    EXPECT_EQ(ours, u_bytes) << "TLoRA must keep exactly u = x·Aᵀ (N×r)";
    const int64_t chain = saved_bytes([&] { return tlora::tri_linear_composed(x0 * 2, w, d); });
    // The chain keeps u for dM and the N×out adapter output for dα, plus N-sized masks.
    EXPECT_GE(chain, u_bytes + n * out * 4);
    if (d.p > 0 && d.position == DropoutPosition::Input) EXPECT_GE(chain, n * in * 4);
  }
  const int64_t merged = saved_bytes([&] { return tlora::tri_linear(x0 * 2, w, Strategy::Merged); });
  EXPECT_EQ(merged, u_bytes) << "merged rebuilds W_eff in backward instead of keeping it";
}

TEST(TriLinear, ErrorsNameTheLayerAndShapes) {
  const TriLinearWeights w = random_weights();
  auto message = [&](const at::Tensor& x, TriLinearWeights ww, Strategy s = Strategy::Factored,
                     AdapterDropout d = {}) -> std::string {
    try {
      tlora::tri_linear(x, ww, s, d, "layer.q");
    } catch (const c10::Error& e) {
      return e.what_without_backtrace();
    }
    return "no error";
  };
  EXPECT_NE(message(at::randn({2, 7}, at::kDouble), w).find("layer.q: input shape [2, 7] does not end in in_features=5"), std::string::npos);
  EXPECT_NE(message(at::ones({2, kIn}, at::kLong), w).find("floating-point"), std::string::npos);
  EXPECT_NE(message(at::randn({2, kIn}, at::kFloat), w).find("dtype"), std::string::npos);
  TriLinearWeights bad = w;
  bad.core = at::randn({2, 2}, at::kDouble);
  EXPECT_NE(message(at::randn({2, kIn}, at::kDouble), bad).find("core (M) must be 3×3"), std::string::npos);
  bad = w;
  bad.up = at::randn({kOut, 2}, at::kDouble);
  EXPECT_NE(message(at::randn({2, kIn}, at::kDouble), bad).find("up (B)"), std::string::npos);
  EXPECT_NE(message(at::randn({2, kIn}, at::kDouble), w, Strategy::Merged, dropout(0.5, DropoutPosition::Output)).find("merged strategy cannot apply adapter dropout"), std::string::npos);
  EXPECT_NE(message(at::randn({2, kIn}, at::kDouble), w, Strategy::Factored, dropout(1.0, DropoutPosition::Output)).find("dropout must be in [0, 1)"), std::string::npos);
}

}  // namespace
