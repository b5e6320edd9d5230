#include "tlora/models/lora_export.h"

#include "tlora/adapters/host.h"
#include "tlora/io/atomic_file.h"
#include "tlora/gguf/writer.h"
#include "tlora/models/llama.h"
#include "tlora/io/safetensors.h"

#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <map>
#include <regex>

namespace tlora {
namespace {

namespace fs = std::filesystem;

// One adapted layer as a plain LoRA: ΔW = b·a.
struct LoraLayer {
  std::string path;
  at::Tensor a;  // r×in
  at::Tensor b;  // out×r
};

std::vector<LoraLayer> lora_layers(const torch::nn::Module& model, const std::string& name) {
  c10::NoGradGuard no_grad;
  std::vector<LoraLayer> out;
  for (const auto& [path, host] : adapter_hosts(model)) {
    const auto adapter = host->adapter(name);
    if (!adapter) continue;
    const DeltaFactors f = adapter->factors();
    const auto plain = [](const at::Tensor& t) { return t.detach().to(at::kCPU, at::kFloat); };
    out.push_back({path, plain(f.core).mm(plain(f.down)).contiguous(), (plain(f.up) * plain(f.scale)).contiguous()});
  }
  TORCH_CHECK(!out.empty(), "export_lora: no module has an adapter named '", name, "'");
  return out;
}

void export_peft(const std::vector<LoraLayer>& layers, const torch::nn::Module& model, const fs::path& dir,
                 const LoraExportOptions& options) {
  using nlohmann::json;
  // PEFT scales by lora_alpha / r: alpha = r everywhere makes it 1, so B'·A' is applied as it is.
  const int64_t r0 = layers.front().a.size(0);
  json targets = json::array(), ranks = json::object();
  std::map<std::string, at::Tensor> tensors;
  for (const LoraLayer& l : layers) {
    targets.push_back(l.path);
    if (l.a.size(0) != r0) ranks[l.path] = l.a.size(0);
    tensors["base_model.model." + l.path + ".lora_A.weight"] = l.a;
    tensors["base_model.model." + l.path + ".lora_B.weight"] = l.b;
  }
  const auto named = model.named_modules("", /*include_self=*/false);
  for (const std::string& path : options.modules_to_save) {
    const auto* module = named.find(path);
    TORCH_CHECK(module, "export_lora: modules_to_save entry '", path, "' is not in the model");
    for (const auto& p : (*module)->named_parameters(/*recurse=*/true)) {
      tensors["base_model.model." + path + "." + p.key()] = p.value().detach().to(at::kCPU).contiguous();
    }
  }
  json config = {{"peft_type", "LORA"},
                 {"r", r0},
                 {"lora_alpha", r0},
                 {"rank_pattern", ranks},
                 {"alpha_pattern", ranks},
                 {"target_modules", targets},
                 {"lora_dropout", 0.0},
                 {"bias", "none"},
                 {"fan_in_fan_out", false},
                 {"use_rslora", false},
                 {"use_dora", false},
                 {"init_lora_weights", true},
                 {"inference_mode", true},
                 {"modules_to_save", options.modules_to_save.empty() ? json(nullptr) : json(options.modules_to_save)},
                 {"base_model_name_or_path", options.base_model.empty() ? json(nullptr) : json(options.base_model)},
                 {"task_type", options.task_type.empty() ? json(nullptr) : json(options.task_type)}};
  create_directories(dir, "export_lora");
  safetensors::save(dir / kPeftModelFile, tensors, {{"format", "pt"}});
  write_file_atomically(dir / kPeftConfigFile, config.dump(2) + "\n");
}

// transformers' module path → llama.cpp's tensor name ("model.layers.3.self_attn.q_proj" → "blk.3.attn_q").
std::string llama_cpp_name(const std::string& path) {
  static const std::map<std::string, std::string> kLayer = {
      {"self_attn.q_proj", "attn_q"}, {"self_attn.k_proj", "attn_k"}, {"self_attn.v_proj", "attn_v"},
      {"self_attn.o_proj", "attn_output"}, {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"},
      {"mlp.down_proj", "ffn_down"}};
  if (path == "lm_head") return "output";
  static const std::regex layer(R"(model\.layers\.(\d+)\.(.+))");
  std::smatch m;
  if (std::regex_match(path, m, layer)) {
    if (const auto it = kLayer.find(m[2].str()); it != kLayer.end()) return "blk." + m[1].str() + "." + it->second;
  }
  return "";
}

// What llama.cpp's converter does to attn_q/attn_k rows, for its adjacent-pair RoPE.
at::Tensor permute_rows(const at::Tensor& w, int64_t heads) {
  return w.reshape({heads, 2, w.size(0) / heads / 2, w.size(1)}).transpose(1, 2).reshape(w.sizes());
}

void export_gguf(const std::vector<LoraLayer>& layers, const torch::nn::Module& model, const fs::path& dir) {
  const auto* llama = dynamic_cast<const models::LlamaForCausalLMImpl*>(&model);
  TORCH_CHECK(llama, "export_lora: the GGUF format is llama.cpp's, for LLaMA-family models (LlamaForCausalLM); "
                     "this model is a ", model.name());
  const models::LlamaConfig& c = llama->config();
  // llama.cpp scales by alpha / rank with one alpha per file: alpha = the first layer's rank, and
  // the other layers' rank/alpha folded into their B.
  const double alpha = static_cast<double>(layers.front().a.size(0));
  gguf::Writer w;
  using gguf::Value;
  using gguf::ValueType;
  w.set("general.architecture", Value(ValueType::STRING, c.model_type));
  w.set("general.type", Value(ValueType::STRING, std::string("adapter")));
  w.set("adapter.type", Value(ValueType::STRING, std::string("lora")));
  w.set("adapter.lora.alpha", Value(ValueType::FLOAT32, alpha));
  for (const LoraLayer& l : layers) {
    const std::string name = llama_cpp_name(l.path);
    TORCH_CHECK(!name.empty(), "export_lora: '", l.path, "' has no llama.cpp tensor name (q, k, v, o, gate, up, "
                               "down projections and an untied lm_head have)");
    TORCH_CHECK(!(name == "output" && c.tie_word_embeddings), "export_lora: '", l.path,
                "' is the tied output head, the input embedding itself; llama.cpp applies no LoRA to it");
    at::Tensor b = l.b * (static_cast<double>(l.a.size(0)) / alpha);
    if (c.model_type == "llama" && name.ends_with("attn_q")) b = permute_rows(b, c.num_attention_heads);
    if (c.model_type == "llama" && name.ends_with("attn_k")) b = permute_rows(b, c.num_key_value_heads);
    w.add_tensor(name + ".weight.lora_a", l.a);
    w.add_tensor(name + ".weight.lora_b", b.contiguous());
  }
  create_directories(dir, "export_lora");
  w.write(dir / kGgufAdapterFile);
}

}  // namespace

void export_lora(const torch::nn::Module& model, const fs::path& dir, LoraFormat format, const LoraExportOptions& options) {
  const std::vector<LoraLayer> layers = lora_layers(model, options.adapter_name);
  if (format == LoraFormat::Peft) {
    export_peft(layers, model, dir, options);
  } else {
    export_gguf(layers, model, dir);
  }
}

}  // namespace tlora
