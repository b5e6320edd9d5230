#include "kernel_bandwidth.h"

#include "kernels.h"

#include <ATen/ATen.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <functional>
#include <vector>

namespace tlora::bench {
namespace {

// Median milliseconds per call over batches of calls, each batch timed from one device sync to
// the next, so that launches queue up and the sync's latency is spread over the batch.
double median_ms(const std::function<void()>& launch) {
  constexpr int kWarmup = 3, kBatch = 20, kBatches = 7;
  for (int i = 0; i < kWarmup; ++i) launch();
  std::vector<double> ms;
  for (int b = 0; b < kBatches; ++b) {
    torch::cuda::synchronize();
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kBatch; ++i) launch();
    torch::cuda::synchronize();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count() / kBatch);
  }
  std::nth_element(ms.begin(), ms.begin() + kBatches / 2, ms.end());
  return ms[kBatches / 2];
}

nlohmann::json entry(double ms, double bytes, double copy_gb_per_s) {
  const double gb_per_s = bytes / (ms * 1e6);
  return {{"ms", ms}, {"bytes", bytes}, {"gb_per_s", gb_per_s},
          {"fraction_of_copy", gb_per_s / copy_gb_per_s}};
}

}  // namespace

nlohmann::json kernel_bandwidth(int64_t tokens, int64_t in, int64_t out, int64_t rank,
                                const at::TensorOptions& options) {
  nlohmann::json result = nlohmann::json::object();
  if (rank > kernels::kMaxFusedRank) return result;
  const auto f32 = options.dtype(at::kFloat);
  const double e = static_cast<double>(c10::elementSize(options.dtype().toScalarType()));
  const double n = static_cast<double>(tokens), k = static_cast<double>(in),
               m = static_cast<double>(out), r = static_cast<double>(rank);
  const at::Tensor x = at::randn({tokens, in}, options);
  const at::Tensor grad = at::randn({tokens, out}, options);
  const at::Tensor y = at::randn({tokens, out}, options);
  const at::Tensor y_copy = at::empty_like(y);
  const at::Tensor down = at::randn({rank, in}, options) / std::sqrt(k);
  const at::Tensor up = at::randn({out, rank}, options) / std::sqrt(r);
  const at::Tensor weight = at::randn({out, in}, options);
  const at::Tensor merged = at::empty_like(weight);
  const at::Tensor core = at::randn({rank, rank}, f32);
  const at::Tensor u = at::randn({tokens, rank}, f32);
  const at::Tensor up_acc = up.to(at::kFloat);
  const at::Tensor core_down_t = at::randn({in, rank}, f32) * 1e-3;
  // The fused update runs on the forward only when dropout is on, so it is timed with a mask.
  const kernels::MaskKey dropout{0.1, 1, 2};

  const double copy_ms = median_ms([&] { y_copy.copy_(y); });
  const double copy_bytes = 2 * n * m * e;
  const double copy_gb_per_s = copy_bytes / (copy_ms * 1e6);
  result["copy"] = entry(copy_ms, copy_bytes, copy_gb_per_s);
  result["down_project"] = entry(
      median_ms([&] { kernels::down_project_cuda(x, down, core, {}, "bench"); }),
      n * k * e + r * k * e + 2 * n * r * 4, copy_gb_per_s);
  result["core_grad"] = entry(
      median_ms([&] { kernels::core_grad_cuda(grad, up, u, core, {}, "bench"); }),
      n * m * e + m * r * e + 2 * n * r * 4, copy_gb_per_s);
  result["rank_update"] = entry(
      median_ms([&] { kernels::rank_update_cuda(y, y, u, up_acc, dropout, "bench"); }),
      2 * n * m * e + (n + m) * r * 4, copy_gb_per_s);
  result["merge"] = entry(
      median_ms([&] { kernels::rank_update_cuda(merged, weight, up_acc, core_down_t, {}, "bench"); }),
      2 * m * k * e + (m + k) * r * 4, copy_gb_per_s);
  return result;
}

}  // namespace tlora::bench
