// Where a training run stands, saved with each checkpoint so that `--resume` continues exactly
// where the run was interrupted: the position in the data, the random state, the best score.
#pragma once

#include "tlora/export.h"

#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <vector>

TLORA_API_BEGIN
namespace tlora::train {

/// Version of the trainer_state.json format written by write_train_state.
inline constexpr int kTrainStateVersion = 1;

/// The resumable state of a run, besides the model and optimizer tensors.
struct TrainState {
  /// The epoch in progress (0-based); equals the epoch count once training is complete.
  int64_t epoch = 0;
  /// Batches of that epoch already trained.
  int64_t batches_done = 0;
  /// Sum of the training losses of the batches done in the epoch in progress.
  double epoch_loss_sum = 0;
  /// Optimizer steps taken since the start of the run.
  int64_t global_step = 0;
  /// Best dev score (glue::combined_score) of a finished epoch so far, -inf before any.
  double best_score = -std::numeric_limits<double>::infinity();
  /// The epoch (1-based) that scored best_score; 0 before any.
  int64_t best_epoch = 0;
  /// Seconds spent training (evaluation excluded) and non-padding tokens trained on, so far.
  double train_seconds = 0;
  /// Non-padding tokens trained on so far.
  int64_t train_tokens = 0;
  /// State of the default CPU generator (model dropout), as at::Generator::get_state bytes.
  std::vector<uint8_t> rng_state;
  /// AdapterImpl::dropout_calls of every adapted module path.
  std::map<std::string, uint64_t> dropout_calls;
  /// A digest of the settings that must not change across a resume (task, model, method,
  /// data and optimisation settings); a resume with another one is refused.
  std::string config_digest;
};

/// The state as JSON (the trainer_state.json format).
std::string to_json(const TrainState& state);

/// Parses trainer_state.json text. Every field is checked (types, ranges, the version, the hex
/// of rng_state); `source` (e.g. the file name) prefixes any error message.
TrainState parse_train_state(std::string_view json, std::string_view source);

/// Reads and parses a trainer_state.json file.
TrainState read_train_state(const std::filesystem::path& file);

/// Writes `state` to `file` atomically.
void write_train_state(const std::filesystem::path& file, const TrainState& state);

/// The state of LibTorch's default CPU generator (it drives the model's own dropout), for
/// TrainState::rng_state.
std::vector<uint8_t> cpu_rng_state();
/// Puts back a state that cpu_rng_state returned.
void set_cpu_rng_state(const std::vector<uint8_t>& state);

}  // namespace tlora::train
TLORA_API_END
