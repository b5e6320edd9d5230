// tlora-bench-sft: training tokens/s of supervised fine-tuning of a LLaMA-family decoder (by
// default the packaged SmolLM2-135M-Instruct) with a TLoRA and with a LoRA adapter on q, k, v,
// o, gate, up and down, as tlora-sft trains it. bench/compare_sft.py runs it next to
// bench/hf_sft_baseline.py, which times transformers + PEFT the same way; README.md describes
// both.

#include "machine.h"
#include "run_main.h"
#include "tlora/adapters/inject.h"
#include "tlora/core/precision.h"
#include "tlora/models/llama.h"
#include "tlora/models/packaged.h"

#include <ATen/Parallel.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/full.h>
#include <ATen/ops/randint.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/optim/adamw.h>
#include <torch/utils.h>
#include <torch/version.h>

#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using nlohmann::json;
namespace models = tlora::models;
using Clock = std::chrono::steady_clock;

const std::vector<std::string> kMethods = {"lora", "tlora"};
// PEFT's usual target_modules for LLaMA: every projection of attention and MLP.
const std::vector<std::string> kTargets = {"q_proj", "k_proj", "v_proj", "o_proj",
                                           "gate_proj", "up_proj", "down_proj"};
// One training step's phases, timed apart to show where the time goes.
const std::array<const char*, 3> kPhases = {"forward", "backward", "optimizer"};
// Targets that take no part in the loss (PyTorch's and transformers' ignore_index).
constexpr int64_t kIgnore = -100;

struct Shape {
  int64_t batch, seq;
};

struct Settings {
  std::filesystem::path model;
  std::string loss = "answer";
  int warmup = 1, steps = 1, repetitions = 5;
  uint64_t seed = 0;
  double lr = 1e-3, weight_decay = 0.01;
  tlora::Precision precision = tlora::Precision::Float32;
};

// The fixed batch every step trains on: random ids over the whole vocabulary, no padding, and
// the next-token targets of every position, kIgnore where the loss does not look.
struct Batch {
  at::Tensor input_ids, targets;
};

// The ids are drawn first after seeding, from the default generator, so that
// hf_sft_baseline.py's torch.randint (the same LibTorch) draws the same ones; compare_sft.py
// checks the sums. With loss "answer" the first half of every row is the prompt: only the
// second half is predicted, as tlora-sft's loss counts the answers only.
Batch make_batch(const Shape& s, int64_t vocab, uint64_t seed, const std::string& loss) {
  torch::manual_seed(seed);
  Batch b;
  b.input_ids = at::randint(vocab, {s.batch, s.seq}, at::kLong);
  // Position t predicts token t + 1. Shifted once here rather than by slicing the logits every
  // step (a copy of them), as transformers' loss shifts the labels.
  const int64_t first = loss == "answer" ? std::max<int64_t>(s.seq / 2, 1) : 1;  // first predicted
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
struct Trainee {
  std::string method;
  models::LlamaForCausalLM model{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer;
  tlora::Precision precision = tlora::Precision::Float32;
  int64_t trainable = 0, total = 0;
  std::vector<std::array<double, 3>> repetitions;  // seconds per step of each phase
  std::vector<double> losses;                      // of every step, warmup included
};

Trainee make_trainee(const std::string& method, const Settings& s) {
  Trainee t{method, models::load_llama(s.model), nullptr, s.precision};
  const tlora::InjectReport report = tlora::inject(*t.model, adapter_config(method, s.seed));
  t.trainable = report.trainable_params;
  t.total = report.all_params;
  if (s.precision == tlora::Precision::BFloat16Mixed) tlora::cast_frozen_matrices_(*t.model, at::kBFloat16);
  t.optimizer = std::make_unique<torch::optim::AdamW>(
      tlora::trainable_parameters(*t.model),
      torch::optim::AdamWOptions(s.lr).weight_decay(s.weight_decay));
  t.model->train();
  return t;
}

double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// One full training step; adds each phase's seconds to `phases`.
void train_step(Trainee& t, const Batch& b, std::array<double, 3>& phases) {
  const auto start = Clock::now();
  at::Tensor loss;
  {
    const tlora::AutocastGuard autocast(at::kCPU, at::kBFloat16,
                                        t.precision == tlora::Precision::BFloat16Mixed);
    const at::Tensor logits = t.model->forward(b.input_ids);
    loss = at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}).to(at::kFloat),
                                  b.targets.reshape(-1), {}, at::Reduction::Mean, kIgnore);
  }
  const auto forward_end = Clock::now();
  loss.backward();
  const auto backward_end = Clock::now();
  t.optimizer->step();
  t.optimizer->zero_grad();
  phases[0] += std::chrono::duration<double>(forward_end - start).count();
  phases[1] += std::chrono::duration<double>(backward_end - forward_end).count();
  phases[2] += since(backward_end);
  const double value = loss.item<double>();
  if (!std::isfinite(value)) {
    throw std::runtime_error(fmt::format("{}: loss is {} at step {}", t.method, value,
                                         t.losses.size() + 1));
  }
  t.losses.push_back(value);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

json method_json(const Trainee& t, const Shape& shape) {
  std::vector<double> step_s;
  json phases = json::object();
  for (size_t p = 0; p < kPhases.size(); ++p) {
    std::vector<double> v;
    for (const auto& r : t.repetitions) v.push_back(r[p]);
    phases[kPhases[p]] = median(v);
  }
  for (const auto& r : t.repetitions) step_s.push_back(r[0] + r[1] + r[2]);
  const double med = median(step_s), best = *std::min_element(step_s.begin(), step_s.end());
  const auto tokens = static_cast<double>(shape.batch * shape.seq);
  return {{"trainable_params", t.trainable},
          {"all_params", t.total},
          {"step_seconds", step_s},
          {"median_step_s", med},
          {"min_step_s", best},
          {"steps_per_s", 1 / med},
          {"best_steps_per_s", 1 / best},
          {"tokens_per_s", tokens / med},
          {"best_tokens_per_s", tokens / best},
          {"phase_median_s", phases},
          {"loss_first", t.losses.front()},
          {"loss_last", t.losses.back()}};
}

// The process's peak RSS before the last reset_peak_rss(), which makes the kernel forget it.
double peak_before_reset_mib = 0;

// The process's peak resident set so far, loading included, in MiB.
double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return std::max(static_cast<double>(usage.ru_maxrss) / 1024.0,  // kilobytes on Linux
                  peak_before_reset_mib);
}

// Restarts the kernel's peak-RSS count (VmHWM, and ru_maxrss with it) from the current RSS,
// after handing freed heap back to the system, so that the peak read later is that of what
// follows (the training steps with the models resident) and not of loading. False where /proc
// does not allow it.
bool reset_peak_rss() {
  peak_before_reset_mib = peak_rss_mib();
  malloc_trim(0);
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  return static_cast<bool>(clear);
}

// VmHWM of /proc/self/status in MiB: the peak RSS since reset_peak_rss().
double peak_rss_since_reset_mib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // in kB
  }
  throw std::runtime_error("no VmHWM in /proc/self/status");
}

// Trains every method on one shape. The repetitions of the methods alternate, so that slow
// phases of a shared machine are spread over all of them.
json run_case(const Shape& shape, const std::vector<std::string>& methods, const Settings& s) {
  std::vector<Trainee> trainees;
  for (const std::string& m : methods) trainees.push_back(make_trainee(m, s));
  const Batch batch =
      make_batch(shape, trainees.front().model->config().vocab_size, s.seed, s.loss);
  const bool measured = reset_peak_rss();
  for (Trainee& t : trainees) {
    std::array<double, 3> ignored{};
    for (int i = 0; i < s.warmup; ++i) train_step(t, batch, ignored);
  }
  for (int r = 0; r < s.repetitions; ++r) {
    for (Trainee& t : trainees) {
      std::array<double, 3> phases{};
      for (int i = 0; i < s.steps; ++i) train_step(t, batch, phases);
      for (double& p : phases) p /= s.steps;
      t.repetitions.push_back(phases);
    }
  }
  const json train_peak = measured ? json(peak_rss_since_reset_mib()) : json(nullptr);
  const at::Tensor counted = batch.targets.ne(kIgnore);
  json out = {{"batch", shape.batch},
              {"seq", shape.seq},
              {"tokens_per_step", shape.batch * shape.seq},
              {"input_ids_sum", batch.input_ids.sum().item<int64_t>()},
              {"labels_sum", batch.targets.mul(counted).sum().item<int64_t>()},
              {"loss_tokens", counted.sum().item<int64_t>()},
              {"train_peak_rss_mib", train_peak},
              {"methods", json::object()}};
  for (const Trainee& t : trainees) out["methods"][t.method] = method_json(t, shape);
  return out;
}

Shape parse_shape(const std::string& text) {
  Shape s{};
  char tail = 0;
  const int n = std::sscanf(text.c_str(), "%" SCNd64 ",%" SCNd64 "%c", &s.batch, &s.seq, &tail);
  if (n != 2 || s.batch < 1 || s.seq < 2) {
    throw std::invalid_argument("--shape: expected B,T with B >= 1, T >= 2, got '" + text + "'");
  }
  return s;
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
  app.add_option("--loss", s.loss, "answer (the second half of every row) or all positions")
      ->check(CLI::IsMember({"answer", "all"}))->capture_default_str();
  app.add_option("--warmup", s.warmup, "untimed steps per method before the repetitions")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--steps", s.steps, "steps per timed repetition")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--repetitions", s.repetitions, "timed repetitions per method (median and "
                                                 "minimum kept)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--seed", s.seed, "seed of the batch and the adapters");
  app.add_option("--threads", threads, "torch intra-op threads (default: torch's choice)")
      ->check(CLI::PositiveNumber);
  std::string precision = "fp32";
  app.add_option("--precision", precision,
                 "fp32 or bf16-mixed (bfloat16 products and frozen base, float32 trainable "
                 "weights, as torch.autocast)")
      ->check(CLI::IsMember({"fp32", "bf16-mixed"}))->capture_default_str();
  app.add_option("--json", json_path, "write the results to this file");
  CLI11_PARSE(app, argc, argv);
  s.precision = tlora::parse_precision(precision);

  std::vector<Shape> shapes = {{8, 128}};
  if (!shape_texts.empty()) {
    shapes.clear();
    for (const std::string& t : shape_texts) shapes.push_back(parse_shape(t));
  }
  std::ofstream json_file;  // opened now, so that a bad path fails before the long run
  if (!json_path.empty()) {
    json_file.open(json_path);
    if (!json_file) throw std::runtime_error("cannot write " + json_path);
  }
  s.model = model.empty() ? models::packaged_smollm2() : std::filesystem::path(model);
  if (threads > 0) at::set_num_threads(threads);

  json cases = json::array();
  for (const Shape& shape : shapes) cases.push_back(run_case(shape, methods, s));
  print_table(cases);
  fmt::print("\n{} threads, {}, loss on {} positions, {} warmup steps, {} repetitions of {} steps "
             "per method; phases are medians of seconds per step; peak RSS {:.0f} MiB; cpu {} "
             "(bf16 instructions: {})\n",
             at::get_num_threads(), precision, s.loss, s.warmup, s.repetitions, s.steps,
             peak_rss_mib(), tlora::bench::cpu_model(), tlora::bench::cpu_bf16_text());

  if (!json_path.empty()) {
    const json doc = {{"implementation", "tlora"},
                      {"machine", {{"cpu", tlora::bench::cpu_model()}, {"cpu_bf16", tlora::cpu_bf16_instructions()}, {"torch", TORCH_VERSION}}},
                      {"settings",
                       {{"model", s.model.string()},
                        {"targets", kTargets},
                        {"loss", s.loss},
                        {"warmup", s.warmup},
                        {"steps", s.steps},
                        {"repetitions", s.repetitions},
                        {"seed", s.seed},
                        {"threads", at::get_num_threads()},
                        {"lr", s.lr},
                        {"weight_decay", s.weight_decay},
                        {"dtype", precision},
                        {"clock", "std::chrono::steady_clock, wall time"}}},
                      {"peak_rss_mib", peak_rss_mib()},
                      {"cases", cases}};
    json_file << doc.dump(2) << "\n";
    if (!json_file) throw std::runtime_error("cannot write " + json_path);
    fmt::print("wrote {}\n", json_path);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return tlora::bench::run_main("tlora-bench-sft", run, argc, argv);
}
