// The training loop: AdamW with a linear schedule, per-epoch dev evaluation, the best epoch's
// adapter, resumable checkpoints, and the run's results.
#include "trainer.h"

#include "classifier.h"
#include "data.h"
#include "evaluate.h"
#include "files.h"

#include "tlora/adapters/adapter.h"
#include "tlora/io/atomic_file.h"
#include "tlora/dist/context.h"
#include "tlora/core/finite_check.h"
#include "tlora/glue/scores.h"
#include "tlora/adapters/adaptable_linear.h"
#include "tlora/core/precision.h"
#include "tlora/core/progress.h"
#include "tlora/text/tokenizer.h"
#include "tlora/train/interruption.h"
#include "tlora/train/memory.h"
#include "tlora/train/optimizer_state.h"
#include "tlora/train/schedule.h"
#include "tlora/train/split_batch.h"
#include "tlora/train/train_state.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <torch/optim/adamw.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>

namespace glue_app {
namespace {

using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

struct Paths {
  explicit Paths(const std::string& out)
      : out(out), checkpoint(out + "/checkpoint"), best(out + "/best"), metrics(out + "/metrics.jsonl"),
        config(out + "/config.json"), results(out + "/results.json") {}
  std::string out, checkpoint, best, metrics, config, results;
};

std::vector<std::shared_ptr<tlora::AdapterImpl>> adapters_of(const Classifier& c) {
  std::vector<std::shared_ptr<tlora::AdapterImpl>> out;
  if (!c.adapter) return out;
  for (const auto& item : c.module->modules())
    if (const auto host = std::dynamic_pointer_cast<tlora::AdaptableLinearImpl>(item))
      if (auto a = host->adapter(c.adapter->adapter_name)) out.push_back(std::move(a));
  return out;
}

// A stage of the run that went wrong in a way the user can act on, with its exit code.
struct Stop {
  int code;
  std::string message;
};

class Trainer {
 public:
  explicit Trainer(RunConfig config)
      : config_(std::move(config)),
        paths_(config_.output_dir),
        dist_(tlora::dist::Context::from_environment()),
        fault_("TLORA_GLUE_FAULT") {}

  int run() {
    setup();
    start_or_resume();
    for (int64_t epoch = state_.epoch; epoch < config_.epochs; ++epoch) {
      if (const auto stop = train_epoch(epoch)) {
        if (dist_.is_main()) std::fprintf(stderr, "tlora-glue: %s\n", stop->message.c_str());
        return stop->code;
      }
      end_epoch(epoch);
    }
    write_results();
    return 0;
  }

 private:
  void setup() {
    if (config_.threads > 0) at::set_num_threads(config_.threads);
    // LibTorch seeds its default generators from the OS: without this, model dropout would
    // differ from run to run (transformers' set_seed does the same).
    at::manual_seed(config_.seed);
    task_ = tlora::glue::task_from_name(config_.task);
    const auto& info = tlora::glue::info(task_);
    model_dir_ = resolve_model_dir(config_);
    data_dir_ = resolve_data_dir(config_);
    auto tokenizer = tlora::text::load_tokenizer(model_dir_);
    const auto pad = tokenizer->token_to_id(tokenizer->pad_token());
    TORCH_CHECK(pad.has_value(), model_dir_, ": the tokenizer has no pad token");
    train_ = load_features(task_, tlora::glue::train_file(task_, data_dir_).string(), *tokenizer,
                           config_.max_seq_length, config_.max_train_samples);
    dev_ = load_dev_sets(task_, data_dir_, *tokenizer, config_.max_seq_length, config_.max_eval_samples);
    if (config_.validation_split > 0) {
      Split split = split_validation(train_, config_.validation_split, config_.validation_max, config_.seed);
      train_ = std::move(split.train);
      validation_.push_back(EvalSet{"validation", tlora::glue::train_file(task_, data_dir_).string(),
                                    std::move(split.validation)});
    }
    lengths_ = tlora::glue::lengths(train_);

    const auto num_labels = info.is_regression ? 1 : static_cast<int64_t>(info.label_names.size());
    classifier_ = load_classifier(model_dir_, num_labels, config_.seed);
    prepare_method(classifier_, config_);
    device_ = config_.device == "cuda"
                  ? c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(dist_.local_rank()))
                  : c10::Device(c10::kCPU);
    to_precision(classifier_, config_.precision, device_);
    // Replicas start as rank 0's (the head is seeded alike anyway; this makes it certain).
    dist_.broadcast_parameters(*classifier_.module);
    spec_ = InputSpec{*pad, info.is_regression, device_, config_.eval_batch_size, uses_autocast(config_.precision)};

    trainable_ = trainable_parameters(classifier_);
    for (const auto& [name, p] : trainable_) trainable_tensors_.push_back(p);
    for (const auto& p : classifier_.module->parameters()) total_params_ += p.numel();
    for (const auto& [name, p] : trainable_) trainable_params_ += p.numel();
    make_optimizer();
    batches_per_epoch_ = (train_.size() + config_.batch_size - 1) / config_.batch_size;
    total_steps_ = batches_per_epoch_ * config_.epochs;
    warmup_steps_ = tlora::train::warmup_steps(config_.warmup_ratio, total_steps_);

    if (!dist_.is_main()) return;
    if (dist_.world_size() > 1)
      std::fprintf(stderr, "tlora-glue: data-parallel over %d processes; batch %lld is split between them\n",
                   dist_.world_size(), static_cast<long long>(config_.batch_size));
    std::fprintf(stderr, "tlora-glue: %s, %s on %s: %lld train / %s%lld dev examples, %lld steps, %s\n",
                 info.name.c_str(), config_.method.c_str(), model_dir_.c_str(),
                 static_cast<long long>(train_.size()),
                 validation_.empty() ? "" : fmt::format("{} validation (picks the best epoch) / ",
                                                        validation_[0].features.size()).c_str(),
                 static_cast<long long>(dev_[0].features.size()), static_cast<long long>(total_steps_),
                 config_.precision.c_str());
    std::fprintf(stderr, "tlora-glue: trainable params: %lld || all params: %lld || trainable%%: %.4f\n",
                 static_cast<long long>(trainable_params_), static_cast<long long>(total_params_),
                 100.0 * static_cast<double>(trainable_params_) / static_cast<double>(total_params_));
  }

  // Adapter and head get their own learning rates; biases and LayerNorm weights no decay.
  void make_optimizer() {
    std::vector<torch::Tensor> buckets[2][2];  // [head][decay]
    for (const auto& [name, p] : trainable_) {
      const bool head = in_modules(name, classifier_.head_modules);
      const bool no_decay = name.ends_with(".bias") || name.find("LayerNorm") != std::string::npos;
      buckets[head][!no_decay].push_back(p);
    }
    std::vector<torch::optim::OptimizerParamGroup> groups;
    for (int head = 0; head < 2; ++head) {
      for (int decay = 0; decay < 2; ++decay) {
        if (buckets[head][decay].empty()) continue;
        const double lr = head ? config_.head_lr : config_.lr;
        auto options = std::make_unique<torch::optim::AdamWOptions>(lr);
        options->weight_decay(decay ? config_.weight_decay : 0.0);
        groups.emplace_back(buckets[head][decay], std::move(options));
        base_lrs_.push_back(lr);
      }
    }
    TORCH_CHECK(!groups.empty(), "method ", config_.method, " leaves nothing to train");
    optimizer_ = std::make_unique<torch::optim::AdamW>(std::move(groups));
  }

  void start_or_resume() {
    if (dist_.is_main()) {
      make_directories(paths_.out);
      recover_directory(paths_.checkpoint);
      recover_directory(paths_.best);
    }
    // The other ranks read what rank 0 has put in order.
    dist_.barrier();
    const std::string state_file = paths_.checkpoint + "/trainer_state.json";
    const bool have_checkpoint = exists(state_file);
    if (!config_.resume) {
      TORCH_CHECK(!have_checkpoint && !exists(paths_.results), paths_.out,
                  " already holds a run; pass --resume to continue it, or choose another --output-dir");
    }
    json resolved = to_json(config_);
    resolved["model_dir"] = model_dir_;
    resolved["data_dir"] = data_dir_;
    resolved["total_steps"] = total_steps_;
    resolved["warmup_steps"] = warmup_steps_;
    if (!config_.resume || !have_checkpoint) {
      if (config_.resume && dist_.is_main())
        std::fprintf(stderr, "tlora-glue: no checkpoint in %s yet; starting from the beginning\n",
                     paths_.out.c_str());
      state_.config_digest = trajectory_digest(config_);
      if (dist_.is_main()) {
        remove_flat_directory(paths_.best);
        tlora::write_file_atomically(paths_.metrics, "");
        tlora::write_file_atomically(paths_.config, resolved.dump(2) + "\n");
      }
      return;
    }
    state_ = tlora::train::read_train_state(state_file);
    TORCH_CHECK(state_.config_digest == trajectory_digest(config_), "cannot resume the run in ",
                paths_.out, ": it was started with other settings (see ", paths_.config,
                "); resume with the same options, or choose another --output-dir");
    load_trainable_tensors(classifier_, paths_.checkpoint + "/trainable.safetensors");
    tlora::train::load_adamw_state(*optimizer_, trainable_, paths_.checkpoint + "/optimizer.safetensors");
    tlora::train::set_cpu_rng_state(state_.rng_state);
    for (const auto& a : adapters_of(classifier_)) {
      const auto it = state_.dropout_calls.find(a->path());
      TORCH_CHECK(it != state_.dropout_calls.end(), state_file, ": no dropout counter for ", a->path());
      a->set_dropout_calls(it->second);
    }
    // Epoch lines written after this checkpoint belong to work that is redone now.
    std::istringstream lines(read_text(paths_.metrics));
    std::string kept, line;
    for (int64_t i = 0; i < state_.epoch && std::getline(lines, line); ++i) kept += line + "\n";
    if (!dist_.is_main()) return;
    tlora::write_file_atomically(paths_.metrics, kept);
    std::fprintf(stderr, "tlora-glue: resuming %s at epoch %lld, batch %lld (step %lld)\n",
                 paths_.out.c_str(), static_cast<long long>(state_.epoch + 1),
                 static_cast<long long>(state_.batches_done), static_cast<long long>(state_.global_step));
  }

  void save_checkpoint() {
    if (!dist_.is_main()) return;
    const std::string staging = paths_.checkpoint + ".tmp";
    remove_flat_directory(staging);
    make_directories(staging);
    save_trainable_tensors(classifier_, staging + "/trainable.safetensors");
    tlora::train::save_adamw_state(*optimizer_, trainable_, staging + "/optimizer.safetensors");
    state_.rng_state = tlora::train::cpu_rng_state();
    state_.dropout_calls.clear();
    for (const auto& a : adapters_of(classifier_)) state_.dropout_calls[a->path()] = a->dropout_calls();
    tlora::train::write_train_state(staging + "/trainer_state.json", state_);
    replace_directory(staging, paths_.checkpoint);
  }

  // Progress goes to stderr on rank 0 and nowhere on the others.
  std::FILE* progress_stream() {
    if (dist_.is_main()) return stderr;
    if (null_stream_ == nullptr) null_stream_ = std::fopen("/dev/null", "w");
    return null_stream_;
  }

  std::optional<Stop> train_epoch(int64_t epoch) {
    tlora::glue::BatchingOptions batching;
    batching.batch_size = config_.batch_size;
    batching.group_by_length = config_.group_by_length;
    batching.seed = config_.seed;
    const auto batches = tlora::glue::train_batches(lengths_, batching, epoch);
    tlora::ProgressBar bar(fmt::format("epoch {}/{}", epoch + 1, config_.epochs),
                           static_cast<int64_t>(batches.size()), progress_stream());
    classifier_.module->train();
    const auto epoch_start = Clock::now();
    int64_t epoch_tokens = 0;
    const int world = dist_.world_size();
    for (auto b = static_cast<size_t>(state_.batches_done); b < batches.size(); ++b) {
      const auto step_start = Clock::now();
      const double mult = tlora::train::linear_schedule(state_.global_step, warmup_steps_, total_steps_);
      for (size_t g = 0; g < base_lrs_.size(); ++g)
        static_cast<torch::optim::AdamWOptions&>(optimizer_->param_groups()[g].options())
            .lr(base_lrs_[g] * mult);
      // Each rank takes every world-th example of the global batch.
      std::vector<int64_t> shard;
      for (size_t i = static_cast<size_t>(dist_.rank()); i < batches[b].size(); i += static_cast<size_t>(world))
        shard.push_back(batches[b][i]);
      optimizer_->zero_grad();
      double local[3] = {0, 0, static_cast<double>(tlora::train::stop_requested())};  // loss·n, tokens, signal
      if (!shard.empty()) {
        const auto rows = static_cast<int64_t>(shard.size());
        const int64_t parts = tlora::train::batch_parts(rows, at::get_num_threads(), config_.split_batch && device_.is_cpu());
        // Weighted so that averaging over the ranks gives the global batch's mean loss.
        const double rank_weight =
            world > 1 ? static_cast<double>(shard.size() * world) / static_cast<double>(batches[b].size()) : 1.0;
        std::vector<int64_t> part_tokens(static_cast<size_t>(parts));
        const at::Tensor loss = tlora::train::split_backward(trainable_tensors_, parts, [&](int64_t k) {
          const auto [first, last] = tlora::train::part_rows(rows, k, parts);
          const auto batch = tlora::glue::collate(
              train_, std::vector<int64_t>(shard.begin() + first, shard.begin() + last), spec_.pad_id,
              spec_.regression);
          part_tokens[static_cast<size_t>(k)] = batch.tokens;
          // Forward and loss under autocast, backward after it (as with torch.autocast).
          const tlora::AutocastGuard autocast(device_.type(), at::kBFloat16, spec_.autocast);
          const at::Tensor logits = classifier_.module->forward(batch.input_ids.to(device_),
                                                                batch.attention_mask.to(device_),
                                                                batch.token_type_ids.to(device_));
          // Each part's mean weighted by its rows: the parts sum to the shard's mean.
          return classifier_.module->loss(logits.to(at::kFloat), batch.labels.to(device_)) *
                 (static_cast<double>(last - first) / static_cast<double>(rows) * rank_weight);
        });
        local[0] = loss.item<double>() / rank_weight * static_cast<double>(shard.size());
        for (const int64_t t : part_tokens) local[1] += static_cast<double>(t);
      }
      // One small collective decides for every rank: the batch loss, its tokens, and whether a
      // rank was asked to stop, so all stop at the same step.
      const at::Tensor reduced =
          world > 1 ? dist_.all_reduce_sum(at::tensor(std::vector<double>(local, local + 3), at::kDouble))
                    : at::tensor(std::vector<double>(local, local + 3), at::kDouble);
      const double loss_value = reduced[0].item<double>() / static_cast<double>(batches[b].size());
      if (!std::isfinite(loss_value))
        return Stop{kExitNonFinite, non_finite_message(fmt::format("the loss is {}", loss_value), epoch, b)};
      dist_.all_reduce_gradients(*classifier_.module);
      if (const auto bad = tlora::find_non_finite_gradient(*classifier_.module))
        return Stop{kExitNonFinite,
                    non_finite_message(fmt::format("the gradient of {} is not finite ({} NaN, {} inf of {})",
                                                   bad->parameter, bad->nan_count, bad->inf_count, bad->numel),
                                       epoch, b)};
      if (config_.max_grad_norm > 0) clip_gradients();
      optimizer_->step();

      const auto tokens = static_cast<int64_t>(reduced[1].item<double>());
      state_.global_step += 1;
      state_.batches_done = static_cast<int64_t>(b) + 1;
      state_.epoch_loss_sum += loss_value;
      state_.train_tokens += tokens;
      epoch_tokens += tokens;
      state_.train_seconds += std::chrono::duration<double>(Clock::now() - step_start).count();
      const double elapsed = std::chrono::duration<double>(Clock::now() - epoch_start).count();
      bar.update(state_.batches_done,
                 fmt::format("loss {:.4f} lr {:.2e} {:.0f} tok/s",
                             state_.epoch_loss_sum / static_cast<double>(state_.batches_done),
                             base_lrs_[0] * mult, static_cast<double>(epoch_tokens) / std::max(elapsed, 1e-9)));
      if (state_.global_step % config_.save_steps == 0 && state_.batches_done < static_cast<int64_t>(batches.size()))
        save_checkpoint();
      fault_.after_step(state_.global_step);
      // A stop request (on any rank) takes effect once this step is done, on every rank.
      if (const int signal = static_cast<int>(reduced[2].item<double>())) {
        save_checkpoint();
        bar.stop("interrupted");
        return Stop{kExitInterrupted,
                    fmt::format("stopped by signal {} after step {}; checkpoint saved in {}; continue "
                                "with the same options and --resume",
                                std::min(signal, SIGTERM), state_.global_step, paths_.checkpoint)};
      }
    }
    bar.finish(fmt::format("loss {:.4f}", state_.epoch_loss_sum / static_cast<double>(batches.size())));
    return std::nullopt;
  }

  std::string non_finite_message(const std::string& what, int64_t epoch, size_t batch) const {
    const bool saved = exists(paths_.checkpoint + "/trainer_state.json");
    return fmt::format(
        "{} at step {} (epoch {}, batch {}); the run stopped. {} Lower --lr or --head-lr, or set "
        "--max-grad-norm.",
        what, state_.global_step + 1, epoch + 1, batch + 1,
        saved ? fmt::format("The last good checkpoint is kept in {} (step {}).", paths_.checkpoint,
                            tlora::train::read_train_state(paths_.checkpoint + "/trainer_state.json").global_step)
              : std::string("No checkpoint had been written yet."));
  }

  // torch.nn.utils.clip_grad_norm_: scale all gradients by max_norm / (total norm + 1e-6).
  void clip_gradients() {
    std::vector<at::Tensor> norms;
    for (const auto& [name, p] : trainable_)
      if (p.grad().defined()) norms.push_back(at::linalg_vector_norm(p.grad().to(at::kFloat), 2));
    if (norms.empty()) return;
    const double total = at::linalg_vector_norm(at::stack(norms), 2).item<double>();
    const double factor = config_.max_grad_norm / (total + 1e-6);
    if (factor >= 1.0) return;
    for (const auto& [name, p] : trainable_)
      if (p.grad().defined()) p.grad().mul_(factor);
  }

  // The task's combined score (the mean of its metrics) of `metrics`.
  double score_of(const std::map<std::string, double>& metrics) const {
    std::map<std::string, double> main;
    for (const auto& name : tlora::glue::info(task_).metric_names) main[name] = metrics.at(name);
    return tlora::glue::combined_score(main);
  }

  void end_epoch(int64_t epoch) {
    const auto metrics = evaluate(task_, classifier_, dev_, spec_, dist_);
    const double dev_score = score_of(metrics);
    json line;
    line["epoch"] = epoch + 1;
    line["step"] = state_.global_step;
    line["train_loss"] = state_.epoch_loss_sum / static_cast<double>(batches_per_epoch_);
    line["dev"] = metrics;
    line["dev_score"] = dev_score;
    // The score that picks the best epoch: the validation split's when there is one.
    double score = dev_score;
    std::map<std::string, double> validation;
    if (!validation_.empty()) {
      validation = evaluate(task_, classifier_, validation_, spec_, dist_);
      score = score_of(validation);
      line["validation"] = validation;
    }
    line["score"] = score;
    line["adapters"] = adapter_summary(classifier_);
    if (dist_.is_main()) {
      append_line(paths_.metrics, line.dump());
      std::string shown;
      for (const auto& [name, value] : metrics) shown += fmt::format(" {} {:.4f}", name, value);
      std::fprintf(stderr, "tlora-glue: epoch %lld dev:%s\n", static_cast<long long>(epoch + 1), shown.c_str());
    }
    if (score > state_.best_score && dist_.is_main()) {
      json info;
      info["task"] = tlora::glue::info(task_).name;
      info["method"] = config_.method;
      info["model_dir"] = model_dir_;
      info["max_seq_length"] = config_.max_seq_length;
      info["precision"] = config_.precision;
      info["epoch"] = epoch + 1;
      info["metrics"] = metrics;
      if (!validation_.empty()) info["validation_metrics"] = validation;
      const std::string staging = paths_.best + ".tmp";
      remove_flat_directory(staging);
      save_trained(classifier_, staging, info);
      replace_directory(staging, paths_.best);
    }
    if (score > state_.best_score) {
      state_.best_score = score;
      state_.best_epoch = epoch + 1;
    }
    state_.epoch = epoch + 1;
    state_.batches_done = 0;
    state_.epoch_loss_sum = 0;
    save_checkpoint();
  }

  void write_results() {
    if (!dist_.is_main()) return;
    const auto best = read_trained_info(paths_.best);
    // Every epoch's line of metrics.jsonl, read once.
    std::vector<json> epochs;
    {
      std::istringstream lines(read_text(paths_.metrics));
      for (std::string line; std::getline(lines, line);)
        if (!line.empty()) epochs.push_back(json::parse(line));
    }
    json r;
    r["task"] = tlora::glue::info(task_).name;
    r["method"] = config_.method;
    r["model_dir"] = model_dir_;
    r["trainable_params"] = trainable_params_;
    r["total_params"] = total_params_;
    r["metrics"] = best["metrics"];
    r["best_epoch"] = state_.best_epoch;
    r["selected_by"] = validation_.empty() ? "dev" : "validation";
    if (!validation_.empty()) {
      r["validation_metrics"] = best["validation_metrics"];
      r["validation_examples"] = validation_[0].features.size();
      // The paper's way, beside it: the epoch with the best dev score, picked on dev itself.
      const json* best_dev = &epochs.front();
      for (const json& line : epochs)
        if (line["dev_score"].get<double>() > (*best_dev)["dev_score"].get<double>()) best_dev = &line;
      r["best_dev_epoch"] = (*best_dev)["epoch"];
      r["best_dev_metrics"] = (*best_dev)["dev"];
    }
    r["final_metrics"] = epochs.back()["dev"];
    r["epochs"] = config_.epochs;
    r["train_examples"] = train_.size();
    r["dev_examples"] = dev_[0].features.size();
    r["seed"] = config_.seed;
    r["device"] = config_.device;
    r["threads"] = at::get_num_threads();
    r["split_batch"] = config_.split_batch && device_.is_cpu();
    r["processes"] = dist_.world_size();
    r["train_seconds"] = state_.train_seconds;
    r["tokens_per_second"] = static_cast<double>(state_.train_tokens) / std::max(state_.train_seconds, 1e-9);
    r["steps_per_second"] = static_cast<double>(state_.global_step) / std::max(state_.train_seconds, 1e-9);
    tlora::write_file_atomically(paths_.results, r.dump(2) + "\n");
    std::string shown;
    for (const auto& [name, value] : best["metrics"].items())
      shown += fmt::format(" {} {:.4f}", name, value.get<double>());
    std::printf("%s %s dev (best epoch %lld of %lld):%s\n", r["task"].get<std::string>().c_str(),
                config_.method.c_str(), static_cast<long long>(state_.best_epoch),
                static_cast<long long>(config_.epochs), shown.c_str());
    std::printf("trained %lld of %lld parameters in %.1f s (%.0f tokens/s); results in %s\n",
                static_cast<long long>(trainable_params_), static_cast<long long>(total_params_),
                state_.train_seconds, r["tokens_per_second"].get<double>(), paths_.results.c_str());
  }

  RunConfig config_;
  Paths paths_;
  tlora::glue::Task task_{};
  std::string model_dir_, data_dir_;
  tlora::glue::Features train_;
  std::vector<EvalSet> dev_;
  std::vector<EvalSet> validation_;  // empty, or the split that picks the best epoch
  std::vector<int64_t> lengths_;
  Classifier classifier_;
  c10::Device device_ = c10::kCPU;
  InputSpec spec_;
  std::vector<std::pair<std::string, at::Tensor>> trainable_;
  std::vector<at::Tensor> trainable_tensors_;  // the same tensors, for split_backward
  int64_t trainable_params_ = 0, total_params_ = 0;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::vector<double> base_lrs_;
  int64_t batches_per_epoch_ = 0, total_steps_ = 0, warmup_steps_ = 0;
  tlora::train::TrainState state_;
  tlora::dist::Context dist_;
  tlora::train::FaultHook fault_;
  std::FILE* null_stream_ = nullptr;
};

}  // namespace

int run_training(const RunConfig& config) {
  tlora::train::install_stop_handlers();
  tlora::train::retain_freed_memory();
  Trainer trainer(config);
  return trainer.run();
}

}  // namespace glue_app
