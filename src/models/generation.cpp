#include "tlora/models/generation.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/argmax.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <ATen/ops/multinomial.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/topk.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <limits>

namespace tlora::models {
namespace {

// transformers' logits processors, in its order: repetition penalty, temperature, top-k, top-p.
at::Tensor process(at::Tensor logits, const std::vector<std::vector<int64_t>>& seen, const GenerationOptions& o) {
  if (o.repetition_penalty != 1.0) {
    for (size_t row = 0; row < seen.size(); ++row) {
      at::Tensor r = logits[static_cast<int64_t>(row)];
      const at::Tensor ids = at::tensor(seen[row], at::kLong);
      const at::Tensor scores = r.index_select(0, ids);
      r.index_put_({ids}, at::where(scores < 0, scores * o.repetition_penalty, scores / o.repetition_penalty));
    }
  }
  if (o.temperature <= 0) return logits;
  logits = logits / o.temperature;
  const double lowest = -std::numeric_limits<float>::infinity();
  if (o.top_k > 0 && o.top_k < logits.size(-1)) {
    const at::Tensor kth = std::get<0>(logits.topk(o.top_k, -1)).select(-1, o.top_k - 1).unsqueeze(-1);
    logits = logits.masked_fill(logits < kth, lowest);
  }
  if (o.top_p < 1.0) {
    // Ascending, as transformers' TopPLogitsWarper: drop the tokens whose cumulative probability
    // stays within 1 - top_p, always keeping the most likely one.
    const auto [sorted, order] = logits.sort(-1, /*descending=*/false);
    const at::Tensor cumulative = sorted.softmax(-1).cumsum(-1);
    at::Tensor drop = cumulative <= (1.0 - o.top_p);
    drop.select(-1, drop.size(-1) - 1).fill_(false);
    logits = logits.masked_fill(drop.scatter(-1, order, drop), lowest);
  }
  return logits;
}

}  // namespace

std::vector<Generated> generate(LlamaForCausalLMImpl& model, const std::vector<std::vector<int64_t>>& prompts,
                                const GenerationOptions& o, const std::function<void(size_t, int64_t)>& on_token) {
  TORCH_CHECK(!prompts.empty(), "generate: no prompts");
  TORCH_CHECK(o.max_new_tokens >= 0, "generate: max_new_tokens must be at least 0, got ", o.max_new_tokens);
  TORCH_CHECK(o.top_p > 0 && o.top_p <= 1, "generate: top_p must be in (0, 1], got ", o.top_p);
  TORCH_CHECK(o.repetition_penalty > 0, "generate: repetition_penalty must be positive, got ", o.repetition_penalty);
  TORCH_CHECK(o.stop_strings.empty() || o.decode, "generate: stop_strings need a decode function");
  size_t longest = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    TORCH_CHECK(!prompts[i].empty(), "generate: prompt ", i, " is empty");
    longest = std::max(longest, prompts[i].size());
  }
  const auto batch = static_cast<int64_t>(prompts.size());
  const auto device = model.lm_head->weight.device();
  at::Tensor ids = at::full({batch, static_cast<int64_t>(longest)}, o.pad_token_id, at::kLong);
  at::Tensor mask = at::zeros({batch, static_cast<int64_t>(longest)}, at::kLong);
  for (int64_t row = 0; row < batch; ++row) {
    const auto& p = prompts[row];
    const int64_t pad = static_cast<int64_t>(longest - p.size());
    ids[row].slice(0, pad).copy_(at::tensor(p, at::kLong));
    mask[row].slice(0, pad).fill_(1);
  }
  ids = ids.to(device);
  mask = mask.to(device);

  c10::NoGradGuard no_grad;
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  std::vector<Generated> out(prompts.size());
  std::vector<std::vector<int64_t>> seen(prompts.begin(), prompts.end());
  std::vector<bool> done(prompts.size(), false);
  KVCache cache;
  at::Tensor step_ids = ids;
  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    const at::Tensor logits = model.forward(step_ids, mask, {}, &cache).select(1, -1).to(at::kFloat).cpu();
    const at::Tensor processed = process(logits.clone(), seen, o);
    const at::Tensor next = o.temperature > 0
                                ? at::multinomial(processed.softmax(-1), 1, /*replacement=*/false, generator).squeeze(1)
                                : processed.argmax(-1);
    std::vector<int64_t> chosen(prompts.size(), o.pad_token_id);
    for (size_t row = 0; row < prompts.size(); ++row) {
      if (done[row]) continue;
      const int64_t token = next[static_cast<int64_t>(row)].item<int64_t>();
      chosen[row] = token;
      Generated& g = out[row];
      g.tokens.push_back(token);
      seen[row].push_back(token);
      if (on_token) on_token(row, token);
      if (std::find(o.eos_token_ids.begin(), o.eos_token_ids.end(), token) != o.eos_token_ids.end()) {
        g.finish_reason = "eos";
        done[row] = true;
        continue;
      }
      if (!o.stop_strings.empty()) {
        const std::string text = o.decode(g.tokens);
        for (const std::string& stop : o.stop_strings) {
          if (text.find(stop) == std::string::npos) continue;
          // Drop the tokens that end inside or after the match.
          while (!g.tokens.empty() && o.decode(g.tokens).find(stop) != std::string::npos) g.tokens.pop_back();
          g.finish_reason = "stop_string";
          done[row] = true;
          break;
        }
      }
    }
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; })) break;
    step_ids = at::tensor(chosen, at::kLong).unsqueeze(1).to(device);
    mask = at::cat({mask, at::ones({batch, 1}, mask.options())}, 1);
  }
  for (Generated& g : out) {
    if (g.finish_reason.empty()) g.finish_reason = "length";
  }
  return out;
}

}  // namespace tlora::models
