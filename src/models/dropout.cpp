#include "tlora/models/dropout.h"

#include "tlora/random.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/_safe_softmax.h>
#include <ATen/ops/dropout.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/scaled_dot_product_attention.h>
#include <ATen/ops/softmax.h>
#include <torch/csrc/autograd/custom_function.h>

#include <limits>
#include <mutex>
#include <optional>

namespace tlora::models {
namespace {

uint64_t next_seed() {
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(generator)->random64();
}

// y = x·mask in one pass; the backward regenerates the mask from its seed instead of keeping it
// (for attention probabilities, batch·heads·seq² elements per layer).
struct PhiloxDropoutFunction : public torch::autograd::Function<PhiloxDropoutFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, double p,
                            int64_t seed) {
    ctx->saved_data["p"] = p;
    ctx->saved_data["seed"] = seed;
    return philox_dropout(x, p, static_cast<uint64_t>(seed), 0);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto seed = static_cast<uint64_t>(ctx->saved_data["seed"].toInt());
    return {philox_dropout(grad_outputs[0], ctx->saved_data["p"].toDouble(), seed, 0), {}, {}};
  }
};

}  // namespace

at::Tensor dropout(const at::Tensor& x, double p, bool training) {
  if (!training || p == 0.0) return x;
  if (!x.is_cpu()) return at::dropout(x, p, true);
  // Every call has its own seed, so stream 0 suffices.
  return PhiloxDropoutFunction::apply(x, p, static_cast<int64_t>(next_seed()));
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& mask, double p, double scale, bool training) {
  const double active = training ? p : 0.0;
  if (active == 0.0 || !q.is_cpu()) {
    return at::scaled_dot_product_attention(
        q, k, v, mask.defined() ? std::optional<at::Tensor>(mask) : std::nullopt, active,
        /*is_causal=*/false, scale);
  }
  at::Tensor scores = at::matmul(q * scale, k.transpose(-2, -1));
  at::Tensor probs;
  if (mask.defined()) {
    const at::Tensor masked =
        mask.scalar_type() == at::kBool
            ? scores.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity())
            : scores + mask;
    // SDPA's softmax: a row masked everywhere gives zeros, not NaNs.
    probs = at::_safe_softmax(masked, -1);
  } else {
    probs = at::softmax(scores, -1);
  }
  return at::matmul(models::dropout(probs, p, true), v);
}

}  // namespace tlora::models
