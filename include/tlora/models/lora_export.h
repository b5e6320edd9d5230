// TLoRA is a LoRA, exactly: ΔW = α·B·M·A = B'·A' with A' = M·A (r×in) and B' = α·B (out×r). So
// a trained adapter of any kind whose ΔW has rank r can be written as a standard LoRA adapter
// that the serving tools people run (PEFT, llama.cpp) load as they load any other.
#pragma once

#include "tlora/export.h"

#include <torch/nn/module.h>

#include <filesystem>
#include <string>
#include <vector>

TLORA_API_BEGIN
namespace tlora {

/// Which LoRA file layout.
enum class LoraFormat {
  /// PEFT's: adapter_config.json and adapter_model.safetensors, for transformers models under
  /// their Hugging Face module names (BERT, RoBERTa, LLaMA, Qwen2).
  Peft,
  /// llama.cpp's GGUF LoRA adapter (general.type "adapter"), for LLaMA-family models
  /// (models::LlamaForCausalLM): one file, adapter.gguf.
  Gguf,
};

/// What else an exported adapter records.
struct LoraExportOptions {
  /// The adapter of the model to export.
  std::string adapter_name = "default";
  /// PEFT: base_model_name_or_path.
  std::string base_model;
  /// PEFT: task_type ("CAUSAL_LM", "SEQ_CLS", ...; empty: none).
  std::string task_type;
  /// PEFT: module paths whose whole parameters are saved too (e.g. "classifier").
  std::vector<std::string> modules_to_save;
};

/// The file names the formats write.
inline constexpr const char* kPeftConfigFile = "adapter_config.json";
/// PEFT's tensor file.
inline constexpr const char* kPeftModelFile = "adapter_model.safetensors";
/// The GGUF adapter's file.
inline constexpr const char* kGgufAdapterFile = "adapter.gguf";

/// Writes the adapter `options.adapter_name` of every adapted layer of `model` into `dir` as a
/// standard LoRA of `format` whose ΔW equals the adapter's (each layer's rank its own; the
/// scaling folded so that the loader's alpha/r is 1). The files are written atomically. Throws,
/// writing nothing, when no layer has the adapter, a GGUF export's model is not a LLaMA-family
/// decoder, or a layer has no llama.cpp name.
void export_lora(const torch::nn::Module& model, const std::filesystem::path& dir, LoraFormat format,
                 const LoraExportOptions& options = {});

}  // namespace tlora
TLORA_API_END
