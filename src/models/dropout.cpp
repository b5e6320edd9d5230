#include "tlora/models/dropout.h"

#include "tlora/core/random.h"
#include "tlora/train/split_batch.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/_safe_softmax.h>
#include <ATen/ops/dropout.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/scaled_dot_product_attention.h>
#include <ATen/ops/softmax.h>

#include <limits>
#include <mutex>
#include <optional>

namespace tlora::models {
namespace {

uint64_t next_seed() {
  // Parts of a split step run side by side: each takes its own sequence, not a shared one.
  if (train::current_batch_part() != nullptr) return train::next_part_seed();
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(generator)->random64();
}

}  // namespace

at::Tensor dropout(const at::Tensor& x, double p, bool training) {
  if (!training || p == 0.0) return x;
  if (!x.is_cpu()) return at::dropout(x, p, true);
  // Every call has its own seed, so stream 0 suffices.
  return x * philox_dropout_mask(x.sizes(), p, next_seed(), 0, x.options());
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
