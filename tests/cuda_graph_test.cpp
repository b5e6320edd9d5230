// A TLoRA training step captured in a CUDA graph and replayed gives what eager execution gives,
// also after the captured input is refilled. Skips without a CUDA device.
#include "cuda_test_util.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <string>
#include <vector>

namespace {

using tlora::AdapterDropout;
using tlora::DropoutPosition;
using tlora::Strategy;
using tlora::TriLinearWeights;
using tlora::testing::make_weights;
using tlora::testing::relative_error;

const at::Device kCuda(at::kCUDA, 0);

// y, dx, dM and dα of one step with dL/dy = r.
std::vector<at::Tensor> train_step(const at::Tensor& x, const TriLinearWeights& w, const at::Tensor& r,
                                   Strategy s, const AdapterDropout& d) {
  const at::Tensor y = tlora::tri_linear(x, w, s, d, "captured layer");
  auto g = torch::autograd::grad({y}, {x, w.core, w.scale}, {r});
  g.insert(g.begin(), y.detach());
  return g;
}

struct Variant {
  Strategy strategy;
  AdapterDropout dropout;
  std::string name;
};

TEST(CudaGraph, CapturedTrainingStepReplaysLikeEager) {
  TLORA_REQUIRE_CUDA();
  const std::vector<Variant> variants = {
      {Strategy::Factored, {}, "factored"},
      {Strategy::Merged, {}, "merged"},
      {Strategy::Factored, {0.25, DropoutPosition::Output, 3, 91}, "dropout on the output"},
      {Strategy::Factored, {0.25, DropoutPosition::Input, 3, 92}, "dropout on the input"}};
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    for (const Variant& v : variants) {
      SCOPED_TRACE(std::string(c10::toString(dtype)) + " " + v.name);
      const TriLinearWeights w = make_weights(96, 80, 32, dtype, kCuda);
      const at::Tensor x = at::randn({200, 96}, at::TensorOptions(kCuda).dtype(dtype)).requires_grad_(true);
      const at::Tensor r = at::randn({200, 80}, x.options());
      const at::Tensor x_next = at::randn_like(x);

      // Capture needs a side stream, warmed up there first (cuBLAS handles and workspaces).
      c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool();
      side.synchronize();
      std::vector<at::Tensor> captured;
      at::cuda::CUDAGraph graph;
      {
        c10::cuda::CUDAStreamGuard guard(side);
        for (int i = 0; i < 3; ++i) train_step(x, w, r, v.strategy, v.dropout);
        graph.capture_begin();
        captured = train_step(x, w, r, v.strategy, v.dropout);
        graph.capture_end();
      }
      for (const at::Tensor& input : {x.detach(), x_next}) {
        {
          at::NoGradGuard no_grad;
          x.copy_(input);
        }
        graph.replay();
        torch::cuda::synchronize();
        const std::vector<at::Tensor> eager = train_step(x, w, r, v.strategy, v.dropout);
        for (size_t i = 0; i < eager.size(); ++i) {
          // cuBLAS may pick another algorithm inside a capture; our kernels are deterministic.
          EXPECT_LT(relative_error(captured[i], eager[i]), dtype == at::kFloat ? 1e-6 : 1e-2)
              << "output " << i;
        }
      }
    }
  }
}

}  // namespace
