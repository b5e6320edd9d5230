// What tlora-bench-train and tlora-bench-sft share: the timing of training steps (phases,
// alternating repetitions, medians), the batch shapes, the options and JSON layout both write,
// and the peak resident memory they report. Kept in one place so that the two benches, and the
// comparisons built on their JSON, measure the same way.
#pragma once

#include "tlora/core/precision.h"

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>
#include <torch/optim/adamw.h>

#include <array>
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace tlora::bench {

/// A batch's shape: rows, and tokens per row.
struct Shape {
  int64_t batch, seq;
};

/// "B,T" of --shape. `expected` says what is accepted in the error ("B,L with B, L >= 1"), as
/// the shortest row (`min_seq`) differs between the benches.
Shape parse_shape(const std::string& text, int64_t min_seq, const std::string& expected);

/// Every --shape parsed, or `defaults` where none was given.
std::vector<Shape> parse_shapes(const std::vector<std::string>& texts, std::vector<Shape> defaults,
                                int64_t min_seq, const std::string& expected);

/// Seconds per step of each of kPhases.
using Phases = std::array<double, 3>;
/// One training step's phases, timed apart to show where the time goes.
inline constexpr std::array<const char*, 3> kPhases = {"forward", "backward", "optimizer"};

/// What both benches set besides the model; each sets its own defaults of warmup and steps.
struct TrainSettings {
  int warmup = 1, steps = 1, repetitions = 5;
  uint64_t seed = 0;
  double lr = 1e-3, weight_decay = 0.01;
  tlora::Precision precision = tlora::Precision::Float32;
  bool retain_freed_memory = true;  // tlora::train::retain_freed_memory, as the example binaries
  bool split_batch = true;          // tlora::train::split_backward, as the example binaries
};

/// A method being trained, with its optimiser and timings; each bench adds its model.
struct TrainedMethod {
  std::string method;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::vector<at::Tensor> trained;  // the parameters the optimiser updates
  tlora::Precision precision = tlora::Precision::Float32;
  int64_t trainable = 0, total = 0;
  std::vector<Phases> repetitions;  // seconds per step of each phase
  std::vector<double> losses;       // of every step, warmup included
};

/// One full training step of a batch of `rows`: its forward and backward as the parts
/// tlora::train::split_backward runs side by side (one per thread where `s.split_batch`), each
/// part's share of the loss from `part_loss(first_row, last_row)` under autocast in bf16-mixed;
/// then the optimiser's step. Adds each phase's seconds to `phases` (with several parts, the
/// forward is part 0's and the backward the rest of the parts' time). Throws where the loss is
/// not finite, as a diverged run's timings are not worth reporting.
void timed_step(TrainedMethod& t, const TrainSettings& s, Phases& phases, int64_t rows,
                const std::function<at::Tensor(int64_t first_row, int64_t last_row)>& part_loss);
/// The warmup steps of every method, then the timed repetitions. The repetitions of the methods
/// alternate, so that slow phases of a shared machine are spread over all of them.
template <class Trainee, class Step>
void time_repetitions(std::vector<Trainee>& trainees, const TrainSettings& s, const Step& step) {
  for (Trainee& t : trainees) {
    Phases ignored{};
    for (int i = 0; i < s.warmup; ++i) step(t, ignored);
  }
  for (int r = 0; r < s.repetitions; ++r) {
    for (Trainee& t : trainees) {
      Phases phases{};
      for (int i = 0; i < s.steps; ++i) step(t, phases);
      for (double& p : phases) p /= s.steps;
      t.repetitions.push_back(phases);
    }
  }
}

double median(std::vector<double> v);

/// One method's results in a case: parameter counts, step times and their medians, losses.
nlohmann::json method_json(const TrainedMethod& t, const Shape& shape);

/// --warmup, --steps, --repetitions, --seed and --threads; `show_defaults` puts the defaults of
/// the first three in --help.
void add_timing_options(CLI::App& app, TrainSettings& s, int& threads, const std::string& seed_help,
                        bool show_defaults);

/// Applies what the options set for the whole process: the threads (where > 0) and the
/// allocator's retention of freed memory (cleared in `s` where the C library does not take it).
void apply_process_options(TrainSettings& s, int threads);

/// The process's peak resident set so far, loading included, in MiB.
double peak_rss_mib();

/// Restarts the kernel's peak-RSS count (VmHWM, and ru_maxrss with it) from the current RSS,
/// after handing freed heap back to the system, so that the peak read later is that of what
/// follows (the training steps with the models resident) and not of loading. False where /proc
/// does not allow it.
bool reset_peak_rss();

/// VmHWM of /proc/self/status in MiB: the peak RSS since reset_peak_rss().
double peak_rss_since_reset_mib();

/// Opens --json's file now, so that a bad path fails before the long run; none where `path` is
/// empty.
std::ofstream open_json(const std::string& path);

/// The settings both benches write: `s`, the threads, `precision` as given and the clock.
nlohmann::json settings_json(const TrainSettings& s, const std::string& precision);

/// Writes the results (machine, `settings`, peak RSS, `cases`) to `file` and says so; nothing
/// where `path` is empty.
void write_results(std::ofstream& file, const std::string& path, const nlohmann::json& settings,
                   const nlohmann::json& cases);

}  // namespace tlora::bench
