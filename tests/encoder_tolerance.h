// Rounding budgets of an encoder's forward and backward pass against a reference computed
// elsewhere (transformers' fixtures), from tolerance.h's rule: one stage per layer, the longest
// reduction the feed-forward's.
#pragma once

#include "tolerance.h"
#include "tlora/models/config.h"

#include <algorithm>
#include <cstdint>

namespace tlora::testing {

/// The tolerance on a forward output (hidden states, pooler, logits, loss) of `config`'s
/// encoder against `reference`: each layer and the head round.
inline double forward_tolerance(const models::EncoderConfig& config, const at::Tensor& reference) {
  return float32_tolerance(reference, std::max(config.intermediate_size, config.hidden_size),
                           static_cast<int>(config.num_hidden_layers) + 1);
}

/// The tolerance on a parameter's gradient: the forward's stages and the backward's, and a
/// weight gradient sums over all `tokens` of the batch.
inline double gradient_tolerance(const models::EncoderConfig& config, const at::Tensor& reference,
                                 int64_t tokens) {
  return float32_tolerance(reference, std::max({config.intermediate_size, config.hidden_size, tokens}),
                           2 * static_cast<int>(config.num_hidden_layers) + 2);
}

}  // namespace tlora::testing
