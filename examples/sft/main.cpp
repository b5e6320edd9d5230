// tlora-sft: supervised fine-tuning of a LLaMA-family model with TLoRA (or LoRA, VeRA, LoRA-XS)
// on JSONL instructions, the loss on the answers only; reports the validation loss each epoch and
// the greedy answers' accuracy before and after, saves the adapter, and exports it for PEFT or
// llama.cpp. A run killed or stopped continues with --resume exactly where it was.
#include "checkpoint.h"
#include "data.h"
#include "options.h"

#include "tlora/adapters/host.h"
#include "tlora/adapters/inject.h"
#include "tlora/core/precision.h"
#include "tlora/core/progress.h"
#include "tlora/glue/batching.h"
#include "tlora/io/atomic_file.h"
#include "tlora/io/checkpoint.h"
#include "tlora/models/causal_lm_loss.h"
#include "tlora/models/generation.h"
#include "tlora/models/llama.h"
#include "tlora/models/lora_export.h"
#include "tlora/train/interruption.h"
#include "tlora/train/memory.h"
#include "tlora/train/schedule.h"
#include "tlora/train/split_batch.h"

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/full.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

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

// The share of examples whose greedy answer starts with the expected answer's first word, or
// nothing when a stop signal arrived (checked between batches: scoring may take minutes).
std::optional<double> answer_accuracy(tlora::models::LlamaForCausalLMImpl& model, const tlora::text::ByteLevelBPETokenizer& tokenizer,
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
    if (tlora::train::stop_requested()) {
      bar.stop("interrupted");
      return std::nullopt;
    }
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

// A batch right-padded to its longest example. targets[t] is the label of token t+1, the token
// position t predicts (-100 where nothing is learned: prompts, padding, the last position).
struct Batch {
  at::Tensor ids, mask, targets;
  int64_t tokens = 0;
};

Batch collate(const std::vector<sft::Example>& examples, std::span<const int64_t> indices, int64_t pad) {
  size_t longest = 0;
  for (const int64_t i : indices) longest = std::max(longest, examples[static_cast<size_t>(i)].ids.size());
  const auto n = static_cast<int64_t>(indices.size()), l = static_cast<int64_t>(longest);
  Batch b{at::full({n, l}, pad, at::kLong), at::zeros({n, l}, at::kLong), at::full({n, l}, tlora::models::kIgnoreIndex, at::kLong)};
  for (int64_t row = 0; row < n; ++row) {
    const sft::Example& e = examples[static_cast<size_t>(indices[static_cast<size_t>(row)])];
    const auto len = static_cast<int64_t>(e.ids.size());
    b.ids[row].slice(0, 0, len).copy_(at::tensor(e.ids, at::kLong));
    // Shifting the few labels here rather than the [n, l, vocab] logits in the loss saves copying them.
    b.targets[row].slice(0, 0, len - 1).copy_(at::tensor(at::ArrayRef<int64_t>(e.labels).slice(1), at::kLong));
    b.mask[row].slice(0, 0, len).fill_(1);
    b.tokens += len;
  }
  return b;
}

// The mean loss per answer token over `examples`, as training counts it, without dropout.
double validation_loss(tlora::models::LlamaForCausalLM& model, const std::vector<sft::Example>& examples, int64_t pad,
                       bool bf16) {
  model->eval();
  at::NoGradGuard no_grad;
  std::optional<tlora::AutocastGuard> autocast;
  if (bf16) autocast.emplace(at::kCPU);
  std::vector<int64_t> lengths;
  for (const auto& e : examples) lengths.push_back(static_cast<int64_t>(e.ids.size()));
  double sum = 0;
  int64_t answer_tokens = 0;
  for (const auto& indices : tlora::glue::eval_batches(lengths, 16)) {
    const Batch batch = collate(examples, indices, pad);
    sum += tlora::models::causal_lm_loss(*model, batch.ids, batch.mask, batch.targets, at::Reduction::Sum).item<double>();
    answer_tokens += batch.targets.ne(tlora::models::kIgnoreIndex).sum().item<int64_t>();
  }
  return sum / static_cast<double>(answer_tokens);
}

class Trainer {
 public:
  explicit Trainer(sft::Options o) : o_(std::move(o)), checkpoint_(o_.output_dir) {}

  int run() {
    claim_output_dir();
    load();
    if (resuming_) resume();
    if (o_.score_before && !validation_.empty() && !record_.accuracy_before) {
      tlora::DisableAdapters off(*model_);
      record_.accuracy_before = answer_accuracy(*model_, *text_.tokenizer, validation_, end_of_turn_, pad_, bf16_);
      if (!record_.accuracy_before) return interrupted_while_scoring();
    }
    if (record_.accuracy_before)
      fmt::print("validation accuracy before fine-tuning (greedy answers): {:.1f}%\n", 100.0 * *record_.accuracy_before);
    for (int64_t epoch = state_.epoch; epoch < o_.epochs; ++epoch) {
      if (!train_epoch(epoch)) return sft::kExitInterrupted;
      end_epoch(epoch);
    }
    return finish() ? 0 : interrupted_while_scoring();
  }

 private:
  void load() {
    if (o_.threads > 0) at::set_num_threads(o_.threads);
    // LibTorch seeds its default generator from the OS: seeded, a run repeats (and resumes) exactly.
    at::manual_seed(o_.seed);
    text_ = tlora::models::load_llama_text(o_.model);
    model_ = tlora::models::load_llama(o_.model);
    const auto& config = model_->config();
    const int64_t eos = config.eos_token_id.value_or(0);
    pad_ = config.pad_token_id.value_or(eos);
    end_of_turn_ = text_.tokenizer->token_to_id("<|im_end|>").value_or(eos);
    read_data();

    tlora::InjectConfig inject;
    inject.adapter.kind = tlora::adapter_kind_from_string(o_.method);
    inject.adapter.rank = o_.rank;
    inject.adapter.scale = o_.scale;
    inject.adapter.dropout = o_.dropout;
    inject.adapter.seed = o_.seed;
    inject.target_modules = o_.targets;
    report_ = tlora::inject(*model_, inject);
    fmt::print("{}\n", report_.summary());
    if (bf16_) tlora::cast_frozen_matrices_(*model_, at::kBFloat16);
    for (const auto& item : model_->named_parameters())
      if (item.value().requires_grad()) trainable_.emplace_back(item.key(), item.value());
    for (const auto& [path, host] : tlora::adapter_hosts(*model_))
      if (auto a = host->adapter(report_.adapter_name)) adapters_.push_back(std::move(a));
    for (const auto& [name, p] : trainable_) parameters_.push_back(p);
    optimizer_ = std::make_unique<torch::optim::AdamW>(parameters_,
                                                       torch::optim::AdamWOptions(o_.lr).weight_decay(o_.weight_decay));
    const int64_t batches = (static_cast<int64_t>(train_.size()) + o_.batch_size - 1) / o_.batch_size;
    steps_per_epoch_ = (batches + o_.accumulation - 1) / o_.accumulation;
    total_steps_ = o_.epochs * steps_per_epoch_;
    warmup_steps_ = tlora::train::warmup_steps(o_.warmup_ratio, total_steps_);
    report_padding();
  }

  void read_data() {
    // A folder without a chat template still reads chat messages, as ChatML.
    const std::optional<tlora::text::ChatTemplate> chat = text_.chat ? text_.chat : tlora::text::ChatTemplate::chatml();
    const auto& tokenizer = *text_.tokenizer;
    train_ = sft::read_jsonl(o_.train, tokenizer, chat, end_of_turn_, o_.max_length, o_.max_examples);
    if (!o_.validation.empty()) {
      validation_ = sft::read_jsonl(o_.validation, tokenizer, chat, end_of_turn_, o_.max_length, o_.max_validation);
    } else if (o_.validation_split > 0) {
      sft::Split split =
          sft::split_validation(std::move(train_), o_.validation_split, o_.max_validation, o_.seed, o_.train);
      train_ = std::move(split.train);
      validation_ = std::move(split.validation);
    }
    for (const auto& e : train_) lengths_.push_back(static_cast<int64_t>(e.ids.size()));
    fmt::print("tlora-sft: {} training examples, {} validation{}; {} r={} on {}; {}\n", train_.size(),
               validation_.size(), o_.validation.empty() && !validation_.empty() ? " (held out by --validation-split)" : "",
               o_.method, o_.rank, fmt::join(o_.targets, ","), tlora::to_string(precision_));
  }

  // The batches of `epoch`: a pure function of the lengths, the batching options and the epoch,
  // so a resumed run sees the batches an uninterrupted one would.
  std::vector<std::vector<int64_t>> epoch_batches(int64_t epoch, bool group_by_length) const {
    tlora::glue::BatchingOptions batching;
    batching.batch_size = o_.batch_size;
    batching.group_by_length = group_by_length;
    batching.seed = o_.seed;
    return tlora::glue::train_batches(lengths_, batching, epoch);
  }

  // How much of the computed batches is padding, with and without length grouping.
  void report_padding() {
    std::vector<std::vector<int64_t>> grouped, plain;
    for (int64_t epoch = 0; epoch < o_.epochs; ++epoch) {
      std::ranges::move(epoch_batches(epoch, true), std::back_inserter(grouped));
      std::ranges::move(epoch_batches(epoch, false), std::back_inserter(plain));
    }
    padding_ = {{"padding_fraction", sft::padding_fraction(lengths_, o_.group_by_length ? grouped : plain)},
                {"padding_fraction_grouped", sft::padding_fraction(lengths_, grouped)},
                {"padding_fraction_ungrouped", sft::padding_fraction(lengths_, plain)}};
    fmt::print("padding: {:.1f}% of the batch tokens; {:.1f}% grouped by length, {:.1f}% not{}\n",
               100.0 * padding_["padding_fraction"].get<double>(),
               100.0 * padding_["padding_fraction_grouped"].get<double>(),
               100.0 * padding_["padding_fraction_ungrouped"].get<double>(),
               o_.group_by_length ? "" : " (--group-by-length false)");
  }

  sft::Trainee trainee() { return {trainable_, *optimizer_, adapters_}; }

  // Refuses, before anything is loaded, to overwrite a run or to resume one with other settings.
  void claim_output_dir() {
    precision_ = o_.precision == "auto" ? tlora::default_precision(at::kCPU) : tlora::parse_precision(o_.precision);
    bf16_ = precision_ == tlora::Precision::BFloat16Mixed;
    config_ = sft::to_json(o_, std::string(tlora::to_string(precision_)));
    const std::string digest = sft::trajectory_digest(config_);
    const bool have_checkpoint = checkpoint_.exists();
    if (!o_.resume) {
      TORCH_CHECK(!have_checkpoint && !sft::path_exists(results_file()), o_.output_dir,
                  " already holds a run; pass --resume to continue it, or choose another --output-dir");
    }
    resuming_ = o_.resume && have_checkpoint;
    if (resuming_) {
      state_ = checkpoint_.read_state(digest);
      return;
    }
    if (o_.resume) fmt::print("tlora-sft: no checkpoint in {} yet; starting from the beginning\n", o_.output_dir);
    state_.config_digest = digest;
    tlora::create_directories(o_.output_dir, "tlora-sft");
    tlora::write_file_atomically(o_.output_dir + "/config.json", config_.dump(2) + "\n");
  }

  void resume() {
    record_ = checkpoint_.restore(trainee(), state_);
    fmt::print("tlora-sft: resuming {} at epoch {}, batch {} (step {} of {})\n", o_.output_dir, state_.epoch + 1,
               state_.batches_done, state_.global_step, total_steps_);
  }

  // Trains the rest of `epoch`; false when a stop was requested (a checkpoint is then saved).
  bool train_epoch(int64_t epoch) {
    const auto batches = epoch_batches(epoch, o_.group_by_length);
    const auto accumulation = static_cast<size_t>(o_.accumulation);
    tlora::ProgressBar bar(fmt::format("epoch {}/{}", epoch + 1, o_.epochs), steps_per_epoch_);
    model_->train();
    for (auto first = static_cast<size_t>(state_.batches_done); first < batches.size();) {
      // An optimizer step takes `accumulation` batches, the epoch's last one what is left.
      const size_t end = std::min(batches.size(), first + accumulation);
      const auto step_start = Clock::now();
      for (auto& group : optimizer_->param_groups()) {
        group.options().set_lr(o_.lr * tlora::train::linear_schedule(state_.global_step, warmup_steps_, total_steps_));
      }
      for (size_t b = first; b < end; ++b) train_batch(batches[b], static_cast<double>(end - first));
      if (o_.clip > 0) torch::nn::utils::clip_grad_norm_(parameters_, o_.clip);
      optimizer_->step();
      optimizer_->zero_grad();
      state_.global_step += 1;
      state_.batches_done = static_cast<int64_t>(end);
      state_.train_seconds += std::chrono::duration<double>(Clock::now() - step_start).count();
      bar.update(static_cast<int64_t>((end + accumulation - 1) / accumulation),
                 fmt::format("loss {:.4f}", epoch_train_loss()));
      first = end;
      // The epoch-end checkpoint follows the epoch's last step.
      if (state_.global_step % o_.checkpoint_every == 0 && end < batches.size()) save();
      fault_.after_step(state_.global_step);
      if (const int signal = tlora::train::stop_requested()) {
        save();
        bar.stop("interrupted");
        fmt::print(stderr, "tlora-sft: stopped by signal {} after step {}; checkpoint saved in {}; continue with the same "
                   "options and --resume\n", signal, state_.global_step, checkpoint_.dir());
        return false;
      }
    }
    bar.finish(fmt::format("loss {:.4f}", epoch_train_loss()));
    return true;
  }

  // Forward and backward of one batch of a step of `step_batches`; a batch whose loss is not
  // finite gives no gradient.
  void train_batch(const std::vector<int64_t>& indices, double step_batches) {
    const Batch batch = collate(train_, indices, pad_);
    const auto rows = static_cast<int64_t>(indices.size());
    const int64_t parts = tlora::train::batch_parts(rows, at::get_num_threads(), o_.split_batch);
    // The batch's mean over its counted tokens, as the parts' sums over the batch's count.
    const auto counted = static_cast<double>(batch.targets.ne(tlora::models::kIgnoreIndex).sum().item<int64_t>());
    const at::Tensor loss = tlora::train::split_backward(parameters_, parts, [&](int64_t k) {
      const auto [first, last] = tlora::train::part_rows(rows, k, parts);
      std::optional<tlora::AutocastGuard> autocast;
      if (bf16_) autocast.emplace(at::kCPU);
      return tlora::models::causal_lm_loss(*model_, batch.ids.slice(0, first, last), batch.mask.slice(0, first, last),
                                           batch.targets.slice(0, first, last), at::Reduction::Sum) /
             (counted * step_batches);
    });
    // split_backward adds no gradient where the loss is not finite.
    const double value = loss.item<double>() * step_batches;
    if (!std::isfinite(value)) {
      ++record_.skipped_batches;
      ++record_.epoch_skipped_batches;
      TORCH_CHECK(record_.skipped_batches < 10, "the loss was not finite in 10 batches; lower --lr");
      return;
    }
    state_.epoch_loss_sum += value;
    state_.train_tokens += batch.tokens;
  }

  double epoch_train_loss() const {
    return state_.epoch_loss_sum / static_cast<double>(state_.batches_done - record_.epoch_skipped_batches);
  }

  void end_epoch(int64_t epoch) {
    nlohmann::json line = {{"epoch", epoch + 1}, {"step", state_.global_step}, {"train_loss", epoch_train_loss()}};
    std::string shown = fmt::format("epoch {}: train loss {:.4f}", epoch + 1, epoch_train_loss());
    if (!validation_.empty()) {
      const double loss = validation_loss(model_, validation_, pad_, bf16_);
      line["validation_loss"] = loss;
      shown += fmt::format(", validation loss {:.4f}", loss);
    }
    fmt::print("{}\n", shown);
    record_.epochs.push_back(line);
    record_.epoch_skipped_batches = 0;
    state_.epoch = epoch + 1;
    state_.batches_done = 0;
    state_.epoch_loss_sum = 0;
    save();
  }

  void save() { checkpoint_.save(trainee(), state_, record_); }

  int interrupted_while_scoring() const {
    fmt::print(stderr, "tlora-sft: stopped by signal {} while scoring the greedy answers; nothing is lost: continue "
               "with the same options and --resume\n", tlora::train::stop_requested());
    return sft::kExitInterrupted;
  }

  // Scores the answers and writes the adapter and results.json; false when a stop signal came first.
  bool finish() {
    nlohmann::json results = {{"method", o_.method}, {"rank", o_.rank}, {"lr", o_.lr}, {"epochs", o_.epochs},
                              {"steps", state_.global_step}, {"train_examples", train_.size()},
                              {"validation_examples", validation_.size()},
                              {"trainable_params", report_.trainable_params}, {"precision", tlora::to_string(precision_)},
                              {"group_by_length", o_.group_by_length}, {"epoch_metrics", record_.epochs},
                              {"train_seconds", state_.train_seconds},
                              {"train_tokens_per_second", static_cast<double>(state_.train_tokens) / state_.train_seconds},
                              {"skipped_batches", record_.skipped_batches}};
    results.update(padding_);
    fmt::print("trained {} steps in {:.0f} s ({:.0f} tokens/s)\n", state_.global_step, state_.train_seconds,
               results["train_tokens_per_second"].get<double>());
    if (!validation_.empty()) {
      results["validation_loss"] = record_.epochs.back()["validation_loss"];
      if (record_.accuracy_before) results["accuracy_before"] = *record_.accuracy_before;
      const std::optional<double> after = answer_accuracy(*model_, *text_.tokenizer, validation_, end_of_turn_, pad_, bf16_);
      if (!after) return false;
      results["accuracy_after"] = *after;
      fmt::print("validation accuracy after fine-tuning (greedy answers): {:.1f}%\n",
                 100.0 * results["accuracy_after"].get<double>());
    }
    tlora::save_adapter(*model_, o_.output_dir + "/adapter");
    if (!o_.export_format.empty()) {
      tlora::export_lora(*model_, o_.output_dir + "/" + o_.export_format,
                         o_.export_format == "peft" ? tlora::LoraFormat::Peft : tlora::LoraFormat::Gguf,
                         {.task_type = "CAUSAL_LM"});
    }
    tlora::write_file_atomically(results_file(), results.dump(2) + "\n");
    fmt::print("adapter in {}/adapter{}\n", o_.output_dir,
               o_.export_format.empty() ? "" : fmt::format(", exported to {}/{}", o_.output_dir, o_.export_format));
    return true;
  }

  std::string results_file() const { return o_.output_dir + "/results.json"; }

  sft::Options o_;
  nlohmann::ordered_json config_;
  tlora::Precision precision_{};
  bool bf16_ = false;
  bool resuming_ = false;
  tlora::models::LlamaText text_;
  tlora::models::LlamaForCausalLM model_{nullptr};
  int64_t pad_ = 0, end_of_turn_ = 0;
  std::vector<sft::Example> train_, validation_;
  std::vector<int64_t> lengths_;
  tlora::InjectReport report_;
  tlora::train::NamedParameters trainable_;
  std::vector<at::Tensor> parameters_;  // trainable_'s tensors, as the optimizer holds them
  std::vector<std::shared_ptr<tlora::AdapterImpl>> adapters_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  int64_t steps_per_epoch_ = 0, total_steps_ = 0, warmup_steps_ = 0;
  nlohmann::json padding_;
  sft::Checkpoint checkpoint_;
  tlora::train::TrainState state_;
  sft::RunRecord record_;
  tlora::train::FaultHook fault_{"TLORA_SFT_FAULT"};
};

}  // namespace

int main(int argc, char** argv) {
  // Line-buffered even into a pipe or a file, so the log of a killed run keeps every line.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  try {
    int exit_code = 0;
    const auto options = sft::parse_options(argc, argv, exit_code);
    if (!options) return exit_code;
    tlora::train::install_stop_handlers();
    tlora::train::retain_freed_memory();
    return Trainer(*options).run();
  } catch (const c10::Error& e) {
    fmt::print(stderr, "tlora-sft: {}\n", e.what_without_backtrace());
  } catch (const std::exception& e) {
    fmt::print(stderr, "tlora-sft: {}\n", e.what());
  }
  return 1;
}
