// The merge kernel (W_eff = W0 + α·B·M·A in one pass over W0) on CUDA: tri_add_delta_weight_
// and TLoRALinear::merge() against fp64 references. Skips without a CUDA device.
#include "cuda_test_util.h"

#include "tlora/adapters/tlora_linear.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/linear.h>

namespace {

using tlora::TriLinearWeights;
using tlora::testing::make_weights;
using tlora::testing::relative_error;
using tlora::testing::to_cpu_double;

const at::Device kCuda(at::kCUDA, 0);

TEST(CudaMerge, AddDeltaWeightMatchesFp64) {
  TLORA_REQUIRE_CUDA();
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    for (const int64_t rank : {1, 17, 64}) {
      SCOPED_TRACE(std::string(c10::toString(dtype)) + " r=" + std::to_string(rank));
      const TriLinearWeights w = make_weights(301, 257, rank, dtype, kCuda);
      const TriLinearWeights w64 = to_cpu_double(w);
      const at::Tensor want = w64.weight + tlora::tri_delta_weight(w64.up, w64.core.detach(), w64.down,
                                                                   w64.scale.detach());
      at::Tensor merged = w.weight.clone();
      const auto version = merged._version();
      tlora::tri_add_delta_weight_(merged, w.up, w.core.detach(), w.down, w.scale.detach());
      EXPECT_GT(merged._version(), version) << "autograd must see the in-place change";
      if (dtype == at::kFloat) {
        EXPECT_LT(relative_error(merged, want), 1e-6);
        continue;
      }
      // Accumulated in fp32 and rounded once: every element within half an ulp of the exact
      // W0 + ΔW (2^-8 relative for bf16, 2^-11 for fp16), up to the fp32 sum's own rounding.
      const double half_ulp = dtype == at::kBFloat16 ? 0x1p-8 : 0x1p-11;
      const at::Tensor error = (merged.to(at::kCPU, at::kDouble) - want).abs();
      const at::Tensor bound = want.abs() * (half_ulp * (1 + 1e-3)) + 1e-6 * want.abs().max();
      EXPECT_TRUE(error.le(bound).all().item<bool>())
          << "worst excess " << (error - bound).max().item<double>();
    }
  }
}

TEST(CudaMerge, MergedLayerComputesTheAdaptedMap) {
  TLORA_REQUIRE_CUDA();
  torch::nn::Linear base(torch::nn::LinearOptions(96, 80));
  tlora::TLoRALinear layer(base, tlora::TLoRALinearOptions::like(base, 16).name("merge.test"));
  layer->to(kCuda);
  {
    at::NoGradGuard no_grad;
    layer->core.copy_(at::randn({16, 16}));
  }
  layer->eval();
  const at::Tensor x = at::randn({50, 96}, at::TensorOptions(kCuda));
  const at::Tensor adapted = layer->forward(x).detach();
  const at::Tensor original = layer->weight.detach().clone();
  layer->merge(/*keep_original=*/false);
  EXPECT_LT(relative_error(layer->forward(x), adapted), 1e-5);
  layer->unmerge();
  EXPECT_LT(relative_error(layer->weight, original), 1e-5);
}

}  // namespace
