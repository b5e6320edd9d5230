// The library's generator on CUDA: projections and dropout masks bit-identical to the CPU's.
// Skips without a CUDA device.
#include "cuda_test_util.h"

#include "tlora/core/projections.h"
#include "tlora/core/random.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace {

const at::Device kCuda(at::kCUDA, 0);

TEST(CudaRandom, ProjectionsAreBitIdenticalToTheCpu) {
  TLORA_REQUIRE_CUDA();
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf, at::kDouble}) {
    for (const tlora::InitScheme scheme : {tlora::InitScheme::Paper, tlora::InitScheme::Unit}) {
      SCOPED_TRACE(std::string(c10::toString(dtype)) + " " + std::string(tlora::to_string(scheme)));
      const auto cpu = tlora::draw_projections(1031, 517, 33, scheme, 1234, "encoder.layer.3.value",
                                               at::TensorOptions(dtype));
      const auto gpu = tlora::draw_projections(1031, 517, 33, scheme, 1234, "encoder.layer.3.value",
                                               at::TensorOptions(kCuda).dtype(dtype));
      ASSERT_TRUE(gpu.down.is_cuda());
      EXPECT_TRUE(at::equal(gpu.down.cpu(), cpu.down));
      EXPECT_TRUE(at::equal(gpu.up.cpu(), cpu.up));
    }
  }
}

TEST(CudaRandom, DropoutMasksAreBitIdenticalToTheCpu) {
  TLORA_REQUIRE_CUDA();
  for (const double p : {0.0, 0.1, 0.5, 0.95}) {
    for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
      const auto cpu = tlora::philox_dropout_mask({37, 29}, p, 8, 99, at::TensorOptions(dtype));
      const auto gpu =
          tlora::philox_dropout_mask({37, 29}, p, 8, 99, at::TensorOptions(kCuda).dtype(dtype));
      EXPECT_TRUE(at::equal(gpu.cpu(), cpu)) << "p=" << p << " " << dtype;
    }
  }
}

}  // namespace
