#include "tlora/models/llama.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/pow.h>
#include <ATen/ops/rsqrt.h>
#include <ATen/ops/scaled_dot_product_attention.h>
#include <ATen/ops/silu.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/where.h>
#include <c10/util/Exception.h>

#include <cmath>

namespace tlora::models {
namespace {

AdaptableLinear linear(int64_t in, int64_t out, bool bias) {
  return AdaptableLinear(torch::nn::LinearOptions(in, out).bias(bias));
}

// transformers' rotate_half: (x1, x2) → (−x2, x1) over the two halves of the last dimension.
at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.slice(-1, half), x.slice(-1, 0, half)}, -1);
}

// x [batch, heads, seq, head_dim]; cos, sin [batch, seq, head_dim].
at::Tensor apply_rotary(const at::Tensor& x, const RotaryEmbedding& rope) {
  const at::Tensor cos = rope.cos.unsqueeze(1).to(x.scalar_type());
  const at::Tensor sin = rope.sin.unsqueeze(1).to(x.scalar_type());
  return x * cos + rotate_half(x) * sin;
}

}  // namespace

RMSNormImpl::RMSNormImpl(int64_t size, double eps) : torch::nn::Module("tlora::models::RMSNorm"), eps_(eps) {
  weight = register_parameter("weight", at::ones({size}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  const at::Tensor x32 = x.to(at::kFloat);
  const at::Tensor normed = x32 * at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  return weight * normed.to(x.scalar_type());
}

at::Tensor rope_inverse_frequencies(const LlamaConfig& config) {
  const int64_t dim = config.head_dim;
  const at::Tensor inv_freq = 1.0 / at::pow(config.rope_theta, at::arange(0, dim, 2, at::kLong).to(at::kFloat) / dim);
  if (!config.rope_freq_factors.empty()) {
    TORCH_CHECK(static_cast<int64_t>(config.rope_freq_factors.size()) == dim / 2, "rope_freq_factors has ",
                config.rope_freq_factors.size(), " entries for ", dim / 2, " frequencies");
    return inv_freq / at::tensor(config.rope_freq_factors, at::kDouble).to(at::kFloat);
  }
  if (config.rope_type == "linear") return inv_freq / config.rope_factor;
  if (config.rope_type != "llama3") return inv_freq;
  // transformers' _compute_llama3_parameters, operation for operation.
  const double factor = config.rope_factor, low = config.rope_low_freq_factor, high = config.rope_high_freq_factor;
  const auto old_context = static_cast<double>(config.rope_original_max_position_embeddings);
  const double low_freq_wavelen = old_context / low, high_freq_wavelen = old_context / high;
  const at::Tensor wavelen = 2 * M_PI / inv_freq;
  at::Tensor scaled = at::where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq);
  const at::Tensor smooth = (old_context / wavelen - low) / (high - low);
  const at::Tensor smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
  const at::Tensor medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen);
  return at::where(medium, smoothed, scaled);
}

RotaryEmbedding rotary_embedding(const LlamaConfig& config, const at::Tensor& position_ids) {
  const at::Tensor inv_freq = rope_inverse_frequencies(config).to(position_ids.device());
  const at::Tensor freqs = position_ids.to(at::kFloat).unsqueeze(-1) * inv_freq;  // [batch, seq, dim/2]
  const at::Tensor angles = at::cat({freqs, freqs}, -1);
  return {angles.cos(), angles.sin()};
}

LlamaAttentionImpl::LlamaAttentionImpl(const LlamaConfig& c)
    : torch::nn::Module("tlora::models::LlamaAttention"),
      heads_(c.num_attention_heads),
      kv_heads_(c.num_key_value_heads),
      head_dim_(c.head_dim) {
  q_proj = register_module("q_proj", linear(c.hidden_size, heads_ * head_dim_, c.attention_bias));
  k_proj = register_module("k_proj", linear(c.hidden_size, kv_heads_ * head_dim_, c.attention_bias));
  v_proj = register_module("v_proj", linear(c.hidden_size, kv_heads_ * head_dim_, c.attention_bias));
  o_proj = register_module("o_proj", linear(heads_ * head_dim_, c.hidden_size, false));
}

at::Tensor LlamaAttentionImpl::forward(const at::Tensor& hidden, const RotaryEmbedding& rope, const at::Tensor& mask,
                                       KVCache* cache, size_t layer) {
  const int64_t batch = hidden.size(0), seq = hidden.size(1);
  const auto heads = [&](const at::Tensor& x, int64_t n) { return x.view({batch, seq, n, head_dim_}).transpose(1, 2); };
  const at::Tensor q = apply_rotary(heads(q_proj(hidden), heads_), rope);
  at::Tensor k = apply_rotary(heads(k_proj(hidden), kv_heads_), rope);
  at::Tensor v = heads(v_proj(hidden), kv_heads_);
  if (cache) {
    if (cache->keys.size() <= layer) {
      cache->keys.resize(layer + 1);
      cache->values.resize(layer + 1);
    }
    if (cache->keys[layer].defined()) {
      k = at::cat({cache->keys[layer], k}, 2);
      v = at::cat({cache->values[layer], v}, 2);
    }
    cache->keys[layer] = k;
    cache->values[layer] = v;
  }
  const at::Tensor out = at::scaled_dot_product_attention(
      q, k, v, mask.defined() ? std::optional<at::Tensor>(mask) : std::nullopt, /*dropout_p=*/0.0, /*is_causal=*/!mask.defined() && seq > 1, /*scale=*/std::nullopt,
      /*enable_gqa=*/kv_heads_ != heads_);
  return o_proj(out.transpose(1, 2).reshape({batch, seq, heads_ * head_dim_}));
}

LlamaMLPImpl::LlamaMLPImpl(const LlamaConfig& c) : torch::nn::Module("tlora::models::LlamaMLP") {
  gate_proj = register_module("gate_proj", linear(c.hidden_size, c.intermediate_size, false));
  up_proj = register_module("up_proj", linear(c.hidden_size, c.intermediate_size, false));
  down_proj = register_module("down_proj", linear(c.intermediate_size, c.hidden_size, false));
}

at::Tensor LlamaMLPImpl::forward(const at::Tensor& x) { return down_proj(at::silu(gate_proj(x)) * up_proj(x)); }

LlamaDecoderLayerImpl::LlamaDecoderLayerImpl(const LlamaConfig& c)
    : torch::nn::Module("tlora::models::LlamaDecoderLayer") {
  self_attn = register_module("self_attn", LlamaAttention(c));
  mlp = register_module("mlp", LlamaMLP(c));
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

at::Tensor LlamaDecoderLayerImpl::forward(const at::Tensor& hidden, const RotaryEmbedding& rope, const at::Tensor& mask,
                                          KVCache* cache, size_t layer) {
  const at::Tensor h = hidden + self_attn(input_layernorm(hidden), rope, mask, cache, layer);
  return h + mlp(post_attention_layernorm(h));
}

LlamaModelImpl::LlamaModelImpl(const LlamaConfig& c) : torch::nn::Module("tlora::models::LlamaModel"), config_(c) {
  c.validate();
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(LlamaDecoderLayer(c));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

at::Tensor LlamaModelImpl::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                   const at::Tensor& position_ids, KVCache* cache) {
  TORCH_CHECK(input_ids.dim() == 2, "LlamaModel: input_ids must be [batch, seq], got ", input_ids.sizes());
  const int64_t batch = input_ids.size(0), seq = input_ids.size(1);
  const int64_t past = cache ? cache->length() : 0, total = past + seq;
  const auto longs = input_ids.options().dtype(at::kLong);
  at::Tensor keep = attention_mask.defined() ? attention_mask.to(at::kBool) : at::Tensor();
  TORCH_CHECK(!keep.defined() || (keep.dim() == 2 && keep.size(0) == batch && keep.size(1) == total),
              "LlamaModel: attention_mask must be [batch, cached + seq] = [", batch, ", ", total, "], got ",
              attention_mask.sizes());
  at::Tensor mask;
  if (keep.defined() || past > 0) {
    // Query i (at position past + i) sees key j when j <= past + i and j is not padding.
    const at::Tensor queries = at::arange(past, total, longs).unsqueeze(1), keys = at::arange(total, longs).unsqueeze(0);
    mask = (keys <= queries).unsqueeze(0).expand({batch, seq, total});
    if (keep.defined()) mask = mask & keep.unsqueeze(1);
    // A padding query sees no key; letting it see every key keeps its (unused) output finite,
    // so no NaN reaches the values of later layers (transformers does the same).
    mask = (mask | ~mask.any(-1, /*keepdim=*/true)).unsqueeze(1);
  }
  at::Tensor positions = position_ids;
  if (!positions.defined()) {
    positions = keep.defined() ? (keep.to(at::kLong).cumsum(-1) - 1).clamp_min(0).slice(1, past)
                               : at::arange(past, total, longs).unsqueeze(0).expand({batch, seq});
  }
  const RotaryEmbedding rope = rotary_embedding(config_, positions);
  // The residual stream stays in the norms' dtype (float32) when the frozen embedding is kept in
  // bfloat16 (cast_frozen_matrices_).
  at::Tensor h = embed_tokens(input_ids).to(norm->weight.scalar_type());
  for (size_t i = 0; i < layers->size(); ++i) h = layers[i]->as<LlamaDecoderLayer>()->forward(h, rope, mask, cache, i);
  return norm(h);
}

LlamaForCausalLMImpl::LlamaForCausalLMImpl(const LlamaConfig& c)
    : torch::nn::Module("tlora::models::LlamaForCausalLM"), config_(c) {
  model = register_module("model", LlamaModel(c));
  lm_head = register_module("lm_head", c.tie_word_embeddings ? AdaptableLinear(model->embed_tokens->weight, at::Tensor())
                                                             : linear(c.hidden_size, c.vocab_size, false));
}

at::Tensor LlamaForCausalLMImpl::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                         const at::Tensor& position_ids, KVCache* cache) {
  return lm_head(model->forward(input_ids, attention_mask, position_ids, cache));
}

}  // namespace tlora::models
