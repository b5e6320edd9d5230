// LLaMA-family causal language models (transformers' LlamaForCausalLM and Qwen2ForCausalLM)
// built from tlora::AdaptableLinear, loaded from GGUF files or Hugging Face folders, under transformers'
// module names (`model.layers.3.self_attn.q_proj`, `model.layers.3.mlp.down_proj`, ...), so
// that inject adapts q,k,v,o,gate,up,down by name as PEFT's target_modules do.
#pragma once

#include "tlora/export.h"

#include "tlora/adapters/adaptable_linear.h"
#include "tlora/text/bpe.h"
#include "tlora/text/chat_template.h"

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

TLORA_API_BEGIN
namespace tlora::gguf {
class File;
}

namespace tlora::models {

/// The configuration of a LLaMA-family decoder, as transformers' LlamaConfig/Qwen2Config name it.
struct LlamaConfig {
  /// "llama" or "qwen2" (which adds biases to q, k and v).
  std::string model_type = "llama";
  /// Vocabulary size.
  int64_t vocab_size = 32000;
  /// Width of the residual stream.
  int64_t hidden_size = 4096;
  /// Width of the SwiGLU feed-forward layer.
  int64_t intermediate_size = 11008;
  /// Decoder layers.
  int64_t num_hidden_layers = 32;
  /// Query heads.
  int64_t num_attention_heads = 32;
  /// Key/value heads (grouped-query attention when fewer than the query heads).
  int64_t num_key_value_heads = 32;
  /// Width of a head (hidden_size / num_attention_heads unless the config says otherwise).
  int64_t head_dim = 128;
  /// ε of the RMSNorms.
  double rms_norm_eps = 1e-6;
  /// RoPE base θ.
  double rope_theta = 10000.0;
  /// RoPE scaling, as transformers' rope_type names it: "default" (none), "linear" (positions
  /// divided by rope_factor) or "llama3" (low frequencies divided by rope_factor, high ones kept,
  /// smoothed between).
  std::string rope_type = "default";
  /// The scaling factor of "linear" and "llama3".
  double rope_factor = 1.0;
  /// "llama3": the wavelength bounds, as fractions of the original context.
  double rope_low_freq_factor = 1.0, rope_high_freq_factor = 4.0;
  /// "llama3": the context length the model was trained with before scaling.
  int64_t rope_original_max_position_embeddings = 8192;
  /// Per-frequency divisors of the inverse frequencies (a GGUF's rope_freqs.weight), empty for
  /// none; they replace rope_type's own scaling.
  std::vector<double> rope_freq_factors;
  /// Longest sequence the positions were trained for.
  int64_t max_position_embeddings = 2048;
  /// Whether q, k and v have biases (Qwen2).
  bool attention_bias = false;
  /// Whether the output head shares the input embedding's weight.
  bool tie_word_embeddings = false;
  /// Special token ids, where the config has them.
  std::optional<int64_t> bos_token_id, eos_token_id, pad_token_id;

  /// From a Hugging Face folder's config.json (architectures LlamaForCausalLM or
  /// Qwen2ForCausalLM); refuses what the model does not implement (RoPE scalings other than
  /// linear and llama3, other activations, MLP biases) naming the field.
  static LlamaConfig from_pretrained(const std::filesystem::path& dir);
  /// From a GGUF file's metadata (general.architecture "llama" or "qwen2").
  static LlamaConfig from_gguf(const gguf::File& file);
  /// Throws naming the first inconsistent field.
  void validate() const;
};

/// transformers' LlamaRMSNorm: x / sqrt(mean(x²) + ε) · weight, computed in float32.
class RMSNormImpl : public torch::nn::Module {
 public:
  /// A norm over the last `size` features, weight initialised to ones.
  RMSNormImpl(int64_t size, double eps);
  /// Normalises the last dimension of x.
  at::Tensor forward(const at::Tensor& x);
  /// `weight`.
  at::Tensor weight;

 private:
  double eps_;
};
/// A ModuleHolder for RMSNormImpl.
TORCH_MODULE(RMSNorm);

/// The rotary position embedding's cos and sin for given positions, [batch, seq, head_dim].
struct RotaryEmbedding {
  /// cos(position · θ^(−2i/d)), each frequency twice (transformers' layout).
  at::Tensor cos;
  /// sin of the same angles.
  at::Tensor sin;
};

/// The inverse frequencies θ^(−2i/d) of RoPE (head_dim / 2 of them, float32), scaled as the
/// config says, as transformers computes them.
at::Tensor rope_inverse_frequencies(const LlamaConfig& config);

/// cos and sin for `position_ids` [batch, seq], in float32, as transformers computes them.
RotaryEmbedding rotary_embedding(const LlamaConfig& config, const at::Tensor& position_ids);

/// The keys and values of the positions seen so far, per layer, for incremental decoding: pass
/// an empty one with the prompt, then the same one with each new token.
struct KVCache {
  /// Per layer [batch, kv_heads, positions, head_dim] (empty before the first call).
  std::vector<at::Tensor> keys, values;
  /// Positions cached so far.
  int64_t length() const { return keys.empty() ? 0 : keys.front().size(2); }
};

/// transformers' LlamaAttention: `q_proj`, `k_proj`, `v_proj`, `o_proj`, RoPE, grouped-query
/// scaled dot-product attention.
class LlamaAttentionImpl : public torch::nn::Module {
 public:
  /// The layer for `config`.
  explicit LlamaAttentionImpl(const LlamaConfig& config);
  /// hidden [batch, seq, hidden]; `mask` a boolean [batch, 1, seq, cached + seq] (true = attend)
  /// or undefined for plain causal attention without a cache; `cache` (with `layer`, this
  /// layer's index) supplies earlier keys and values and receives these.
  at::Tensor forward(const at::Tensor& hidden, const RotaryEmbedding& rope, const at::Tensor& mask,
                     KVCache* cache = nullptr, size_t layer = 0);
  /// The projections.
  AdaptableLinear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  int64_t heads_, kv_heads_, head_dim_;
};
/// A ModuleHolder for LlamaAttentionImpl.
TORCH_MODULE(LlamaAttention);

/// transformers' LlamaMLP: down_proj(silu(gate_proj(x)) · up_proj(x)).
class LlamaMLPImpl : public torch::nn::Module {
 public:
  /// The layer for `config`.
  explicit LlamaMLPImpl(const LlamaConfig& config);
  /// x [..., hidden].
  at::Tensor forward(const at::Tensor& x);
  /// The projections.
  AdaptableLinear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
/// A ModuleHolder for LlamaMLPImpl.
TORCH_MODULE(LlamaMLP);

/// transformers' LlamaDecoderLayer: pre-norm attention and MLP, each with a residual.
class LlamaDecoderLayerImpl : public torch::nn::Module {
 public:
  /// The layer for `config`.
  explicit LlamaDecoderLayerImpl(const LlamaConfig& config);
  /// See LlamaAttentionImpl::forward.
  at::Tensor forward(const at::Tensor& hidden, const RotaryEmbedding& rope, const at::Tensor& mask,
                     KVCache* cache = nullptr, size_t layer = 0);
  /// `self_attn`.
  LlamaAttention self_attn{nullptr};
  /// `mlp`.
  LlamaMLP mlp{nullptr};
  /// `input_layernorm`, `post_attention_layernorm`.
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
/// A ModuleHolder for LlamaDecoderLayerImpl.
TORCH_MODULE(LlamaDecoderLayer);

/// transformers' LlamaModel: `embed_tokens`, `layers.N`, `norm`.
class LlamaModelImpl : public torch::nn::Module {
 public:
  /// The model for `config`, weights uninitialised.
  explicit LlamaModelImpl(const LlamaConfig& config);
  /// The final hidden states [batch, seq, hidden]; see LlamaForCausalLMImpl::forward.
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {},
                     const at::Tensor& position_ids = {}, KVCache* cache = nullptr);
  /// `embed_tokens`.
  torch::nn::Embedding embed_tokens{nullptr};
  /// `layers`.
  torch::nn::ModuleList layers{nullptr};
  /// `norm`.
  RMSNorm norm{nullptr};

 private:
  LlamaConfig config_;
};
/// A ModuleHolder for LlamaModelImpl.
TORCH_MODULE(LlamaModel);

/// transformers' LlamaForCausalLM: `model` and `lm_head`, which shares model.embed_tokens'
/// weight when tie_word_embeddings.
class LlamaForCausalLMImpl : public torch::nn::Module {
 public:
  /// The model for `config`, weights uninitialised (load_llama fills them).
  explicit LlamaForCausalLMImpl(const LlamaConfig& config);
  /// Logits [batch, seq, vocab] for input_ids [batch, seq]. attention_mask: undefined (attend
  /// to every earlier position) or [batch, cached + seq] with 0 at padding, which may only be on
  /// the left; position_ids: undefined (0, 1, ... counted from the first non-padding token) or
  /// [batch, seq]; cache: the keys and values of the earlier positions (see KVCache), extended
  /// by these.
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {},
                     const at::Tensor& position_ids = {}, KVCache* cache = nullptr);
  /// The configuration.
  const LlamaConfig& config() const { return config_; }

  /// `model`.
  LlamaModel model{nullptr};
  /// `lm_head`.
  AdaptableLinear lm_head{nullptr};

 private:
  LlamaConfig config_;
};
/// A ModuleHolder for LlamaForCausalLMImpl.
TORCH_MODULE(LlamaForCausalLM);

/// The text side of a LLaMA-family model: its tokenizer and, where it has one, its chat template.
struct LlamaText {
  /// The byte-level BPE tokenizer.
  std::unique_ptr<text::ByteLevelBPETokenizer> tokenizer;
  /// The ChatML template, absent when the model has none.
  std::optional<text::ChatTemplate> chat;
};

/// The tokenizer and chat template of the model at `path`, from the same sources as load_llama:
/// a GGUF file's metadata, or a Hugging Face folder's tokenizer.json and the chat_template of its
/// tokenizer_config.json (if any).
LlamaText load_llama_text(const std::filesystem::path& path);

/// A LLaMA-family model with its weights, from a GGUF file (dequantized to float32; attn_q and
/// attn_k rows put back into Hugging Face's order) or a Hugging Face folder (config.json and
/// safetensors weights). Every tensor must find its parameter and every parameter its tensor;
/// refusals name the file and the tensor.
LlamaForCausalLM load_llama(const std::filesystem::path& path);

}  // namespace tlora::models
TLORA_API_END
