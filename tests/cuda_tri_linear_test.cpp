// tri_linear on CUDA (the fused kernels for rank ≤ 64, the ATen chain beyond) against fp64
// references on the CPU: outputs and gradients of x, M and α for every strategy, dropout
// position and dtype, odd shapes, and what the graph keeps. Skips without a CUDA device.
#include "cuda_test_util.h"
#include "kernels.h"
#include "test_util.h"

#include "tlora/core/live_bytes.h"
#include "tlora/core/random.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <functional>
#include <string>
#include <vector>

namespace {

using tlora::AdapterDropout;
using tlora::DropoutPosition;
using tlora::Strategy;
using tlora::TriLinearWeights;
using tlora::testing::contains;
using tlora::testing::error_of;
using tlora::testing::make_weights;
using tlora::testing::relative_error;
using tlora::testing::to_cpu_double;

const at::Device kCuda(at::kCUDA, 0);

struct Shape {
  int64_t tokens, in, out, rank;
};

// N=1; in=33 and out=47 (no tile multiple); r=1, r=64 and ranks between paddings; N above and
// below out, so merged's backward takes both dx routes.
const std::vector<Shape> kShapes = {
    {1, 33, 47, 1}, {37, 33, 47, 64}, {300, 96, 80, 8}, {130, 64, 200, 32}, {75, 40, 24, 17}};

std::string label(const Shape& s) {
  return "N=" + std::to_string(s.tokens) + " in=" + std::to_string(s.in) +
         " out=" + std::to_string(s.out) + " r=" + std::to_string(s.rank);
}

struct Step {
  at::Tensor y, dx, dcore, dscale;
};

using Layer = std::function<at::Tensor(const at::Tensor&, const TriLinearWeights&)>;

// One training step with dL/dy = r: y and the gradients of x, M and α.
Step step(const Layer& layer, const at::Tensor& x0, const TriLinearWeights& w, const at::Tensor& r) {
  const at::Tensor x = x0.detach().clone().requires_grad_(true);
  const at::Tensor y = layer(x, w);
  const auto g = torch::autograd::grad({y}, {x, w.core, w.scale}, {r.to(y.device(), y.scalar_type())});
  return {y.detach(), g[0], g[1], g[2]};
}

// dα is one sum of r² products; its error is judged against the sum of their magnitudes.
double dscale_error(const Step& got, const Step& ref, const TriLinearWeights& w64) {
  const double alpha = w64.scale.item<double>();
  const double magnitude = (ref.dcore / alpha * w64.core.detach()).abs().sum().item<double>();
  return std::abs(got.dscale.to(at::kCPU, at::kDouble).item<double>() -
                  ref.dscale.item<double>()) / magnitude;
}

struct Errors {
  double y, dx, dcore, dscale;
};

Errors errors(const Step& got, const Step& ref, const TriLinearWeights& w64) {
  return {relative_error(got.y, ref.y), relative_error(got.dx, ref.dx),
          relative_error(got.dcore, ref.dcore), dscale_error(got, ref, w64)};
}

Layer fused(Strategy s, const AdapterDropout& d) {
  return [s, d](const at::Tensor& x, const TriLinearWeights& w) {
    return tlora::tri_linear(x, w, s, d, "cuda test layer");
  };
}

Layer composed(const AdapterDropout& d) {
  return [d](const at::Tensor& x, const TriLinearWeights& w) {
    return tlora::tri_linear_composed(x, w, d);
  };
}

struct Variant {
  Strategy strategy;
  AdapterDropout dropout;
  std::string name;
};

std::vector<Variant> variants() {
  return {{Strategy::Factored, {}, "factored"},
          {Strategy::Merged, {}, "merged"},
          {Strategy::Auto, {}, "auto"},
          {Strategy::Factored, {0.3, DropoutPosition::Output, 11, 4242}, "dropout on the output"},
          {Strategy::Factored, {0.3, DropoutPosition::Input, 11, 4243}, "dropout on the input"}};
}

// The same step on `dtype` CUDA tensors and on their fp64 CPU copies.
struct Trial {
  TriLinearWeights w, w64;
  at::Tensor x, x64, r;
};

Trial trial(const Shape& s, at::ScalarType dtype) {
  Trial t;
  t.w = make_weights(s.in, s.out, s.rank, dtype, kCuda);
  t.w64 = to_cpu_double(t.w);
  t.x = at::randn({s.tokens, s.in}, at::kDouble).to(kCuda, dtype);
  t.x64 = t.x.to(at::kCPU, at::kDouble);
  t.r = at::randn({s.tokens, s.out}, at::kDouble).to(dtype).to(at::kDouble);
  return t;
}

TEST(CudaTriLinear, FusedKernelsAreBuilt) {
  TLORA_REQUIRE_CUDA();
  EXPECT_TRUE(tlora::kernels::built_with_cuda())
      << "a CUDA device is present but the library was built without its kernels";
}

TEST(CudaTriLinear, Fp32WithinOneInHundredThousandOfFp64) {
  TLORA_REQUIRE_CUDA();
  for (const Shape& s : kShapes) {
    const Trial t = trial(s, at::kFloat);
    for (const Variant& v : variants()) {
      SCOPED_TRACE(label(s) + " " + v.name);
      const Step ref = step(composed(v.dropout), t.x64, t.w64, t.r);
      const Errors e = errors(step(fused(v.strategy, v.dropout), t.x, t.w, t.r), ref, t.w64);
      EXPECT_LT(e.y, 1e-5);
      EXPECT_LT(e.dx, 1e-5);
      EXPECT_LT(e.dcore, 1e-5);
      EXPECT_LT(e.dscale, 1e-5);
    }
  }
}

TEST(CudaTriLinear, HalfPrecisionWithinTwiceTheSamePrecisionChain) {
  TLORA_REQUIRE_CUDA();
  for (const at::ScalarType dtype : {at::kBFloat16, at::kHalf}) {
    // A floor far below one rounding of the output, for errors that are zero by luck.
    const double floor = dtype == at::kBFloat16 ? 1e-3 : 1.5e-4;
    for (const Shape& s : kShapes) {
      const Trial t = trial(s, dtype);
      for (const Variant& v : variants()) {
        SCOPED_TRACE(std::string(c10::toString(dtype)) + " " + label(s) + " " + v.name);
        const Step ref = step(composed(v.dropout), t.x64, t.w64, t.r);
        const Step ours = step(fused(v.strategy, v.dropout), t.x, t.w, t.r);
        EXPECT_EQ(ours.y.scalar_type(), dtype);
        EXPECT_EQ(ours.dcore.scalar_type(), at::kFloat);
        const Errors e = errors(ours, ref, t.w64);
        const Errors c = errors(step(composed(v.dropout), t.x, t.w, t.r), ref, t.w64);
        EXPECT_LE(e.y, 2 * c.y + floor) << "ours " << e.y << " chain " << c.y;
        EXPECT_LE(e.dx, 2 * c.dx + floor) << "ours " << e.dx << " chain " << c.dx;
        EXPECT_LE(e.dcore, 2 * c.dcore + floor) << "ours " << e.dcore << " chain " << c.dcore;
        EXPECT_LE(e.dscale, 2 * c.dscale + floor) << "ours " << e.dscale << " chain " << c.dscale;
      }
    }
  }
}

// Ranks above kernels::kMaxFusedRank take the ATen chain on the GPU; it must be as exact.
TEST(CudaTriLinear, RanksAboveTheFusedLimitUseTheChain) {
  TLORA_REQUIRE_CUDA();
  for (const Shape& s : {Shape{40, 70, 90, 65}, Shape{9, 130, 120, 100}}) {
    const Trial t = trial(s, at::kFloat);
    for (const Variant& v : variants()) {
      SCOPED_TRACE(label(s) + " " + v.name);
      const Step ref = step(composed(v.dropout), t.x64, t.w64, t.r);
      const Errors e = errors(step(fused(v.strategy, v.dropout), t.x, t.w, t.r), ref, t.w64);
      EXPECT_LT(e.y, 1e-5);
      EXPECT_LT(e.dx, 1e-5);
      EXPECT_LT(e.dcore, 1e-5);
      EXPECT_LT(e.dscale, 1e-5);
    }
  }
}

// L = Σ y ⊙ r is linear in M and in α, so central differences are exact up to rounding.
TEST(CudaTriLinear, Fp64GradientsMatchFiniteDifferencesOnTheGpu) {
  TLORA_REQUIRE_CUDA();
  const Shape s{23, 9, 7, 3};
  const Trial t = trial(s, at::kDouble);
  for (const Variant& v : variants()) {
    SCOPED_TRACE(v.name);
    const Layer layer = fused(v.strategy, v.dropout);
    const Step ours = step(layer, t.x, t.w, t.r);
    const Errors e = errors(ours, step(composed(v.dropout), t.x64, t.w64, t.r), t.w64);
    EXPECT_LT(e.y, 1e-12);
    EXPECT_LT(e.dx, 1e-12);
    EXPECT_LT(e.dcore, 1e-12);
    EXPECT_LT(e.dscale, 1e-12);

    at::NoGradGuard no_grad;
    const at::Tensor r = t.r.to(kCuda);
    const auto loss = [&] { return (layer(t.x, t.w) * r).sum().item<double>(); };
    const auto difference = [&](at::Tensor p, int64_t i) {
      const double eps = 1e-6;
      at::Tensor flat = p.view({-1});
      const double keep = flat[i].item<double>();
      flat[i].fill_(keep + eps);
      const double up = loss();
      flat[i].fill_(keep - eps);
      const double down = loss();
      flat[i].fill_(keep);
      return (up - down) / (2 * eps);
    };
    for (int64_t i = 0; i < t.w.core.numel(); ++i) {
      const double want = difference(t.w.core, i);
      EXPECT_NEAR(ours.dcore.view({-1})[i].item<double>(), want, 1e-6 * (1 + std::abs(want)));
    }
    const double want = difference(t.w.scale, 0);
    EXPECT_NEAR(ours.dscale.item<double>(), want, 1e-6 * (1 + std::abs(want)));
  }
}

TEST(CudaTriLinear, StrategiesAgree) {
  TLORA_REQUIRE_CUDA();
  for (const Shape& s : {Shape{300, 96, 80, 8}, Shape{37, 33, 47, 64}}) {
    SCOPED_TRACE(label(s));
    const Trial t = trial(s, at::kDouble);
    const Step factored = step(fused(Strategy::Factored, {}), t.x, t.w, t.r);
    for (const Strategy other : {Strategy::Merged, Strategy::Auto}) {
      const Step o = step(fused(other, {}), t.x, t.w, t.r);
      EXPECT_LT(relative_error(o.y, factored.y), 1e-12);
      EXPECT_LT(relative_error(o.dx, factored.dx), 1e-12);
      EXPECT_LT(relative_error(o.dcore, factored.dcore), 1e-12);
      EXPECT_LT(relative_error(o.dscale, factored.dscale), 1e-12);
    }
  }
}

// With W0 = 0 and no bias the dropped entries are exact zeros: the forward's zeros (output
// position) and the backward's zeros of dx (input position) must be the CPU mask's.
TEST(CudaTriLinear, DropoutMasksAreTheCpuMasksInForwardAndBackward) {
  TLORA_REQUIRE_CUDA();
  const Shape s{61, 33, 47, 8};
  Trial t = trial(s, at::kFloat);
  t.w.weight.zero_();
  t.w.bias = at::Tensor();
  const AdapterDropout out_drop{0.4, DropoutPosition::Output, 5, 77};
  const at::Tensor y = tlora::tri_linear(t.x, t.w, Strategy::Factored, out_drop);
  const at::Tensor out_mask = tlora::philox_dropout_mask({s.tokens, s.out}, out_drop.p, out_drop.seed,
                                                         out_drop.stream, at::TensorOptions());
  EXPECT_TRUE(at::equal(y.cpu().eq(0), out_mask.eq(0)));

  const AdapterDropout in_drop{0.4, DropoutPosition::Input, 5, 78};
  const Step st = step(fused(Strategy::Factored, in_drop), t.x, t.w, t.r);
  const at::Tensor in_mask = tlora::philox_dropout_mask({s.tokens, s.in}, in_drop.p, in_drop.seed,
                                                        in_drop.stream, at::TensorOptions());
  EXPECT_TRUE(at::equal(st.dx.cpu().eq(0), in_mask.eq(0)));
  // And the device's mask kernel draws the same mask.
  const at::Tensor on_device = tlora::philox_dropout_mask(
      {s.tokens, s.in}, in_drop.p, in_drop.seed, in_drop.stream, at::TensorOptions(kCuda));
  EXPECT_TRUE(at::equal(on_device.cpu(), in_mask));
}

TEST(CudaTriLinear, NonContiguousAndBatchedInputs) {
  TLORA_REQUIRE_CUDA();
  const Shape s{60, 33, 47, 16};
  const Trial t = trial(s, at::kFloat);
  const at::Tensor transposed = t.x.t().contiguous().t();  // same values, column-major
  ASSERT_FALSE(transposed.is_contiguous());
  for (const Variant& v : variants()) {
    SCOPED_TRACE(v.name);
    const Layer layer = fused(v.strategy, v.dropout);
    const Step plain = step(layer, t.x, t.w, t.r);
    const Step strided = step(layer, transposed, t.w, t.r);
    EXPECT_TRUE(at::equal(plain.y, strided.y));
    EXPECT_TRUE(at::equal(plain.dcore, strided.dcore));
    const at::Tensor batched = layer(t.x.view({3, 20, s.in}), t.w);
    EXPECT_EQ(batched.sizes(), (at::IntArrayRef{3, 20, s.out}));
    EXPECT_TRUE(at::equal(batched.reshape({s.tokens, s.out}), plain.y));
  }
}

TEST(CudaTriLinear, KeepsOnlyUForBackward) {
  TLORA_REQUIRE_CUDA();
  const Shape s{512, 96, 80, 32};
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    const Trial t = trial(s, dtype);
    for (const Variant& v : variants()) {
      SCOPED_TRACE(std::string(c10::toString(dtype)) + " " + v.name);
      const Layer layer = fused(v.strategy, v.dropout);
      const at::Tensor x = t.x.clone().requires_grad_(true);
      layer(x, t.w);  // warm-up: cuBLAS's workspace is allocated once, on first use
      const tlora::LiveBytes live(kCuda);
      const int64_t before = live.current();
      const at::Tensor y = layer(x, t.w);
      EXPECT_EQ(live.current() - before - static_cast<int64_t>(y.nbytes()),
                s.tokens * s.rank * static_cast<int64_t>(sizeof(float)));
    }
  }
}

TEST(CudaTriLinear, ErrorsNameTheLayerAndTheShapes) {
  TLORA_REQUIRE_CUDA();
  const Trial t = trial({8, 16, 12, 4}, at::kFloat);
  using tlora::testing::contains;
  const std::string mixed = error_of([&] {
    tlora::tri_linear(t.x.cpu(), t.w, Strategy::Factored, {}, "encoder.q");
  });
  EXPECT_TRUE(contains(mixed, "encoder.q"));
  EXPECT_TRUE(contains(mixed, "cuda"));

  namespace k = tlora::kernels;
  const at::Tensor y = at::zeros({8, 12}, at::TensorOptions(kCuda));
  const at::Tensor p = at::zeros({8, 4}, at::TensorOptions(kCuda));
  const std::string shape = error_of([&] {
    k::rank_update_cuda(y, y, p, at::zeros({13, 4}, p.options()), {}, "encoder.q");
  });
  EXPECT_TRUE(contains(shape, "encoder.q"));
  EXPECT_TRUE(contains(shape, "[13, 4]"));
  const std::string dtype = error_of([&] {
    k::rank_update_cuda(y, y, p.to(at::kDouble), at::zeros({12, 4}, p.options()), {}, "encoder.q");
  });
  EXPECT_TRUE(contains(dtype, "Double"));
  const std::string strided = error_of([&] {
    k::down_project_cuda(t.x.t().contiguous().t(), t.w.down, {}, {}, "encoder.q");
  });
  EXPECT_TRUE(contains(strided, "contiguous"));
  const std::string rank = error_of([&] {
    k::down_project_cuda(t.x, at::zeros({65, 16}, t.x.options()), {}, {}, "encoder.q");
  });
  EXPECT_TRUE(contains(rank, "ranks 1..64"));
}

}  // namespace
