// Helpers shared by the CUDA test suites (tests/cuda_*_test.cpp), which skip without a device.
#pragma once

#include "tlora/core/functional.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <cmath>
#include <cstdint>

namespace tlora::testing {

/// Skips the calling test when no CUDA device is present.
#define TLORA_REQUIRE_CUDA()                                                   \
  do {                                                                        \
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";       \
  } while (0)

/// max |got - want| / max |want|, in fp64 on the CPU.
inline double relative_error(const at::Tensor& got, const at::Tensor& want) {
  const at::Tensor w = want.to(at::kCPU, at::kDouble);
  const double scale = w.abs().max().item<double>();
  return (got.to(at::kCPU, at::kDouble) - w).abs().max().item<double>() / (scale > 0 ? scale : 1.0);
}

/// A layer's tensors with the given shape: W0, b, A, B in `dtype` on `device`, M and α in
/// fp32 (fp64 for fp64 layers) and trainable. Values are drawn in fp64 on the CPU from `seed`,
/// so layers of different dtypes hold the same numbers up to rounding.
inline TriLinearWeights make_weights(int64_t in, int64_t out, int64_t rank, at::ScalarType dtype,
                                     at::Device device, uint64_t seed = 3) {
  at::manual_seed(seed);
  const auto d = at::TensorOptions(at::kDouble);
  const at::ScalarType trained = dtype == at::kDouble ? at::kDouble : at::kFloat;
  const auto to = [&](const at::Tensor& t, at::ScalarType dt) { return t.to(device, dt); };
  TriLinearWeights w{to(at::randn({out, in}, d) / std::sqrt(double(in)), dtype),
                     to(at::randn({out}, d), dtype),
                     to(at::randn({rank, in}, d) / std::sqrt(double(in)), dtype),
                     to(at::randn({out, rank}, d) / std::sqrt(double(rank)), dtype),
                     to(at::randn({rank, rank}, d), trained),
                     to(at::full({}, 0.8, d), trained)};
  w.core.requires_grad_(true);
  w.scale.requires_grad_(true);
  return w;
}

/// The same layer's tensors as fp64 CPU copies (trainable ones still trainable).
inline TriLinearWeights to_cpu_double(const TriLinearWeights& w) {
  const auto c = [](const at::Tensor& t) { return t.detach().to(at::kCPU, at::kDouble); };
  TriLinearWeights r{c(w.weight), c(w.bias), c(w.down), c(w.up), c(w.core), c(w.scale)};
  r.core.requires_grad_(true);
  r.scale.requires_grad_(true);
  return r;
}

}  // namespace tlora::testing
