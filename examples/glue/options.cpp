// Option parsing, method defaults and the paper preset.
#include "options.h"

#include "tlora/core/precision.h"
#include "tlora/core/projections.h"
#include "tlora/core/random.h"

#include <fmt/format.h>

#include <exception>
#include <map>

namespace glue_app {
namespace {

const std::vector<std::string> kMethods{"tlora", "lora", "vera", "loraxs", "full", "head-only"};

// CLI11's PositiveNumber and NonNegativeNumber quote their upper bound, DBL_MAX, in 300 digits;
// these say what is wanted.
CLI::Validator number_above(double lowest, bool inclusive, const std::string& wanted, const std::string& name) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        size_t used = 0;
        double value = 0;
        try {
          value = std::stod(text, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == text.size() && (inclusive ? value >= lowest : value > lowest)) return "";
        return "must be " + wanted + ", got " + text;
      },
      name);
}
const CLI::Validator kPositive = number_above(0, false, "a number above 0", "POSITIVE");
const CLI::Validator kNonNegative = number_above(0, true, "a number of 0 or more", "NONNEGATIVE");

// Defaults that depend on the method, used for the options not given on the command line.
struct MethodDefaults {
  int64_t rank;
  double scale;
  double dropout;
  double lr;
};

const std::map<std::string, MethodDefaults>& method_defaults() {
  // tlora: the paper's recipe. lora: r=8, lora_alpha=16, dropout 0.1 (PEFT's usual GLUE setting)
  // with LoRA's RoBERTa-base learning rate. vera: the VeRA paper's rank range and its higher
  // learning rate. full: BERT's fine-tuning learning rate.
  static const std::map<std::string, MethodDefaults> kDefaults{
      {"tlora", {32, 1.0, 0.5, 1e-3}},    {"lora", {8, 16.0, 0.1, 5e-4}},
      {"vera", {256, 1.0, 0.0, 4e-3}},    {"loraxs", {32, 1.0, 0.0, 1e-3}},
      {"full", {0, 0.0, 0.0, 2e-5}},      {"head-only", {0, 0.0, 0.0, 1e-3}},
  };
  return kDefaults;
}

bool given(const CLI::App& app, const char* option) { return app.count(option) > 0; }

}  // namespace

void add_options(CLI::App& app, RunConfig& c) {
  // A repeated option takes its last value, so scripts can append overrides.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--task", c.task, "GLUE task: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli");
  app.add_option("--model-dir", c.model_dir,
                 "Hugging Face model folder (config.json, model.safetensors, tokenizer); default: "
                 "$TLORA_MODEL_DIR, else the pip-installed all-MiniLM-L6-v2");
  app.add_option("--data-dir", c.data_dir,
                 "GLUE data folder (CoLA/, SST-2/, ...); default: $GLUE_DIR, else ../shared/data/glue");
  app.add_option("--output-dir", c.output_dir,
                 "where config.json, metrics.jsonl, checkpoints and results.json go; default: "
                 "runs/<task>-<method>-seed<seed>");
  app.add_option("--method", c.method, "tlora, lora, vera, loraxs, full (every weight) or head-only")
      ->check(CLI::IsMember(kMethods));
  app.add_option("--targets", c.targets,
                 "modules to adapt, by name or dotted suffix (comma-separated)")
      ->delimiter(',')->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)->capture_default_str();
  app.add_option("--rank", c.rank, "adapter rank r (default per method: tlora 32, lora 8, vera 256, loraxs 32)")
      ->check(kPositive);
  app.add_option("--scale", c.scale, "initial scale: TLoRA's α (default 1), LoRA's lora_alpha (default 16)");
  app.add_option("--dropout", c.dropout,
                 "adapter dropout: on TLoRA's output, on the input of LoRA/VeRA (default per method: "
                 "tlora 0.5, lora 0.1, others 0)")
      ->check(CLI::Range(0.0, 0.999));
  std::vector<std::string> schemes;
  for (const tlora::InitScheme scheme : tlora::kInitSchemes) schemes.emplace_back(tlora::to_string(scheme));
  app.add_option("--init", c.init,
                 "TLoRA: how the fixed A and B are drawn: paper (Gaussian, the paper's scale), unit "
                 "(Gaussian, variance preserving) or orthonormal (orthonormal rows of A and columns "
                 "of B at the paper's scale)")
      ->check(CLI::IsMember(schemes))->capture_default_str();
  app.add_option("--train-scale", c.train_scale, "TLoRA: train α (true) or keep it at --scale (false)")
      ->capture_default_str();
  app.add_option("--lr", c.lr, "peak learning rate of the adapter (or of every weight for full) "
                               "(default per method: tlora 1e-3, lora 5e-4, vera 4e-3, full 2e-5)")
      ->check(kPositive);
  app.add_option("--head-lr", c.head_lr, "peak learning rate of the classifier head (default: --lr)")
      ->check(kPositive);
  app.add_option("--epochs", c.epochs, "training epochs")->check(kPositive)->capture_default_str();
  app.add_option("--batch-size", c.batch_size, "training batch size")->check(kPositive)->capture_default_str();
  app.add_option("--eval-batch-size", c.eval_batch_size, "evaluation batch size")
      ->check(kPositive)->capture_default_str();
  app.add_option("--max-seq-length", c.max_seq_length, "tokens per example after truncation")
      ->check(CLI::Range(int64_t{8}, int64_t{4096}))->capture_default_str();
  app.add_option("--warmup-ratio", c.warmup_ratio, "share of the steps with linear warmup")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str();
  app.add_option("--weight-decay", c.weight_decay, "AdamW weight decay (not on biases and LayerNorm)")
      ->check(kNonNegative)->capture_default_str();
  app.add_option("--max-grad-norm", c.max_grad_norm, "gradient clipping by global norm; 0 turns it off")
      ->check(kNonNegative)->capture_default_str();
  app.add_option("--seed", c.seed, "seed of the adapter, the head, the data order and dropout")->capture_default_str();
  app.add_option("--device", c.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  app.add_option("--precision", c.precision,
                 "auto (bf16-mixed on cuda and on CPUs with bfloat16 matrix instructions, fp32 "
                 "elsewhere); fp32; bf16-mixed (bfloat16 matrix products and frozen base, float32 trainable "
                 "weights and optimizer, as torch.autocast); bf16 (the whole model in bfloat16); "
                 "fp16 (the whole model in float16, cuda only)")
      ->check(CLI::IsMember({"auto", "fp32", "bf16-mixed", "bf16", "fp16"}))->capture_default_str();
  app.add_option("--max-train-samples", c.max_train_samples,
                 "train on the first N examples only (0: all)")->check(kNonNegative);
  app.add_option("--max-eval-samples", c.max_eval_samples, "evaluate on the first N dev examples only (0: all)")
      ->check(kNonNegative);
  app.add_option("--validation-split", c.validation_split,
                 "hold out this share of the training set (at most --validation-max examples, drawn "
                 "with --seed) to pick the best epoch; dev is then reported for that epoch, and the "
                 "best epoch on dev beside it (the paper's way). 0: dev picks the best epoch")
      ->check(CLI::Range(0.0, 0.5))->capture_default_str();
  app.add_option("--validation-max", c.validation_max, "most examples --validation-split holds out")
      ->check(kPositive)->capture_default_str();
  app.add_option("--group-by-length", c.group_by_length, "batch examples of similar length together")
      ->capture_default_str();
  app.add_option("--save-steps", c.save_steps,
                 "write a resumable checkpoint every N steps (and at every epoch end)")
      ->check(kPositive)->capture_default_str();
  app.add_option("--threads", c.threads, "CPU threads (0: LibTorch's default)")->check(kNonNegative);
  app.add_option("--split-batch", c.split_batch,
                 "on the CPU, train each batch as one part per thread side by side, each part on one "
                 "thread (faster than every op spread over all threads); false: the whole batch on all")
      ->capture_default_str();
  app.add_option("--preset", c.preset,
                 "paper: the TLoRA paper's recipe (r=32 on query,value, adapter output dropout 0.5, "
                 "AdamW lr 1e-3, weight decay 0.01, 6% warmup, batch 32, 30 epochs, best epoch); "
                 "options given explicitly still win")
      ->check(CLI::IsMember({"paper"}));
  app.add_flag("--resume", c.resume, "continue the run in --output-dir from its last checkpoint");
  app.add_flag("--eval-only", c.eval_only, "evaluate --adapter on --eval-file without training");
  app.add_option("--adapter", c.adapter_dir,
                 "a trained adapter folder (e.g. <output-dir>/best) for --eval-only");
  app.add_option("--eval-file", c.eval_file,
                 "a GLUE-format TSV to evaluate with --eval-only (default: the task's dev file)");
  app.add_option("--predictions-file", c.predictions_file,
                 "where --eval-only writes one prediction per example (default: <adapter>/predictions_<set>.tsv)");
}

void finalize(const CLI::App& app, RunConfig& c) {
  if (c.task.empty() && !c.eval_only) throw CLI::RequiredError("--task");
  if (c.preset == "paper") {
    if (c.method != "tlora")
      throw CLI::ValidationError("--preset", "the paper preset is TLoRA's recipe; it needs --method tlora");
    if (!given(app, "--targets")) c.targets = {"query", "value"};
    if (!given(app, "--rank")) c.rank = 32;
    if (!given(app, "--dropout")) c.dropout = 0.5;
    if (!given(app, "--lr")) c.lr = 1e-3;
    if (!given(app, "--weight-decay")) c.weight_decay = 0.01;
    if (!given(app, "--warmup-ratio")) c.warmup_ratio = 0.06;
    if (!given(app, "--batch-size")) c.batch_size = 32;
    if (!given(app, "--epochs")) c.epochs = 30;
  }
  const MethodDefaults& d = method_defaults().at(c.method);
  if (!given(app, "--rank")) c.rank = d.rank;
  if (!given(app, "--scale")) c.scale = d.scale;
  if (!given(app, "--dropout")) c.dropout = d.dropout;
  if (!given(app, "--lr")) c.lr = d.lr;
  if (!given(app, "--head-lr")) c.head_lr = c.lr;
  const bool adapter = c.method != "full" && c.method != "head-only";
  if (c.method != "tlora") {
    for (const char* option : {"--init", "--train-scale"})
      if (given(app, option)) throw CLI::ValidationError(option, "is TLoRA's; it has no effect with --method " + c.method);
  }
  if (adapter && c.targets.empty()) throw CLI::ValidationError("--targets", "no module to adapt");
  if (!adapter) {
    for (const char* option : {"--rank", "--scale", "--dropout", "--targets"})
      if (given(app, option))
        throw CLI::ValidationError(option, "has no effect with --method " + c.method);
    c.rank = 0;
    c.scale = 0;
    c.dropout = 0;
    c.targets.clear();
  }
  // --eval-only resolves auto to the precision the adapter was trained in (run_evaluation).
  if (c.precision == "auto" && !c.eval_only)
    c.precision = tlora::to_string(tlora::default_precision(c.device == "cuda" ? c10::kCUDA : c10::kCPU));
  if (c.precision == "fp16" && c.device != "cuda")
    throw CLI::ValidationError("--precision", "fp16 needs --device cuda");
  if (c.eval_only && c.adapter_dir.empty())
    throw CLI::ValidationError("--adapter", "--eval-only needs --adapter DIR");
  if (!c.eval_only && (!c.eval_file.empty() || !c.adapter_dir.empty() || !c.predictions_file.empty()))
    throw CLI::ValidationError("--eval-file", "--adapter, --eval-file and --predictions-file go with --eval-only");
  if (c.eval_only && c.resume) throw CLI::ValidationError("--resume", "cannot be combined with --eval-only");
  if (c.output_dir.empty() && !c.eval_only)
    c.output_dir = fmt::format("runs/{}-{}-seed{}", c.task, c.method, c.seed);
}

nlohmann::ordered_json to_json(const RunConfig& c) {
  nlohmann::ordered_json j;
  j["task"] = c.task;
  j["model_dir"] = c.model_dir;
  j["data_dir"] = c.data_dir;
  j["output_dir"] = c.output_dir;
  j["method"] = c.method;
  j["targets"] = c.targets;
  j["rank"] = c.rank;
  j["scale"] = c.scale;
  j["dropout"] = c.dropout;
  j["init"] = c.init;
  j["train_scale"] = c.train_scale;
  j["lr"] = c.lr;
  j["head_lr"] = c.head_lr;
  j["epochs"] = c.epochs;
  j["batch_size"] = c.batch_size;
  j["eval_batch_size"] = c.eval_batch_size;
  j["max_seq_length"] = c.max_seq_length;
  j["warmup_ratio"] = c.warmup_ratio;
  j["weight_decay"] = c.weight_decay;
  j["max_grad_norm"] = c.max_grad_norm;
  j["seed"] = c.seed;
  j["device"] = c.device;
  j["precision"] = c.precision;
  j["max_train_samples"] = c.max_train_samples;
  j["max_eval_samples"] = c.max_eval_samples;
  j["validation_split"] = c.validation_split;
  j["validation_max"] = c.validation_max;
  j["group_by_length"] = c.group_by_length;
  j["save_steps"] = c.save_steps;
  j["threads"] = c.threads;
  j["split_batch"] = c.split_batch;
  j["preset"] = c.preset;
  return j;
}

std::string trajectory_digest(const RunConfig& c) {
  nlohmann::ordered_json j = to_json(c);
  // What may change across a resume without changing the recipe (the threads and the batch's
  // parts change the rounding and which dropout masks a step draws, not their distribution).
  for (const char* key : {"output_dir", "save_steps", "threads", "split_batch", "eval_batch_size", "max_eval_samples"})
    j.erase(key);
  const std::string text = j.dump();
  return fmt::format("{:016x}", tlora::fnv1a64(text.data(), text.size()));
}

}  // namespace glue_app
