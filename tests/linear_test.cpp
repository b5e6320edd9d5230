// TLoRALinear as a module: construction, freezing, merge/unmerge, errors, and training.
#include "test_util.h"
#include "tolerance.h"
#include "tlora/adapters/inject.h"
#include "tlora/adapters/tlora_linear.h"
#include "tlora/core/projections.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/optim/adam.h>

#include <sstream>
#include <string>

namespace {

using tlora::TLoRALinear;
using tlora::TLoRALinearOptions;

using tlora::testing::error_of;

TEST(TLoRALinear, ParametersBuffersAndFreezing) {
  TLoRALinear layer(TLoRALinearOptions(16, 12, 4).name("blocks.0.attn.q"));
  std::vector<std::string> trainable, frozen;
  for (const auto& p : layer->named_parameters()) {
    (p.value().requires_grad() ? trainable : frozen).push_back(p.key());
  }
  EXPECT_EQ(trainable, (std::vector<std::string>{"default.core", "default.scale"}));
  EXPECT_EQ(frozen, (std::vector<std::string>{"weight", "bias"}));
  const auto buffers = layer->named_buffers();
  ASSERT_EQ(buffers.size(), 2u);
  EXPECT_EQ(buffers["default.down"].sizes(), (std::vector<int64_t>{4, 16}));
  EXPECT_EQ(buffers["default.up"].sizes(), (std::vector<int64_t>{12, 4}));
  EXPECT_EQ(layer->adapter_names(), std::vector<std::string>{"default"});
  EXPECT_EQ(layer->adapter_parameter_count(), 4 * 4 + 1);
  EXPECT_TRUE(at::equal(layer->core, at::zeros({4, 4})));
  EXPECT_EQ(layer->scale.item<double>(), 1.0);
  EXPECT_EQ(layer->scale.dim(), 0);
}

TEST(TLoRALinear, InitSchemeNamesRoundTrip) {
  for (const tlora::InitScheme scheme : tlora::kInitSchemes) {
    EXPECT_EQ(tlora::init_scheme_from_string(tlora::to_string(scheme)), scheme);
  }
  try {
    tlora::init_scheme_from_string("gaussian");
    FAIL() << "an unknown scheme was accepted";
  } catch (const c10::Error& e) {
    const std::string message = e.what_without_backtrace();
    EXPECT_NE(message.find("\"gaussian\""), std::string::npos) << message;
    EXPECT_NE(message.find("paper, unit, orthonormal"), std::string::npos) << message;
  }
}

TEST(TLoRALinear, InitSchemesHaveTheDocumentedSpread) {
  const int64_t in = 256, out = 384, r = 32;
  TLoRALinear paper(TLoRALinearOptions(in, out, r));
  EXPECT_NEAR(paper->down.std().item<double>(), 1 / std::sqrt(3.0 * r), 0.01);
  EXPECT_NEAR(paper->up.std().item<double>(), 1 / std::sqrt(3.0 * out), 0.002);
  TLoRALinear unit(TLoRALinearOptions(in, out, r).init(tlora::InitScheme::Unit));
  EXPECT_NEAR(unit->down.std().item<double>(), 1 / std::sqrt(double(in)), 0.003);
  EXPECT_NEAR(unit->up.std().item<double>(), 1 / std::sqrt(double(r)), 0.01);
}

// Orthonormal draws: A·Aᵀ = (in/(3r))·I and BᵀB = I/3 up to float32 rounding of the stored values
// (Gram–Schmidt runs in float64), from the same streams as the paper's Gaussian draws.
TEST(TLoRALinear, OrthonormalInitHasOrthogonalRowsAtThePapersScale) {
  const int64_t in = 96, out = 64, r = 16;
  TLoRALinear ortho(TLoRALinearOptions(in, out, r).init(tlora::InitScheme::Orthonormal).seed(7).name("q"));
  const at::Tensor a = ortho->down.to(at::kDouble), b = ortho->up.to(at::kDouble);
  const double a_sq = in / (3.0 * r), b_sq = 1.0 / 3.0;
  const at::Tensor aat = a.mm(a.t()), btb = b.t().mm(b);
  EXPECT_LT((aat - a_sq * at::eye(r, at::kDouble)).abs().max().item<double>(),
            tlora::testing::rounding_tolerance(at::kFloat, a_sq, in));
  EXPECT_LT((btb - b_sq * at::eye(r, at::kDouble)).abs().max().item<double>(),
            tlora::testing::rounding_tolerance(at::kFloat, b_sq, out));
  TLoRALinear again(TLoRALinearOptions(in, out, r).init(tlora::InitScheme::Orthonormal).seed(7).name("q"));
  EXPECT_TRUE(at::equal(ortho->down, again->down) && at::equal(ortho->up, again->up));
  // The first row is the paper's first Gaussian row, normalised: the same stream.
  TLoRALinear paper(TLoRALinearOptions(in, out, r).seed(7).name("q"));
  const at::Tensor row = paper->down[0].to(at::kDouble);
  EXPECT_TRUE(at::allclose(a[0], row / row.norm() * std::sqrt(a_sq), 1e-6, 1e-6));
  EXPECT_THROW(
      {
        try {
          tlora::draw_projections(8, 64, 16, tlora::InitScheme::Orthonormal, 1, "narrow", at::kFloat);
        } catch (const c10::Error& e) {
          EXPECT_NE(std::string(e.what_without_backtrace()).find("'narrow'"), std::string::npos);
          EXPECT_NE(std::string(e.what_without_backtrace()).find("rank 16"), std::string::npos);
          throw;
        }
      },
      c10::Error);
}

// With train_scale off α is a buffer at scale_init: not trained, not counted, not in the optimiser.
TEST(TLoRALinear, FixedScaleIsABufferThatNeverMoves) {
  TLoRALinear layer(TLoRALinearOptions(16, 12, 4).scale_init(0.5).train_scale(false).name("fc"));
  std::vector<std::string> params;
  for (const auto& p : layer->named_parameters()) params.push_back(p.key());
  EXPECT_EQ(params, (std::vector<std::string>{"weight", "bias", "default.core"}));
  EXPECT_EQ(layer->adapter_parameter_count(), 4 * 4);
  ASSERT_TRUE(layer->named_buffers().contains("default.scale"));
  EXPECT_FALSE(layer->scale.requires_grad());
  torch::optim::Adam opt(tlora::trainable_parameters(*layer), torch::optim::AdamOptions(0.1));
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    layer(at::randn({5, 16})).pow(2).sum().backward();
    opt.step();
  }
  EXPECT_EQ(layer->scale.item<double>(), 0.5);
  EXPECT_GT(layer->core.abs().sum().item<double>(), 0) << "the core did not train";
}

TEST(TLoRALinear, ProjectionsDependOnSeedAndNameOnly) {
  auto make = [](uint64_t seed, const std::string& name) {
    return TLoRALinear(TLoRALinearOptions(8, 8, 2).seed(seed).name(name));
  };
  const auto a = make(3, "q"), b = make(3, "q"), c = make(3, "v"), d = make(4, "q");
  EXPECT_TRUE(at::equal(a->down, b->down) && at::equal(a->up, b->up));
  EXPECT_FALSE(at::equal(a->down, c->down));
  EXPECT_FALSE(at::equal(a->down, d->down));
}

TEST(TLoRALinear, ZeroCoreEqualsBaseLayerExactly) {
  torch::nn::Linear base(torch::nn::LinearOptions(10, 6));
  const at::Tensor x = at::randn({4, 5, 10});
  for (auto s : {tlora::Strategy::Factored, tlora::Strategy::Merged}) {
    TLoRALinear layer(base, TLoRALinearOptions::like(base, 3).strategy(s));
    EXPECT_TRUE(at::equal(layer(x), base(x))) << tlora::to_string(s);
  }
}

TEST(TLoRALinear, SharesTheAdaptedLinearsWeights) {
  torch::nn::Linear base(torch::nn::LinearOptions(6, 4).bias(false));
  TLoRALinear layer(base, TLoRALinearOptions::like(base, 2));
  EXPECT_EQ(layer->weight.data_ptr(), base->weight.data_ptr());
  EXPECT_FALSE(layer->bias.defined());
  EXPECT_FALSE(base->weight.requires_grad());
  EXPECT_NE(error_of([&] { TLoRALinear(base, TLoRALinearOptions(6, 5, 2).bias(false)); })
                .find("do not match the AdaptableLinear being adapted"),
            std::string::npos);
}

TEST(TLoRALinear, ForwardMatchesDeltaWeightInDouble) {
  TLoRALinear layer(TLoRALinearOptions(9, 7, 3));
  layer->to(at::kDouble);
  {
    at::NoGradGuard g;
    layer->core.normal_();
    layer->scale.fill_(0.3);
  }
  const at::Tensor delta = 0.3 * layer->up.mm(layer->core).mm(layer->down);
  EXPECT_TRUE(at::allclose(layer->delta_weight(), delta, 1e-14, 1e-14));
  const at::Tensor x = at::randn({2, 3, 9}, at::kDouble);
  const at::Tensor ref = at::linear(x, layer->weight + delta, layer->bias);
  EXPECT_TRUE(at::allclose(layer(x), ref, 1e-12, 1e-12));
}

TEST(TLoRALinear, MergeUnmerge) {
  TLoRALinear layer(TLoRALinearOptions(32, 24, 4));
  {
    at::NoGradGuard g;
    layer->core.normal_(0, 0.5);
    layer->scale.fill_(1.7);
  }
  const at::Tensor original = layer->weight.clone();
  const at::Tensor x = at::randn({5, 32});
  const at::Tensor adapted = layer(x);

  // Merged and factored round differently: a product of 32 terms and the rank-4 update.
  const double output_tolerance = tlora::testing::float32_tolerance(adapted, 32, 2);
  layer->merge();
  EXPECT_TRUE(layer->merged());
  EXPECT_LT((layer(x) - adapted).abs().max().item<double>(), output_tolerance);
  EXPECT_FALSE(at::equal(layer->weight, original));
  EXPECT_NE(error_of([&] { layer->merge(); }).find("already merged"), std::string::npos);
  layer->unmerge();
  EXPECT_TRUE(at::equal(layer->weight, original)) << "kept original restores bit-exactly";

  layer->merge(/*keep_original=*/false);
  layer->unmerge();
  // W + ΔW, then − ΔW: two roundings at the scale of W + ΔW.
  EXPECT_LT((layer->weight - original).abs().max().item<double>(),
            tlora::testing::float32_tolerance(original.abs() + layer->delta_weight().abs(), 1, 2))
      << "subtraction restores to rounding";
  EXPECT_LT((layer(x) - adapted).abs().max().item<double>(), output_tolerance);
  EXPECT_NE(error_of([&] { layer->unmerge(); }).find("unmerge() without merge()"), std::string::npos);
}

TEST(TLoRALinear, AcceptsAnyLeadingShape) {
  TLoRALinear layer(TLoRALinearOptions(8, 3, 2));
  EXPECT_EQ(layer(at::randn({8})).sizes(), (std::vector<int64_t>{3}));
  EXPECT_EQ(layer(at::randn({2, 3, 4, 8})).sizes(), (std::vector<int64_t>{2, 3, 4, 3}));
  EXPECT_EQ(layer(at::randn({0, 8})).sizes(), (std::vector<int64_t>{0, 3}));
}

TEST(TLoRALinear, DropoutOnlyInTrainingAndFreshPerCall) {
  TLoRALinear layer(TLoRALinearOptions(16, 16, 4).dropout(0.5).name("d"));
  TLoRALinear plain(TLoRALinearOptions(16, 16, 4).name("d"));
  {
    at::NoGradGuard g;
    layer->core.normal_();
    plain->weight.copy_(layer->weight);
    plain->bias.copy_(layer->bias);
    plain->core.copy_(layer->core);
  }
  const at::Tensor x = at::randn({8, 16});
  const at::Tensor a = layer(x), b = layer(x);
  EXPECT_FALSE(at::equal(a, b)) << "each training call draws a new mask";
  layer->eval();
  EXPECT_TRUE(at::equal(layer(x), layer(x)));
  EXPECT_TRUE(at::equal(layer(x), plain(x))) << "evaluation applies no dropout";
}

TEST(TLoRALinear, OptionErrorsNameTheLayer) {
  auto err = [](TLoRALinearOptions o) { return error_of([&] { TLoRALinear l(o); }); };
  EXPECT_NE(err(TLoRALinearOptions(8, 4, 0).name("enc.q")).find("TLoRALinear 'enc.q': rank must be in [1, min(in_features, out_features)] = [1, 4], got 0"), std::string::npos);
  EXPECT_NE(err(TLoRALinearOptions(8, 4, 5)).find("got 5"), std::string::npos);
  EXPECT_NE(err(TLoRALinearOptions(8, 4, 2).dropout(1.0)).find("dropout must be in [0, 1), got 1"), std::string::npos);
  EXPECT_NE(err(TLoRALinearOptions(8, 4, 2).dropout(-0.1)).find("dropout must be in [0, 1)"), std::string::npos);
  EXPECT_NE(err(TLoRALinearOptions(0, 4, 1)).find("must be positive"), std::string::npos);
}

TEST(TLoRALinear, InputErrorsNameTheLayerAndShapes) {
  TLoRALinear layer(TLoRALinearOptions(8, 4, 2).name("enc.v"));
  EXPECT_NE(error_of([&] { layer(at::randn({2, 3, 7})); }).find("TLoRALinear 'enc.v': input shape [2, 3, 7] does not end in in_features=8"), std::string::npos);
  EXPECT_NE(error_of([&] { layer(at::ones({2, 8}, at::kInt)); }).find("floating-point"), std::string::npos);
  EXPECT_NE(error_of([&] { layer(at::ones({2, 8}, at::kDouble)); }).find("differs from the layer's dtype Float"), std::string::npos);
  layer->merge();
  EXPECT_NE(error_of([&] { layer(at::randn({7})); }).find("does not end in in_features=8"), std::string::npos);
}

TEST(TLoRALinear, PrettyPrint) {
  TLoRALinear layer(TLoRALinearOptions(8, 4, 2).dropout(0.5).bias(false));
  std::ostringstream s;
  s << *layer;
  EXPECT_EQ(s.str(), "tlora::TLoRALinear(in_features=8, out_features=4, rank=2, bias=false, "
                     "init=paper, strategy=auto, dropout=0.5@output)(\n  (default): tlora\n)");
}

// Unnamed layers get distinct names, so they never share A and B; named ones must be unique
// within a model.
TEST(TLoRALinear, NamesKeyTheProjectionsAndMustBeUnique) {
  TLoRALinear a(TLoRALinearOptions(8, 8, 2)), b(TLoRALinearOptions(8, 8, 2));
  EXPECT_NE(a->tlora_options().name(), b->tlora_options().name());
  EXPECT_EQ(a->tlora_options().name().rfind("tlora_linear.", 0), 0u);
  EXPECT_FALSE(at::equal(a->down, b->down));

  struct Twins : torch::nn::Module {
    Twins() {
      register_module("first", TLoRALinear(TLoRALinearOptions(8, 8, 2).name("q")));
      register_module("second", TLoRALinear(TLoRALinearOptions(8, 8, 2).name("q")));
    }
  } twins;
  EXPECT_NE(error_of([&] { tlora::trainable_parameters(twins); })
                .find("the layers 'first' and 'second' are both named 'q'"),
            std::string::npos);
}

// A TLoRALinear is a host like any other: the model-wide functions see its adapter.
TEST(TLoRALinear, IsAnAdapterHost) {
  struct Net : torch::nn::Module {
    Net() : fc(register_module("fc", TLoRALinear(TLoRALinearOptions(8, 6, 2).name("fc")))) {}
    TLoRALinear fc;
  } net;
  {
    at::NoGradGuard g;
    net.fc->core.normal_();
  }
  EXPECT_EQ(tlora::trainable_parameters(net).size(), 2u);
  const at::Tensor x = at::randn({3, 8});
  const at::Tensor adapted = net.fc(x).detach();
  {
    tlora::DisableAdapters off(net);
    EXPECT_TRUE(at::equal(net.fc(x), at::linear(x, net.fc->weight, net.fc->bias)));
  }
  const at::Tensor expected = at::linear(x, net.fc->weight + net.fc->delta_weight(), net.fc->bias);
  tlora::merge_and_unload(net);
  EXPECT_TRUE(net.fc->adapter_names().empty());
  EXPECT_TRUE(at::allclose(net.fc(x), expected, 0, tlora::testing::float32_tolerance(expected, 8, 2)));
  EXPECT_TRUE(at::allclose(net.fc(x), adapted, 0, tlora::testing::float32_tolerance(adapted, 8, 2)));
}

// A teacher whose change lies in the adapter's span, W0 + α*·B·M*·A, is recovered exactly.
TEST(TLoRALinear, TrainingRecoversARepresentableChange) {
  at::manual_seed(0);
  TLoRALinear layer(TLoRALinearOptions(24, 16, 4).seed(5));
  const at::Tensor target_core = at::randn({4, 4});
  const at::Tensor teacher = layer->weight + 0.8 * layer->up.mm(target_core).mm(layer->down);
  torch::optim::Adam opt(std::vector<at::Tensor>{layer->core, layer->scale},
                         torch::optim::AdamOptions(0.05));
  double last = 0;
  for (int step = 0; step < 400; ++step) {
    const at::Tensor x = at::randn({64, 24});
    const at::Tensor loss = (layer(x) - at::linear(x, teacher, layer->bias)).pow(2).mean();
    opt.zero_grad();
    loss.backward();
    opt.step();
    last = loss.item<double>();
  }
  EXPECT_LT(last, 1e-6);
  const at::Tensor learned = layer->delta_weight();
  EXPECT_TRUE(at::allclose(learned, teacher - layer->weight, 1e-3, 1e-3));
  EXPECT_FALSE(layer->weight.grad().defined()) << "the frozen base got a gradient";
}

}  // namespace
