#include "options.h"

#include "tlora/core/random.h"
#include "tlora/models/packaged.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

namespace sft {

std::optional<Options> parse_options(int argc, char** argv, int& exit_code) {
  CLI::App app{"Fine-tune a LLaMA-family model on JSONL instructions with TLoRA or a baseline"};
  Options o;
  app.add_option("--model", o.model, "a GGUF file or a Hugging Face folder (default: the packaged SmolLM2-135M-Instruct)");
  app.add_option("--train", o.train, "JSONL: {\"prompt\", \"completion\"} or {\"messages\": [...]} per line")->required();
  auto* validation =
      app.add_option("--validation", o.validation,
                     "JSONL of the same form: validation loss each epoch, greedy answers scored before and after");
  app.add_option("--validation-split", o.validation_split,
                 "without --validation: hold out this share of --train (at most --max-validation examples, "
                 "drawn with --seed)")
      ->check(CLI::Range(0.0, 1.0))
      ->excludes(validation);
  app.add_option("--method", o.method, "tlora, lora, vera or loraxs")->check(CLI::IsMember({"tlora", "lora", "vera", "loraxs"}));
  app.add_option("--targets", o.targets, "module names to adapt (PEFT's target_modules)");
  app.add_option("--rank", o.rank, "adapter rank")->check(CLI::Range(int64_t{1}, int64_t{4096}));
  app.add_option("--scale", o.scale, "TLoRA's initial alpha, LoRA's lora_alpha")->check(CLI::PositiveNumber);
  app.add_option("--dropout", o.dropout, "adapter dropout")->check(CLI::Range(0.0, 0.99));
  app.add_option("--lr", o.lr, "learning rate of the adapter")->check(CLI::PositiveNumber);
  app.add_option("--epochs", o.epochs, "passes over the training file")->check(CLI::PositiveNumber);
  app.add_option("--batch-size", o.batch_size, "examples per batch")->check(CLI::PositiveNumber);
  app.add_option("--gradient-accumulation", o.accumulation, "batches per optimizer step")->check(CLI::PositiveNumber);
  app.add_option("--score-before", o.score_before,
                 "score the greedy answers before fine-tuning too (the zero-shot baseline; off: after only)");
  app.add_option("--group-by-length", o.group_by_length, "batch examples of similar length together (less padding)")
      ->capture_default_str();
  app.add_option("--max-length", o.max_length, "tokens per example (longer ones are cut)")->check(CLI::PositiveNumber);
  app.add_option("--max-examples", o.max_examples, "use the first N training examples (0: all)")->check(CLI::NonNegativeNumber);
  app.add_option("--max-validation", o.max_validation, "validate on at most N examples")->check(CLI::PositiveNumber);
  app.add_option("--warmup-ratio", o.warmup_ratio, "share of steps warming the learning rate up")->check(CLI::Range(0.0, 1.0));
  app.add_option("--weight-decay", o.weight_decay, "AdamW weight decay")->check(CLI::NonNegativeNumber);
  app.add_option("--max-grad-norm", o.clip, "gradient clipping (0: off)")->check(CLI::NonNegativeNumber);
  app.add_option("--seed", o.seed, "seed of the adapter, the data order, the validation split and dropout");
  app.add_option("--precision", o.precision, "auto, fp32 or bf16-mixed")->check(CLI::IsMember({"auto", "fp32", "bf16-mixed"}));
  app.add_option("--threads", o.threads, "torch threads (0: LibTorch's default)")->check(CLI::NonNegativeNumber);
  app.add_option("--split-batch", o.split_batch,
                 "train each batch as one part per thread side by side, each part on one thread (faster "
                 "than every op spread over all threads); false: the whole batch on all")
      ->capture_default_str();
  app.add_option("--output-dir", o.output_dir, "where the adapter, the checkpoint and results.json go");
  app.add_option("--checkpoint-every", o.checkpoint_every,
                 "write a resumable checkpoint every N optimizer steps (and at every epoch end)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_flag("--resume", o.resume, "continue the run in --output-dir from its last checkpoint");
  app.add_option("--export", o.export_format, "also write the adapter for peft or gguf (llama.cpp)")
      ->check(CLI::IsMember({"peft", "gguf"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    exit_code = app.exit(e);
    return std::nullopt;
  }
  if (o.model.empty()) o.model = tlora::models::packaged_smollm2().string();
  return o;
}

nlohmann::ordered_json to_json(const Options& o, const std::string& precision) {
  return {{"model", o.model},
          {"train", o.train},
          {"validation", o.validation},
          {"validation_split", o.validation_split},
          {"max_validation", o.max_validation},
          {"method", o.method},
          {"targets", o.targets},
          {"rank", o.rank},
          {"scale", o.scale},
          {"dropout", o.dropout},
          {"lr", o.lr},
          {"epochs", o.epochs},
          {"batch_size", o.batch_size},
          {"gradient_accumulation", o.accumulation},
          {"group_by_length", o.group_by_length},
          {"max_length", o.max_length},
          {"max_examples", o.max_examples},
          {"warmup_ratio", o.warmup_ratio},
          {"weight_decay", o.weight_decay},
          {"max_grad_norm", o.clip},
          {"seed", o.seed},
          {"precision", precision},
          {"threads", o.threads},
          {"split_batch", o.split_batch},
          {"output_dir", o.output_dir},
          {"checkpoint_every", o.checkpoint_every},
          {"export", o.export_format}};
}

std::string trajectory_digest(const nlohmann::ordered_json& config) {
  nlohmann::ordered_json j = config;
  // The threads and the batch's parts change the rounding, not the recipe.
  for (const char* key : {"threads", "split_batch", "output_dir", "checkpoint_every", "export"}) j.erase(key);
  const std::string text = j.dump();
  return fmt::format("{:016x}", tlora::fnv1a64(text.data(), text.size()));
}

}  // namespace sft
