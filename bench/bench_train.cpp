// tlora-bench-train: training steps/s of the MiniLM sequence classifier with a TLoRA adapter
// (the paper's preset), with LoRA (PEFT's defaults) and with only the head trained (the floor
// the adapters' overhead is measured against). bench/compare_train.py runs it next to
// bench/hf_train_baseline.py, which times transformers + PEFT the same way; README.md describes
// both.

#include "machine.h"
#include "run_main.h"
#include "train_bench.h"
#include "tlora/adapters/inject.h"
#include "tlora/models/bert.h"
#include "tlora/models/loading.h"
#include "tlora/models/packaged.h"
#include "tlora/core/precision.h"

#include <ATen/Parallel.h>
#include <ATen/ops/randint.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/optim/adamw.h>
#include <torch/utils.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

using nlohmann::json;
namespace models = tlora::models;
using tlora::bench::Shape;

// The methods, in table order; head_only is the floor the adapters are divided by.
const std::vector<std::string> kMethods = {"head_only", "lora", "tlora"};

struct Settings : tlora::bench::TrainSettings {
  std::filesystem::path model_dir;
  Settings() { warmup = steps = 2; }  // this bench's defaults, as README.md lists them
};

// The fixed batch every step trains on: random ids over the whole vocabulary, no padding.
struct Batch {
  at::Tensor input_ids, attention_mask, labels;
};

// Drawn first after seeding, from the default generator, so that hf_train_baseline.py's
// torch.randint calls (the same LibTorch) draw the same batch; compare_train.py checks the sums.
Batch make_batch(const Shape& s, int64_t vocab, uint64_t seed) {
  torch::manual_seed(seed);
  Batch b;
  b.input_ids = at::randint(vocab, {s.batch, s.seq}, at::kLong);
  b.labels = at::randint(2, {s.batch}, at::kLong);
  b.attention_mask = at::ones({s.batch, s.seq}, at::kLong);
  return b;
}

tlora::InjectConfig adapter_config(const std::string& method, uint64_t seed) {
  tlora::InjectConfig c;
  c.target_modules = {"query", "value"};
  c.modules_to_save = {"classifier"};
  c.adapter.seed = seed;
  if (method == "tlora") {  // the paper's preset (DESIGN.md §1)
    c.adapter.kind = tlora::AdapterKind::TLoRA;
    c.adapter.rank = 32;
    c.adapter.scale = 1.0;
    c.adapter.dropout = 0.5;
    c.adapter.dropout_position = tlora::DropoutPosition::Output;
  } else {  // PEFT's LoraConfig defaults besides r
    c.adapter.kind = tlora::AdapterKind::LoRA;
    c.adapter.rank = 8;
    c.adapter.scale = 16;
    c.adapter.dropout = 0.1;
  }
  return c;
}

// A model being trained by one method, with its optimiser and timings.
struct Trainee : tlora::bench::TrainedMethod {
  models::BertForSequenceClassification model{nullptr};
};

Trainee make_trainee(const std::string& method, const Settings& s) {
  models::EncoderConfig config = models::EncoderConfig::from_pretrained(s.model_dir);
  config.num_labels = 2;
  Trainee t;
  t.method = method;
  t.precision = s.precision;
  t.model = models::BertForSequenceClassification(config);
  models::LoadOptions load;
  load.seed = s.seed;
  models::load_weights(*t.model, s.model_dir, load);
  if (method == "head_only") {
    for (auto& p : t.model->named_parameters()) {
      p.value().requires_grad_(p.key().starts_with("classifier."));
    }
  } else {
    tlora::inject(*t.model, adapter_config(method, s.seed));
  }
  if (s.precision == tlora::Precision::BFloat16Mixed) {
    tlora::cast_frozen_matrices_(*t.model, at::kBFloat16);
  } else if (s.precision == tlora::Precision::BFloat16) {
    t.model->to(at::kBFloat16);
  }
  for (const at::Tensor& p : t.model->parameters()) {
    t.total += p.numel();
    if (p.requires_grad()) {
      t.trained.push_back(p);
      t.trainable += p.numel();
    }
  }
  t.optimizer = std::make_unique<torch::optim::AdamW>(
      t.trained, torch::optim::AdamWOptions(s.lr).weight_decay(s.weight_decay));
  t.model->train();
  return t;
}

// One full training step; adds each phase's seconds to `phases`.
void train_step(Trainee& t, const Settings& s, const Batch& b, tlora::bench::Phases& phases) {
  const int64_t rows = b.input_ids.size(0);
  tlora::bench::timed_step(t, s, phases, rows, [&](int64_t first, int64_t last) {
    const at::Tensor logits =
        t.model->forward(b.input_ids.slice(0, first, last), b.attention_mask.slice(0, first, last));
    // The batch's mean loss, as the mean of each part weighted by its rows.
    return t.model->loss(logits.to(at::kFloat), b.labels.slice(0, first, last)) *
           (static_cast<double>(last - first) / static_cast<double>(rows));
  });
}

// Trains every method on one shape. The repetitions of the methods alternate, so that slow
// phases of a shared machine are spread over all of them.
json run_case(const Shape& shape, const std::vector<std::string>& methods, const Settings& s) {
  const int64_t vocab = models::EncoderConfig::from_pretrained(s.model_dir).vocab_size;
  const Batch batch = make_batch(shape, vocab, s.seed);
  std::vector<Trainee> trainees;
  for (const std::string& m : methods) trainees.push_back(make_trainee(m, s));
  tlora::bench::time_repetitions(trainees, s, [&](Trainee& t, tlora::bench::Phases& phases) {
    train_step(t, s, batch, phases);
  });
  json out = {{"batch", shape.batch},
              {"seq", shape.seq},
              {"tokens_per_step", shape.batch * shape.seq},
              {"input_ids_sum", batch.input_ids.sum().item<int64_t>()},
              {"labels_sum", batch.labels.sum().item<int64_t>()},
              {"methods", json::object()}};
  for (const Trainee& t : trainees) out["methods"][t.method] = tlora::bench::method_json(t, shape);
  return out;
}

void print_table(const json& cases) {
  fmt::print("\n{:<10} {:<10} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9} {:>9} {:>10}\n", "shape",
             "method", "median s", "min s", "steps/s", "tokens/s", "trainable", "forward",
             "backward", "optim", "/head_only");
  for (const json& c : cases) {
    const std::string shape = fmt::format("{}x{}", c["batch"].get<int64_t>(), c["seq"].get<int64_t>());
    const json& ms = c["methods"];
    for (const std::string& name : kMethods) {
      if (!ms.contains(name)) continue;
      const json& m = ms[name];
      const json& ph = m["phase_median_s"];
      const std::string over =
          ms.contains("head_only")
              ? fmt::format("{:.3f}x", m["median_step_s"].get<double>() /
                                           ms["head_only"]["median_step_s"].get<double>())
              : "";
      fmt::print("{:<10} {:<10} {:>9.3f} {:>9.3f} {:>9.3f} {:>9.0f} {:>10} {:>9.3f} {:>9.3f} "
                 "{:>9.4f} {:>10}\n",
                 shape, name, m["median_step_s"].get<double>(), m["min_step_s"].get<double>(),
                 m["steps_per_s"].get<double>(), m["tokens_per_s"].get<double>(),
                 m["trainable_params"].get<int64_t>(), ph["forward"].get<double>(),
                 ph["backward"].get<double>(), ph["optimizer"].get<double>(), over);
    }
  }
}

int run(int argc, char** argv) {
  CLI::App app{"Times full training steps of MiniLM with TLoRA, LoRA and only the head trained."};
  std::string model_dir, json_path;
  std::vector<std::string> shape_texts, methods = kMethods;
  Settings s;
  int threads = 0;
  app.add_option("--model-dir", model_dir,
                 "model folder (default: tlora::models::default_model_dir())");
  app.add_option("--shape", shape_texts, "B,L: batch and sequence length (repeatable; default "
                                         "32,128 and 32,64)");
  app.add_option("--methods", methods, "which of head_only, lora, tlora (default: all)")
      ->check(CLI::IsMember(kMethods));
  tlora::bench::add_timing_options(app, s, threads,
                                   "seed of the batch, the new head and the adapters", false);
  std::string precision = "fp32";
  app.add_option("--precision", precision,
                 "fp32, bf16-mixed (bfloat16 products and frozen base, float32 trainable "
                 "weights, as torch.autocast) or bf16 (the whole model)")
      ->check(CLI::IsMember({"fp32", "bf16-mixed", "bf16"}))->capture_default_str();
  app.add_option("--json", json_path, "write the results to this file");
  CLI11_PARSE(app, argc, argv);
  s.precision = tlora::parse_precision(precision);

  const std::vector<Shape> shapes =
      tlora::bench::parse_shapes(shape_texts, {{32, 128}, {32, 64}}, 1, "B,L with B, L >= 1");
  std::ofstream json_file = tlora::bench::open_json(json_path);
  s.model_dir = model_dir.empty() ? models::default_model_dir() : std::filesystem::path(model_dir);
  tlora::bench::apply_process_options(s, threads);

  json cases = json::array();
  for (const Shape& shape : shapes) cases.push_back(run_case(shape, methods, s));
  print_table(cases);
  fmt::print("\n{} threads, {}, {} warmup steps, {} repetitions of {} steps per method; phases "
             "are medians of seconds per step; peak RSS {:.0f} MiB; cpu {} (bf16 instructions: {})\n",
             at::get_num_threads(), precision, s.warmup, s.repetitions, s.steps,
             tlora::bench::peak_rss_mib(),
             tlora::bench::cpu_model(), tlora::bench::cpu_bf16_text());

  json settings = tlora::bench::settings_json(s, precision);
  settings["model_dir"] = s.model_dir.string();
  tlora::bench::write_results(json_file, json_path, settings, cases);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return tlora::bench::run_main("tlora-bench-train", run, argc, argv);
}
