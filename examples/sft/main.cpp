// tlora-sft: supervised fine-tuning of a LLaMA-family model with TLoRA (or LoRA, VeRA, LoRA-XS)
// on JSONL instructions, the loss on the answers only; reports the greedy answers' accuracy on a
// validation file before and after, saves the adapter, and exports it for PEFT or llama.cpp.
#include "data.h"

#include "tlora/checkpoint.h"
#include "tlora/inject.h"
#include "tlora/lora_export.h"
#include "tlora/models/generation.h"
#include "tlora/models/llama.h"
#include "tlora/precision.h"
#include "tlora/progress.h"
#include "tlora/train/schedule.h"

#include <ATen/Parallel.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/full.h>
#include <ATen/ops/tensor.h>
#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>


#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace {

struct Options {
  std::string model, train, validation, output_dir = "runs/sft", method = "tlora", precision = "auto", export_format;
  std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  int64_t rank = 32, epochs = 1, batch_size = 8, accumulation = 1, max_length = 256, max_examples = 0, max_validation = 200;
  double lr = 1e-2, scale = 1.0, dropout = 0.0, warmup_ratio = 0.06, weight_decay = 0.0, clip = 1.0;
  uint64_t seed = 1;
  int threads = 0;
};

// The first word of `text`, lower-cased, without punctuation: how a one-word answer is compared.
std::string first_word(const std::string& text) {
  std::string w;
  for (const char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      w += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (!w.empty()) {
      break;
    }
  }
  return w;
}

// The share of examples whose greedy answer starts with the expected answer's first word.
double answer_accuracy(tlora::models::LlamaForCausalLMImpl& model, const tlora::text::ByteLevelBPETokenizer& tokenizer,
                       const std::vector<sft::Example>& examples, int64_t eos, int64_t pad, bool bf16) {
  model.eval();
  tlora::models::GenerationOptions o;
  o.max_new_tokens = 4;
  o.eos_token_ids = {eos};
  o.pad_token_id = pad;
  std::optional<tlora::AutocastGuard> autocast;
  if (bf16) autocast.emplace(at::kCPU);
  size_t right = 0;
  constexpr size_t kBatch = 16;
  tlora::ProgressBar bar("evaluate", static_cast<int64_t>(examples.size()));
  for (size_t start = 0; start < examples.size(); start += kBatch) {
    std::vector<std::vector<int64_t>> prompts;
    const size_t end = std::min(examples.size(), start + kBatch);
    for (size_t i = start; i < end; ++i) {
      prompts.emplace_back(examples[i].ids.begin(), examples[i].ids.begin() + examples[i].prompt_length);
    }
    const auto out = tlora::models::generate(model, prompts, o);
    for (size_t i = start; i < end; ++i) {
      right += first_word(tokenizer.decode(out[i - start].tokens, true)) == first_word(examples[i].completion);
    }
    bar.update(static_cast<int64_t>(end));
  }
  bar.finish();
  return static_cast<double>(right) / static_cast<double>(examples.size());
}

// A batch right-padded to its longest example (labels -100 on the padding).
struct Batch {
  at::Tensor ids, mask, labels;
  int64_t tokens = 0;
};

Batch collate(const std::vector<sft::Example>& examples, const std::vector<size_t>& order, size_t start, size_t count,
              int64_t pad) {
  size_t longest = 0;
  for (size_t i = start; i < start + count; ++i) longest = std::max(longest, examples[order[i]].ids.size());
  const auto n = static_cast<int64_t>(count), l = static_cast<int64_t>(longest);
  Batch b{at::full({n, l}, pad, at::kLong), at::zeros({n, l}, at::kLong), at::full({n, l}, -100, at::kLong)};
  for (int64_t row = 0; row < n; ++row) {
    const sft::Example& e = examples[order[start + row]];
    const auto len = static_cast<int64_t>(e.ids.size());
    b.ids[row].slice(0, 0, len).copy_(at::tensor(e.ids, at::kLong));
    b.labels[row].slice(0, 0, len).copy_(at::tensor(e.labels, at::kLong));
    b.mask[row].slice(0, 0, len).fill_(1);
    b.tokens += len;
  }
  return b;
}

int run(int argc, char** argv) {
  CLI::App app{"Fine-tune a LLaMA-family model on JSONL instructions with TLoRA or a baseline"};
  Options o;
  app.add_option("--model", o.model, "a GGUF file or a Hugging Face folder")->required();
  app.add_option("--train", o.train, "JSONL: {\"prompt\", \"completion\"} or {\"messages\": [...]} per line")->required();
  app.add_option("--validation", o.validation, "JSONL of the same form: greedy answers scored before and after");
  app.add_option("--method", o.method, "tlora, lora, vera or loraxs")->check(CLI::IsMember({"tlora", "lora", "vera", "loraxs"}));
  app.add_option("--targets", o.targets, "module names to adapt (PEFT's target_modules)");
  app.add_option("--rank", o.rank, "adapter rank")->check(CLI::Range(int64_t{1}, int64_t{4096}));
  app.add_option("--scale", o.scale, "TLoRA's initial alpha, LoRA's lora_alpha")->check(CLI::PositiveNumber);
  app.add_option("--dropout", o.dropout, "adapter dropout")->check(CLI::Range(0.0, 0.99));
  app.add_option("--lr", o.lr, "learning rate of the adapter")->check(CLI::PositiveNumber);
  app.add_option("--epochs", o.epochs, "passes over the training file")->check(CLI::PositiveNumber);
  app.add_option("--batch-size", o.batch_size, "examples per step")->check(CLI::PositiveNumber);
  app.add_option("--gradient-accumulation", o.accumulation, "batches per optimizer step")->check(CLI::PositiveNumber);
  app.add_option("--max-length", o.max_length, "tokens per example (longer ones are cut)")->check(CLI::PositiveNumber);
  app.add_option("--max-examples", o.max_examples, "use the first N training examples (0: all)")->check(CLI::NonNegativeNumber);
  app.add_option("--max-validation", o.max_validation, "score the first N validation examples")->check(CLI::PositiveNumber);
  app.add_option("--warmup-ratio", o.warmup_ratio, "share of steps warming the learning rate up")->check(CLI::Range(0.0, 1.0));
  app.add_option("--weight-decay", o.weight_decay, "AdamW weight decay")->check(CLI::NonNegativeNumber);
  app.add_option("--max-grad-norm", o.clip, "gradient clipping (0: off)")->check(CLI::NonNegativeNumber);
  app.add_option("--seed", o.seed, "seed of the adapter, the shuffling and dropout");
  app.add_option("--precision", o.precision, "auto, fp32 or bf16-mixed")->check(CLI::IsMember({"auto", "fp32", "bf16-mixed"}));
  app.add_option("--threads", o.threads, "torch threads (0: LibTorch's default)")->check(CLI::NonNegativeNumber);
  app.add_option("--output-dir", o.output_dir, "where the adapter and results.json go");
  app.add_option("--export", o.export_format, "also write the adapter for peft or gguf (llama.cpp)")
      ->check(CLI::IsMember({"peft", "gguf"}));
  CLI11_PARSE(app, argc, argv);
  if (o.threads > 0) at::set_num_threads(o.threads);
  const tlora::Precision precision =
      o.precision == "auto" ? tlora::default_precision(at::kCPU) : tlora::parse_precision(o.precision);
  const bool bf16 = precision == tlora::Precision::BFloat16Mixed;

  // The model, its tokenizer and chat template.
  tlora::models::LlamaText text = tlora::models::load_llama_text(o.model);
  const auto& tokenizer = text.tokenizer;
  // A folder without a chat template still reads chat messages, as ChatML.
  const std::optional<tlora::text::ChatTemplate> chat = text.chat ? text.chat : tlora::text::ChatTemplate::chatml();
  auto model = tlora::models::load_llama(o.model);
  const auto& config = model->config();
  const int64_t eos = config.eos_token_id.value_or(0), pad = config.pad_token_id.value_or(eos);
  const int64_t end_of_turn = tokenizer->token_to_id("<|im_end|>").value_or(eos);

  const auto train = sft::read_jsonl(o.train, *tokenizer, chat, end_of_turn, o.max_length, o.max_examples);
  std::vector<sft::Example> validation;
  if (!o.validation.empty()) validation = sft::read_jsonl(o.validation, *tokenizer, chat, end_of_turn, o.max_length, o.max_validation);
  fmt::print("tlora-sft: {} training examples, {} validation; {} r={} on {}; {}\n", train.size(), validation.size(),
             o.method, o.rank, fmt::join(o.targets, ","), tlora::to_string(precision));

  tlora::InjectConfig inject;
  inject.adapter.kind = tlora::adapter_kind_from_string(o.method);
  inject.adapter.rank = o.rank;
  inject.adapter.scale = o.scale;
  inject.adapter.dropout = o.dropout;
  inject.adapter.seed = o.seed;
  inject.target_modules = o.targets;
  const tlora::InjectReport report = tlora::inject(*model, inject);
  fmt::print("{}\n", report.summary());
  if (bf16) tlora::cast_frozen_matrices_(*model, at::kBFloat16);

  nlohmann::json results = {{"method", o.method}, {"rank", o.rank}, {"lr", o.lr}, {"epochs", o.epochs},
                            {"train_examples", train.size()}, {"trainable_params", report.trainable_params},
                            {"precision", tlora::to_string(precision)}};
  if (!validation.empty()) {
    tlora::DisableAdapters off(*model);
    results["accuracy_before"] = answer_accuracy(*model, *tokenizer, validation, end_of_turn, pad, bf16);
    fmt::print("validation accuracy before fine-tuning (greedy answers): {:.1f}%\n", 100.0 * results["accuracy_before"].get<double>());
  }

  const std::vector<at::Tensor> trainable = tlora::trainable_parameters(*model);
  torch::optim::AdamW optimizer(trainable, torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
  const auto batches_per_epoch = static_cast<int64_t>((train.size() + o.batch_size - 1) / o.batch_size);
  const int64_t total_steps = std::max<int64_t>(1, o.epochs * batches_per_epoch / o.accumulation);
  const int64_t warmup = tlora::train::warmup_steps(o.warmup_ratio, total_steps);
  std::mt19937_64 shuffle(o.seed);
  int64_t step = 0, tokens = 0, skipped = 0;
  const auto start = std::chrono::steady_clock::now();
  tlora::ProgressBar bar("train", total_steps);
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    std::vector<size_t> order(train.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), shuffle);
    model->train();
    double window = 0;
    for (int64_t b = 0; b < batches_per_epoch; ++b) {
      const size_t first = static_cast<size_t>(b * o.batch_size);
      const Batch batch = collate(train, order, first, std::min<size_t>(o.batch_size, train.size() - first), pad);
      at::Tensor loss;
      {
        std::optional<tlora::AutocastGuard> autocast;
        if (bf16) autocast.emplace(at::kCPU);
        const at::Tensor logits = model(batch.ids, batch.mask);
        // Each position predicts the next token; the loss counts the answers' tokens only.
        loss = at::cross_entropy_loss(logits.slice(1, 0, -1).reshape({-1, logits.size(-1)}).to(at::kFloat),
                                      batch.labels.slice(1, 1).reshape(-1), {}, at::Reduction::Mean, -100);
      }
      tokens += batch.tokens;
      if (!std::isfinite(loss.item<double>())) {
        ++skipped;
        TORCH_CHECK(skipped <= 10, "tlora-sft: the loss was not finite at 10 steps; lower --lr");
        optimizer.zero_grad();
        continue;
      }
      (loss / static_cast<double>(o.accumulation)).backward();
      window += loss.item<double>();
      if ((b + 1) % o.accumulation != 0) continue;
      if (o.clip > 0) torch::nn::utils::clip_grad_norm_(trainable, o.clip);
      for (auto& group : optimizer.param_groups()) {
        group.options().set_lr(o.lr * tlora::train::linear_schedule(step, warmup, total_steps));
      }
      optimizer.step();
      optimizer.zero_grad();
      ++step;
      bar.update(step, fmt::format("epoch {} loss {:.4f}", epoch + 1, window / o.accumulation));
      window = 0;
    }
  }
  bar.finish();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  results["train_seconds"] = seconds;
  results["train_tokens_per_second"] = static_cast<double>(tokens) / seconds;
  results["skipped_steps"] = skipped;
  fmt::print("trained {} steps in {:.0f} s ({:.0f} tokens/s)\n", step, seconds, static_cast<double>(tokens) / seconds);
  if (!validation.empty()) {
    results["accuracy_after"] = answer_accuracy(*model, *tokenizer, validation, end_of_turn, pad, bf16);
    fmt::print("validation accuracy after fine-tuning (greedy answers): {:.1f}%\n", 100.0 * results["accuracy_after"].get<double>());
  }

  tlora::save_adapter(*model, o.output_dir + "/adapter");
  if (!o.export_format.empty()) {
    tlora::export_lora(*model, o.output_dir + "/" + o.export_format,
                       o.export_format == "peft" ? tlora::LoraFormat::Peft : tlora::LoraFormat::Gguf,
                       {.task_type = "CAUSAL_LM"});
  }
  std::ofstream(o.output_dir + "/results.json") << results.dump(2) << "\n";
  fmt::print("adapter in {}/adapter{}\n", o.output_dir,
             o.export_format.empty() ? "" : fmt::format(", exported to {}/{}", o.output_dir, o.export_format));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const c10::Error& e) {
    fmt::print(stderr, "tlora-sft: {}\n", e.what_without_backtrace());
  } catch (const std::exception& e) {
    fmt::print(stderr, "tlora-sft: {}\n", e.what());
  }
  return 1;
}
