// Text generation with a LlamaForCausalLM: KV-cached incremental decoding of a batch of prompts
// (left-padded), greedy or sampled (temperature, top-k, top-p), with a repetition penalty and
// stopping on end-of-sequence tokens or stop strings.
#pragma once

#include "tlora/export.h"

#include "tlora/models/llama.h"

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

TLORA_API_BEGIN
namespace tlora::models {

/// How to generate.
struct GenerationOptions {
  /// Most tokens to add to each prompt.
  int64_t max_new_tokens = 128;
  /// 0: greedy (the most likely token); above 0: sample from softmax(logits / temperature).
  double temperature = 0.0;
  /// Sample only among the k most likely tokens (0: all).
  int64_t top_k = 0;
  /// Sample only among the most likely tokens whose probabilities sum to top_p (1: all).
  double top_p = 1.0;
  /// transformers' repetition penalty: logits of tokens already in the row are divided by it
  /// (multiplied where negative); 1: off.
  double repetition_penalty = 1.0;
  /// A row stops after producing any of these.
  std::vector<int64_t> eos_token_ids;
  /// A row stops once its generated text contains one of these (needs `decode`); the text is
  /// cut before it.
  std::vector<std::string> stop_strings;
  /// Turns token ids into text, for stop strings.
  std::function<std::string(std::span<const int64_t>)> decode;
  /// The token that fills the left padding of shorter prompts.
  int64_t pad_token_id = 0;
  /// Seed of the sampling.
  uint64_t seed = 0;
};

/// One row's result.
struct Generated {
  /// The new tokens (without the prompt; with the end-of-sequence token that stopped it, without
  /// the tokens of a stop string's match).
  std::vector<int64_t> tokens;
  /// Why it stopped: "eos", "stop_string" or "length".
  std::string finish_reason;
};

/// Continues each prompt (token ids) with `model`; `on_token(row, token)` is called for every new
/// token as it is chosen (for streaming). The model should be in eval mode; gradients are off.
std::vector<Generated> generate(LlamaForCausalLMImpl& model, const std::vector<std::vector<int64_t>>& prompts,
                                const GenerationOptions& options,
                                const std::function<void(size_t row, int64_t token)>& on_token = {});

}  // namespace tlora::models
TLORA_API_END
