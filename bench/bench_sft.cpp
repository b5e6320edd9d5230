// tlora-bench-sft: training tokens/s of supervised fine-tuning of a LLaMA-family decoder (by
// default the packaged SmolLM2-135M-Instruct) with a TLoRA and with a LoRA adapter on q, k, v,
// o, gate, up and down, as tlora-sft trains it. bench/compare_sft.py runs it next to
// bench/hf_sft_baseline.py, which times transformers + PEFT the same way; README.md describes
// both.

#include "machine.h"
#include "run_main.h"
#include "train_bench.h"
#include "tlora/adapters/inject.h"
#include "tlora/core/precision.h"
#include "tlora/models/causal_lm_loss.h"
#include "tlora/models/llama.h"
#include "tlora/models/packaged.h"

#include <ATen/Parallel.h>
#include <ATen/ops/full.h>
#include <ATen/ops/randint.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/optim/adamw.h>
#include <torch/utils.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

using nlohmann::json;
namespace models = tlora::models;
using tlora::bench::Shape;

const std::vector<std::string> kMethods = {"lora", "tlora"};
// PEFT's usual target_modules for LLaMA: every projection of attention and MLP.
const std::vector<std::string> kTargets = {"q_proj", "k_proj", "v_proj", "o_proj",
                                           "gate_proj", "up_proj", "down_proj"};
constexpr int64_t kIgnore = models::kIgnoreIndex;

struct Settings : tlora::bench::TrainSettings {
  std::filesystem::path model;
  std::string loss = "answer";
};

// The fixed batch every step trains on: random ids over the whole vocabulary, no padding, and
// the next-token targets of every position, kIgnore where the loss does not look.
struct Batch {
  at::Tensor input_ids, targets;
};

// The ids are drawn first after seeding, from the default generator, so that
// hf_sft_baseline.py's torch.randint (the same LibTorch) draws the same ones; compare_sft.py
// checks the sums. With loss "answer" the first half of every row is the prompt: only the
// second half is predicted, as tlora-sft's loss counts the answers only; with "label" only the
// last two tokens are, the shape of the GLUE tasks as instructions (a one-word answer and the
// end of the turn).
Batch make_batch(const Shape& s, int64_t vocab, uint64_t seed, const std::string& loss) {
  torch::manual_seed(seed);
  Batch b;
  b.input_ids = at::randint(vocab, {s.batch, s.seq}, at::kLong);
  // Position t predicts token t + 1. Shifted once here rather than by slicing the logits every
  // step (a copy of them), as transformers' loss shifts the labels.
  const int64_t first = loss == "answer" ? std::max<int64_t>(s.seq / 2, 1)  // the first predicted
                        : loss == "label" ? std::max<int64_t>(s.seq - 2, 1)
                                          : 1;
  b.targets = at::full({s.batch, s.seq}, kIgnore, at::kLong);
  b.targets.slice(1, first - 1, s.seq - 1).copy_(b.input_ids.slice(1, first));
  return b;
}

tlora::InjectConfig adapter_config(const std::string& method, uint64_t seed) {
  tlora::InjectConfig c;
  c.target_modules = kTargets;
  c.adapter.seed = seed;
  if (method == "tlora") {  // tlora-sft's defaults
    c.adapter.kind = tlora::AdapterKind::TLoRA;
    c.adapter.rank = 32;
    c.adapter.scale = 1.0;
  } else {  // PEFT LoraConfig(r=8, lora_alpha=8, lora_dropout=0)
    c.adapter.kind = tlora::AdapterKind::LoRA;
    c.adapter.rank = 8;
    c.adapter.scale = 8;
  }
  return c;
}

// A model being trained by one method, with its optimiser and timings.
struct Trainee : tlora::bench::TrainedMethod {
  models::LlamaForCausalLM model{nullptr};
};

Trainee make_trainee(const std::string& method, const Settings& s) {
  Trainee t;
  t.method = method;
  t.precision = s.precision;
  t.model = models::load_llama(s.model);
  const tlora::InjectReport report = tlora::inject(*t.model, adapter_config(method, s.seed));
  t.trainable = report.trainable_params;
  t.total = report.all_params;
  if (s.precision == tlora::Precision::BFloat16Mixed) tlora::cast_frozen_matrices_(*t.model, at::kBFloat16);
  t.trained = tlora::trainable_parameters(*t.model);
  t.optimizer = std::make_unique<torch::optim::AdamW>(
      t.trained, torch::optim::AdamWOptions(s.lr).weight_decay(s.weight_decay));
  t.model->train();
  return t;
}

// One full training step; adds each phase's seconds to `phases`.
void train_step(Trainee& t, const Settings& s, const Batch& b, tlora::bench::Phases& phases) {
  const auto counted = static_cast<double>(b.targets.ne(kIgnore).sum().item<int64_t>());
  tlora::bench::timed_step(t, s, phases, b.input_ids.size(0), [&](int64_t first, int64_t last) {
    // The batch's mean over its counted tokens: each part's sum over the batch's count.
    return models::causal_lm_loss(*t.model, b.input_ids.slice(0, first, last), {},
                                  b.targets.slice(0, first, last), at::Reduction::Sum) /
           counted;
  });
}

// Trains every method on one shape. The repetitions of the methods alternate, so that slow
// phases of a shared machine are spread over all of them.
json run_case(const Shape& shape, const std::vector<std::string>& methods, const Settings& s) {
  std::vector<Trainee> trainees;
  for (const std::string& m : methods) trainees.push_back(make_trainee(m, s));
  const Batch batch =
      make_batch(shape, trainees.front().model->config().vocab_size, s.seed, s.loss);
  const bool measured = tlora::bench::reset_peak_rss();
  tlora::bench::time_repetitions(trainees, s, [&](Trainee& t, tlora::bench::Phases& phases) {
    train_step(t, s, batch, phases);
  });
  const json train_peak =
      measured ? json(tlora::bench::peak_rss_since_reset_mib()) : json(nullptr);
  const at::Tensor counted = batch.targets.ne(kIgnore);
  json out = {{"batch", shape.batch},
              {"seq", shape.seq},
              {"tokens_per_step", shape.batch * shape.seq},
              {"input_ids_sum", batch.input_ids.sum().item<int64_t>()},
              {"labels_sum", batch.targets.mul(counted).sum().item<int64_t>()},
              {"loss_tokens", counted.sum().item<int64_t>()},
              {"train_peak_rss_mib", train_peak},
              {"methods", json::object()}};
  for (const Trainee& t : trainees) {
    json& m = out["methods"][t.method] = tlora::bench::method_json(t, shape);
    m["best_tokens_per_s"] = static_cast<double>(shape.batch * shape.seq) /
                             m["min_step_s"].get<double>();
  }
  return out;
}

void print_table(const json& cases) {
  fmt::print("\n{:<10} {:<7} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}\n", "shape",
             "method", "median s", "min s", "tokens/s", "trainable", "forward", "backward",
             "optim", "loss 1st", "loss last");
  for (const json& c : cases) {
    const std::string shape = fmt::format("{}x{}", c["batch"].get<int64_t>(), c["seq"].get<int64_t>());
    for (const auto& [name, m] : c["methods"].items()) {
      const json& ph = m["phase_median_s"];
      fmt::print("{:<10} {:<7} {:>9.3f} {:>9.3f} {:>9.1f} {:>10} {:>9.3f} {:>9.3f} {:>9.4f} "
                 "{:>9.4f} {:>9.4f}\n",
                 shape, name, m["median_step_s"].get<double>(), m["min_step_s"].get<double>(),
                 m["tokens_per_s"].get<double>(), m["trainable_params"].get<int64_t>(),
                 ph["forward"].get<double>(), ph["backward"].get<double>(),
                 ph["optimizer"].get<double>(), m["loss_first"].get<double>(),
                 m["loss_last"].get<double>());
    }
  }
}

int run(int argc, char** argv) {
  CLI::App app{"Times supervised fine-tuning steps of a LLaMA-family decoder with TLoRA and LoRA."};
  std::string model, json_path;
  std::vector<std::string> shape_texts, methods = kMethods;
  Settings s;
  int threads = 0;
  app.add_option("--model", model,
                 "a GGUF file or a Hugging Face folder (default: the packaged SmolLM2-135M-Instruct)");
  app.add_option("--shape", shape_texts, "B,T: batch and sequence length (repeatable; default 8,128)");
  app.add_option("--methods", methods, "which of lora, tlora (default: both)")
      ->check(CLI::IsMember(kMethods));
  app.add_option("--loss", s.loss,
                 "answer (the second half of every row), label (its last two tokens) or all positions")
      ->check(CLI::IsMember({"answer", "label", "all"}))->capture_default_str();
  tlora::bench::add_timing_options(app, s, threads, "seed of the batch and the adapters", true);
  std::string precision = "fp32";
  app.add_option("--precision", precision,
                 "fp32 or bf16-mixed (bfloat16 products and frozen base, float32 trainable "
                 "weights, as torch.autocast)")
      ->check(CLI::IsMember({"fp32", "bf16-mixed"}))->capture_default_str();
  app.add_option("--json", json_path, "write the results to this file");
  CLI11_PARSE(app, argc, argv);
  s.precision = tlora::parse_precision(precision);

  const std::vector<Shape> shapes =
      tlora::bench::parse_shapes(shape_texts, {{8, 128}}, 2, "B,T with B >= 1, T >= 2");
  std::ofstream json_file = tlora::bench::open_json(json_path);
  s.model = model.empty() ? models::packaged_smollm2() : std::filesystem::path(model);
  tlora::bench::apply_process_options(s, threads);

  json cases = json::array();
  for (const Shape& shape : shapes) cases.push_back(run_case(shape, methods, s));
  print_table(cases);
  fmt::print("\n{} threads, {}, loss on {} positions, {} warmup steps, {} repetitions of {} steps "
             "per method; phases are medians of seconds per step; peak RSS {:.0f} MiB; cpu {} "
             "(bf16 instructions: {})\n",
             at::get_num_threads(), precision, s.loss, s.warmup, s.repetitions, s.steps,
             tlora::bench::peak_rss_mib(), tlora::bench::cpu_model(),
             tlora::bench::cpu_bf16_text());

  json settings = tlora::bench::settings_json(s, precision);
  settings["model"] = s.model.string();
  settings["targets"] = kTargets;
  settings["loss"] = s.loss;
  tlora::bench::write_results(json_file, json_path, settings, cases);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return tlora::bench::run_main("tlora-bench-sft", run, argc, argv);
}
