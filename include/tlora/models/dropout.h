// The models' dropout and attention in training mode. LibTorch's CPU dropout draws its mask
// with a serial, locked bernoulli_, which took about a fifth of a MiniLM training step; on the
// CPU these draw it from the library's Philox generator in parallel instead. Same distribution,
// other random stream; elsewhere (CUDA) they are LibTorch's own fused ops.
#pragma once

#include "tlora/export.h"

#include <ATen/core/Tensor.h>

TLORA_API_BEGIN
namespace tlora::models {

/// Inverted dropout: in training with p > 0, each element is zeroed with probability p and the
/// others scaled by 1/(1-p); otherwise x itself. On the CPU the mask comes from
/// philox_dropout_mask under a seed drawn from the default CPU generator, so at::manual_seed
/// makes it reproducible; on other devices it is at::dropout.
at::Tensor dropout(const at::Tensor& x, double p, bool training);

/// at::scaled_dot_product_attention(q, k, v, mask, training ? p : 0, false, scale): softmax(q·kᵀ
/// · scale + mask)·v with dropout p on the probabilities. mask: undefined, boolean (true =
/// attend) or additive, broadcastable to [..., q_len, k_len]; a row that attends nowhere gives
/// zeros. On the CPU in training with p > 0 it runs op by op with dropout() on the
/// probabilities, as SDPA's own CPU path would, only with the parallel mask.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& mask, double p, double scale, bool training);

}  // namespace tlora::models
TLORA_API_END
