// LlamaConfig from config.json or GGUF metadata, and load_llama: the weights of a GGUF file or a
// Hugging Face folder into LlamaForCausalLM's parameters.
#include "tlora/models/llama.h"

#include "io/json.h"
#include "io/json_fields.h"
#include "tlora/gguf/file.h"
#include "tlora/models/loading.h"
#include "tlora/io/safetensors.h"

#include <ATen/ops/tensor.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <sys/stat.h>

#include <map>
#include <regex>

namespace tlora::models {
namespace {

namespace fs = std::filesystem;

// POSIX stat rather than std::filesystem, whose operations clash with LibTorch's own copies.
bool is_folder(const fs::path& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
using Fields = tlora::detail::JsonFields;
using nlohmann::json;

// llama.cpp's tensor names → transformers' ("blk.3.attn_q.weight" → "model.layers.3.self_attn.q_proj.weight").
std::string hf_name(const std::string& name) {
  static const std::map<std::string, std::string> kGlobal = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"}};
  static const std::map<std::string, std::string> kBlock = {
      {"attn_norm", "input_layernorm"},     {"ffn_norm", "post_attention_layernorm"},
      {"attn_q", "self_attn.q_proj"},       {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},       {"attn_output", "self_attn.o_proj"},
      {"ffn_gate", "mlp.gate_proj"},        {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"}};
  if (const auto it = kGlobal.find(name); it != kGlobal.end()) return it->second;
  static const std::regex block(R"(blk\.(\d+)\.([a-z_]+)\.(weight|bias))");
  std::smatch m;
  if (std::regex_match(name, m, block)) {
    if (const auto it = kBlock.find(m[2].str()); it != kBlock.end()) {
      return "model.layers." + m[1].str() + "." + it->second + "." + m[3].str();
    }
  }
  return "";
}

// llama.cpp's converter interleaves the rows of attn_q and attn_k per head, for its adjacent-pair
// RoPE: (heads, 2, head_dim/2, in) with axes 1 and 2 swapped. Undo it, as transformers does.
at::Tensor unpermute_rows(const at::Tensor& w, int64_t heads) {
  auto shape = w.sizes().vec();
  std::vector<int64_t> split = {heads, w.size(0) / heads / 2, 2};
  split.insert(split.end(), shape.begin() + 1, shape.end());
  return w.reshape(split).transpose(1, 2).reshape(shape);
}

// The parameters of `model` by name, the tied lm_head left out (it is embed_tokens' weight).
std::map<std::string, at::Tensor> parameters_to_fill(LlamaForCausalLMImpl& model) {
  std::map<std::string, at::Tensor> out;
  for (const auto& p : model.named_parameters()) out[p.key()] = p.value();
  if (model.config().tie_word_embeddings) out.erase("lm_head.weight");
  return out;
}

// Copies `value` into the parameter `name`, checking the shape; `source` names the file's tensor.
void fill(std::map<std::string, at::Tensor>& open, const std::string& name, const at::Tensor& value,
          const std::string& file, const std::string& source) {
  const auto it = open.find(name);
  TORCH_CHECK(it != open.end(), file, ": tensor '", source, "' has no parameter in the model",
              name.empty() ? "" : " (it would be '" + name + "')");
  TORCH_CHECK(it->second.sizes() == value.sizes(), file, ": tensor '", source, "' has shape ", value.sizes(),
              " but the model's '", name, "' has ", it->second.sizes());
  c10::NoGradGuard no_grad;
  it->second.copy_(value);
  open.erase(it);
}

void require_all_filled(const std::map<std::string, at::Tensor>& open, const std::string& file) {
  std::vector<std::string> names;
  for (const auto& [name, t] : open) names.push_back(name);
  TORCH_CHECK(names.empty(), file, ": no tensor for the parameters ", fmt::format("{}", fmt::join(names, ", ")));
}

LlamaForCausalLM load_gguf(const fs::path& path) {
  const gguf::File file = gguf::File::open(path);
  const LlamaConfig config = LlamaConfig::from_gguf(file);
  LlamaForCausalLM model(config);
  auto open = parameters_to_fill(*model);
  const std::string where = fmt::format("GGUF file \"{}\"", path.string());
  const bool permuted = config.model_type == "llama";
  for (const gguf::TensorInfo& info : file.tensors()) {
    const std::string name = hf_name(info.name);
    if (info.name == "rope_freqs.weight") continue;  // read into the config
    at::Tensor value = file.load(info.name);
    if (permuted && info.name.ends_with("attn_q.weight")) value = unpermute_rows(value, config.num_attention_heads);
    if (permuted && info.name.ends_with("attn_k.weight")) value = unpermute_rows(value, config.num_key_value_heads);
    fill(open, name, value, where, info.name);
  }
  require_all_filled(open, where);
  return model;
}

LlamaForCausalLM load_folder(const fs::path& dir) {
  const LlamaConfig config = LlamaConfig::from_pretrained(dir);
  LlamaForCausalLM model(config);
  auto open = parameters_to_fill(*model);
  for (const fs::path& file : weight_files(dir)) {
    const safetensors::File weights = safetensors::File::open(file);
    const std::string where = fmt::format("\"{}\"", file.string());
    for (const safetensors::TensorInfo& info : weights.tensors()) {
      if (config.tie_word_embeddings && info.name == "lm_head.weight") continue;  // a copy of embed_tokens
      fill(open, info.name, weights.get(info.name), where, info.name);
    }
  }
  require_all_filled(open, fmt::format("\"{}\"", dir.string()));
  return model;
}

}  // namespace

LlamaConfig LlamaConfig::from_pretrained(const fs::path& dir) {
  const fs::path path = dir / "config.json";
  const json root =
      tlora::detail::read_json(path, "model configuration (a Hugging Face model folder has a config.json)");
  const std::string source = path.string();
  TORCH_CHECK(root.is_object(), source, ": expected a JSON object");
  const Fields fields(root, source);
  LlamaConfig c;
  fields.string("model_type", c.model_type);
  TORCH_CHECK(c.model_type == "llama" || c.model_type == "qwen2", source, ": model_type '", c.model_type,
              "' is not a LLaMA-family decoder (supported: llama, qwen2)");
  if (c.model_type == "qwen2") c.attention_bias = true;
  fields.integer("vocab_size", c.vocab_size);
  fields.integer("hidden_size", c.hidden_size);
  fields.integer("intermediate_size", c.intermediate_size);
  fields.integer("num_hidden_layers", c.num_hidden_layers);
  fields.integer("num_attention_heads", c.num_attention_heads);
  c.num_key_value_heads = c.num_attention_heads;
  fields.integer("num_key_value_heads", c.num_key_value_heads);
  c.head_dim = c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0;
  if (const json* v = fields.find("head_dim"); v && !v->is_null()) fields.integer("head_dim", c.head_dim);
  fields.number("rms_norm_eps", c.rms_norm_eps);
  fields.number("rope_theta", c.rope_theta);
  // transformers 5 writes rope_parameters (with rope_theta inside); older files rope_scaling
  // ("type" or "rope_type").
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    const json* p = fields.find(key);
    if (!p || p->is_null()) continue;
    TORCH_CHECK(p->is_object(), source, ": ", key, " must be an object, got ", p->dump());
    const Fields rope(*p, source);
    rope.number("rope_theta", c.rope_theta);
    rope.string("type", c.rope_type);
    rope.string("rope_type", c.rope_type);
    TORCH_CHECK(c.rope_type == "default" || c.rope_type == "linear" || c.rope_type == "llama3", source, ": ", key,
                " rope_type '", c.rope_type, "' is not supported (default, linear and llama3 are)");
    rope.number("factor", c.rope_factor);
    rope.number("low_freq_factor", c.rope_low_freq_factor);
    rope.number("high_freq_factor", c.rope_high_freq_factor);
    rope.integer("original_max_position_embeddings", c.rope_original_max_position_embeddings);
  }
  fields.integer("max_position_embeddings", c.max_position_embeddings);
  fields.boolean("tie_word_embeddings", c.tie_word_embeddings);
  if (c.model_type == "llama") fields.boolean("attention_bias", c.attention_bias);
  fields.refuse_true("mlp_bias", "biases in the MLP");
  fields.refuse_true("use_sliding_window", "sliding-window attention");
  std::string act = "silu";
  fields.string("hidden_act", act);
  TORCH_CHECK(act == "silu", source, ": hidden_act '", act, "' is not supported (LLaMA's SwiGLU uses silu)");
  fields.optional_integer("bos_token_id", c.bos_token_id);
  fields.optional_integer("eos_token_id", c.eos_token_id);
  fields.optional_integer("pad_token_id", c.pad_token_id);
  try {
    c.validate();
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, source, ": ", e.what_without_backtrace());
  }
  return c;
}

LlamaConfig LlamaConfig::from_gguf(const gguf::File& file) {
  LlamaConfig c;
  const std::string arch = file.get_string("general.architecture");
  TORCH_CHECK(arch == "llama" || arch == "qwen2", "GGUF file ", file.path(), ": general.architecture '", arch,
              "' is not a LLaMA-family decoder (supported: llama, qwen2)");
  c.model_type = arch;
  c.attention_bias = arch == "qwen2";
  const auto key = [&](const char* name) { return arch + "." + name; };
  c.num_hidden_layers = file.get_int(key("block_count"));
  c.hidden_size = file.get_int(key("embedding_length"));
  c.intermediate_size = file.get_int(key("feed_forward_length"));
  c.num_attention_heads = file.get_int(key("attention.head_count"));
  c.num_key_value_heads = file.find(key("attention.head_count_kv")) ? file.get_int(key("attention.head_count_kv"))
                                                                    : c.num_attention_heads;
  c.head_dim = file.find(key("attention.key_length")) ? file.get_int(key("attention.key_length"))
                                                      : c.hidden_size / std::max<int64_t>(c.num_attention_heads, 1);
  c.rms_norm_eps = file.get_float(key("attention.layer_norm_rms_epsilon"));
  if (file.find(key("rope.freq_base"))) c.rope_theta = file.get_float(key("rope.freq_base"));
  if (file.find(key("rope.scaling.type"))) {
    const std::string type = file.get_string(key("rope.scaling.type"));
    TORCH_CHECK(type == "none" || type == "linear", "GGUF file ", file.path(), ": ", key("rope.scaling.type"), " '",
                type, "' is not supported (none and linear are)");
    if (type == "linear") {
      c.rope_type = "linear";
      c.rope_factor = file.get_float(key("rope.scaling.factor"));
    }
  }
  // LLaMA 3.1's scaling, precomputed by the converter as one divisor per frequency.
  if (file.find_tensor("rope_freqs.weight")) {
    const at::Tensor factors = file.load("rope_freqs.weight").to(at::kDouble).contiguous();
    c.rope_freq_factors.assign(factors.data_ptr<double>(), factors.data_ptr<double>() + factors.numel());
  }
  c.max_position_embeddings = file.get_int(key("context_length"));
  c.vocab_size = file.find(key("vocab_size")) ? file.get_int(key("vocab_size"))
                                              : static_cast<int64_t>(file.at("tokenizer.ggml.tokens").as_array().items.size());
  c.tie_word_embeddings = file.find_tensor("output.weight") == nullptr;
  if (file.find("tokenizer.ggml.bos_token_id")) c.bos_token_id = file.get_int("tokenizer.ggml.bos_token_id");
  if (file.find("tokenizer.ggml.eos_token_id")) c.eos_token_id = file.get_int("tokenizer.ggml.eos_token_id");
  if (file.find("tokenizer.ggml.padding_token_id")) c.pad_token_id = file.get_int("tokenizer.ggml.padding_token_id");
  try {
    c.validate();
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, "GGUF file ", file.path(), ": ", e.what_without_backtrace());
  }
  return c;
}

void LlamaConfig::validate() const {
  const auto positive = [](const char* name, int64_t v) {
    TORCH_CHECK(v > 0, name, " must be positive, got ", v);
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("num_key_value_heads", num_key_value_heads);
  positive("head_dim", head_dim);
  TORCH_CHECK(num_attention_heads % num_key_value_heads == 0, "num_attention_heads (", num_attention_heads,
              ") must be a multiple of num_key_value_heads (", num_key_value_heads, ")");
  TORCH_CHECK(head_dim % 2 == 0, "head_dim must be even for RoPE, got ", head_dim);
  TORCH_CHECK(rms_norm_eps > 0 && rope_theta > 0, "rms_norm_eps and rope_theta must be positive");
  TORCH_CHECK(rope_factor > 0, "the RoPE scaling factor must be positive, got ", rope_factor);
  TORCH_CHECK(rope_type != "llama3" || rope_high_freq_factor > rope_low_freq_factor,
              "llama3 RoPE: high_freq_factor must exceed low_freq_factor");
}

LlamaForCausalLM load_llama(const fs::path& path) {
  return is_folder(path) ? load_folder(path) : load_gguf(path);
}

LlamaText load_llama_text(const fs::path& path) {
  LlamaText t;
  if (!is_folder(path)) {
    const gguf::File file = gguf::File::open(path);
    t.tokenizer = std::make_unique<text::ByteLevelBPETokenizer>(text::ByteLevelBPETokenizer::from_gguf(file));
    if (file.find("tokenizer.chat_template")) t.chat = text::ChatTemplate::from_jinja(file.get_string("tokenizer.chat_template"));
    return t;
  }
  t.tokenizer = std::make_unique<text::ByteLevelBPETokenizer>(text::ByteLevelBPETokenizer::from_tokenizer_json(path / "tokenizer.json"));
  if (const fs::path file = path / "tokenizer_config.json"; fs::exists(file)) {
    const json config = tlora::detail::read_json(file, "tokenizer configuration");
    if (config.contains("chat_template") && config["chat_template"].is_string()) {
      t.chat = text::ChatTemplate::from_jinja(config["chat_template"].get<std::string>());
    }
  }
  return t;
}

}  // namespace tlora::models
