#include "tlora/models/causal_lm_loss.h"

#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/nonzero.h>
#include <c10/util/Exception.h>

namespace tlora::models {

at::Tensor causal_lm_loss(LlamaForCausalLMImpl& model, const at::Tensor& input_ids, const at::Tensor& attention_mask,
                          const at::Tensor& targets, at::Reduction::Reduction reduction) {
  TORCH_CHECK(targets.sizes() == input_ids.sizes(), "causal_lm_loss: targets ", targets.sizes(),
              " do not have the shape of input_ids ", input_ids.sizes());
  const at::Tensor hidden = model.model->forward(input_ids, attention_mask);
  const at::Tensor flat_targets = targets.reshape(-1);
  const at::Tensor counted = flat_targets.ne(kIgnoreIndex).nonzero().squeeze(1);
  const at::Tensor logits = model.lm_head(hidden.reshape({-1, hidden.size(-1)}).index_select(0, counted));
  // bfloat16 or float16 logits (autocast) go to float32 for the softmax; float64 stays.
  return at::cross_entropy_loss(logits.to(c10::promoteTypes(logits.scalar_type(), at::kFloat)),
                                flat_targets.index_select(0, counted), {}, reduction, kIgnoreIndex);
}

}  // namespace tlora::models
