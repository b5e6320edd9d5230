// The next-token loss of supervised fine-tuning, computing logits only where the loss looks.
#pragma once

#include "tlora/export.h"
#include "tlora/models/llama.h"

#include <ATen/core/Reduction.h>
#include <ATen/core/Tensor.h>

#include <cstdint>

TLORA_API_BEGIN
namespace tlora::models {

/// Targets that take no part in the loss (PyTorch's and transformers' ignore_index).
inline constexpr int64_t kIgnoreIndex = -100;

/// Cross-entropy of the next-token predictions of `model` for input_ids [batch, seq] (attention
/// mask as LlamaForCausalLMImpl::forward), against `targets` [batch, seq]: targets[b][t] is the
/// token position t should predict (input_ids[b][t + 1] for plain language modelling), or
/// kIgnoreIndex. The same value as cross_entropy(model(input_ids), targets, ignore_index=-100),
/// but lm_head runs only at the counted positions: with prompts masked, as in instruction
/// fine-tuning, most of the [batch·seq, vocab] logits (and their gradient) are never formed.
/// Logits in a narrower type than float32 are taken to float32 for the loss. Mean over no counted
/// position is NaN, as PyTorch's.
at::Tensor causal_lm_loss(LlamaForCausalLMImpl& model, const at::Tensor& input_ids, const at::Tensor& attention_mask,
                          const at::Tensor& targets, at::Reduction::Reduction reduction = at::Reduction::Mean);

}  // namespace tlora::models
TLORA_API_END
