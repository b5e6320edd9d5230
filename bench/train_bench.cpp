#include "train_bench.h"

#include "machine.h"

#include "tlora/train/memory.h"
#include "tlora/train/split_batch.h"

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <torch/version.h>

#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace tlora::bench {

using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The process's peak RSS before the last reset_peak_rss(), which makes the kernel forget it.
double peak_before_reset_mib = 0;

}  // namespace

Shape parse_shape(const std::string& text, int64_t min_seq, const std::string& expected) {
  Shape s{};
  char tail = 0;
  const int n = std::sscanf(text.c_str(), "%" SCNd64 ",%" SCNd64 "%c", &s.batch, &s.seq, &tail);
  if (n != 2 || s.batch < 1 || s.seq < min_seq) {
    throw std::invalid_argument("--shape: expected " + expected + ", got '" + text + "'");
  }
  return s;
}

std::vector<Shape> parse_shapes(const std::vector<std::string>& texts, std::vector<Shape> defaults,
                                int64_t min_seq, const std::string& expected) {
  if (texts.empty()) return defaults;
  std::vector<Shape> shapes;
  for (const std::string& t : texts) shapes.push_back(parse_shape(t, min_seq, expected));
  return shapes;
}

void timed_step(TrainedMethod& t, const TrainSettings& s, Phases& phases, int64_t rows,
                const std::function<at::Tensor(int64_t, int64_t)>& part_loss) {
  const int64_t parts = tlora::train::batch_parts(rows, at::get_num_threads(), s.split_batch);
  const auto start = Clock::now();
  Clock::time_point forward_end;
  const at::Tensor loss = tlora::train::split_backward(t.trained, parts, [&](int64_t k) {
    const auto [first, last] = tlora::train::part_rows(rows, k, parts);
    at::Tensor share;
    {
      const tlora::AutocastGuard autocast(at::kCPU, at::kBFloat16,
                                          t.precision == tlora::Precision::BFloat16Mixed);
      share = part_loss(first, last);
    }
    if (k == 0) forward_end = Clock::now();  // the parts run side by side: part 0 stands for all
    return share;
  });
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

json method_json(const TrainedMethod& t, const Shape& shape) {
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
          {"phase_median_s", phases},
          {"loss_first", t.losses.front()},
          {"loss_last", t.losses.back()}};
}

void add_timing_options(CLI::App& app, TrainSettings& s, int& threads, const std::string& seed_help,
                        bool show_defaults) {
  CLI::Option* warmup =
      app.add_option("--warmup", s.warmup, "untimed steps per method before the repetitions")
          ->check(CLI::NonNegativeNumber);
  CLI::Option* steps =
      app.add_option("--steps", s.steps, "steps per timed repetition")->check(CLI::PositiveNumber);
  CLI::Option* repetitions =
      app.add_option("--repetitions", s.repetitions,
                     "timed repetitions per method (median and minimum kept)")
          ->check(CLI::PositiveNumber);
  if (show_defaults) {
    for (CLI::Option* o : {warmup, steps, repetitions}) o->capture_default_str();
  }
  app.add_option("--seed", s.seed, seed_help);
  app.add_option("--threads", threads, "torch intra-op threads (default: torch's choice)")
      ->check(CLI::PositiveNumber);
  app.add_option("--retain-freed-memory", s.retain_freed_memory,
                 "keep freed buffers in the process between steps, as tlora-glue and tlora-sft do "
                 "(false: glibc's defaults)")
      ->capture_default_str();
  app.add_option("--split-batch", s.split_batch,
                 "train each batch as one part per thread side by side, as tlora-glue and tlora-sft do "
                 "(false: the whole batch on all threads)")
      ->capture_default_str();
}

void apply_process_options(TrainSettings& s, int threads) {
  if (threads > 0) at::set_num_threads(threads);
  if (s.retain_freed_memory) s.retain_freed_memory = tlora::train::retain_freed_memory();
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return std::max(static_cast<double>(usage.ru_maxrss) / 1024.0,  // kilobytes on Linux
                  peak_before_reset_mib);
}

bool reset_peak_rss() {
  peak_before_reset_mib = peak_rss_mib();
  malloc_trim(0);
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  return static_cast<bool>(clear);
}

double peak_rss_since_reset_mib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // in kB
  }
  throw std::runtime_error("no VmHWM in /proc/self/status");
}

std::ofstream open_json(const std::string& path) {
  std::ofstream file;
  if (!path.empty()) {
    file.open(path);
    if (!file) throw std::runtime_error("cannot write " + path);
  }
  return file;
}

json settings_json(const TrainSettings& s, const std::string& precision) {
  return {{"warmup", s.warmup},
          {"steps", s.steps},
          {"repetitions", s.repetitions},
          {"seed", s.seed},
          {"threads", at::get_num_threads()},
          {"lr", s.lr},
          {"weight_decay", s.weight_decay},
          {"dtype", precision},
          {"retain_freed_memory", s.retain_freed_memory},
          {"split_batch", s.split_batch},
          {"clock", "std::chrono::steady_clock, wall time"}};
}

void write_results(std::ofstream& file, const std::string& path, const json& settings,
                   const json& cases) {
  if (path.empty()) return;
  const json doc = {{"implementation", "tlora"},
                    {"machine",
                     {{"cpu", cpu_model()},
                      {"cpu_bf16", tlora::cpu_bf16_instructions()},
                      {"torch", TORCH_VERSION}}},
                    {"settings", settings},
                    {"peak_rss_mib", peak_rss_mib()},
                    {"cases", cases}};
  file << doc.dump(2) << "\n";
  if (!file) throw std::runtime_error("cannot write " + path);
  fmt::print("wrote {}\n", path);
}

}  // namespace tlora::bench
