// Resumable tlora-sft runs: a checkpoint every --checkpoint-every optimizer steps and at each
// epoch end, from which --resume continues bit-identically, and the stop requests (SIGTERM,
// SIGINT, the tests' fault hook) that end a run at a step boundary.
#pragma once

#include "tlora/adapters/adapter.h"
#include "tlora/train/optimizer_state.h"
#include "tlora/train/train_state.h"

#include <nlohmann/json.hpp>
#include <torch/optim/adamw.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sft {

/// Exit code of a run stopped by SIGTERM or SIGINT after saving a checkpoint (128 + SIGTERM).
inline constexpr int kExitInterrupted = 143;

/// What a resumed run needs, besides the tensors and the TrainState, to report what an
/// uninterrupted run would.
struct RunRecord {
  /// Validation accuracy of the greedy answers before fine-tuning, when there is validation.
  std::optional<double> accuracy_before;
  /// Batches whose loss was not finite, in the whole run and in the epoch in progress.
  int64_t skipped_batches = 0, epoch_skipped_batches = 0;
  /// One object per finished epoch (its step, train loss and validation loss).
  nlohmann::json epochs = nlohmann::json::array();
};

/// What a checkpoint saves and restores of the model and the optimizer.
struct Trainee {
  /// The trainable parameters by name, as the optimizer holds them.
  const tlora::train::NamedParameters& parameters;
  torch::optim::AdamW& optimizer;
  /// The adapters whose dropout counters must carry on.
  std::vector<std::shared_ptr<tlora::AdapterImpl>> adapters;
};

/// `<output-dir>/checkpoint`. Each save writes its tensor and record files under new names (the
/// position in the run is part of them), then replaces trainer_state.json atomically, and only
/// then removes the previous files: a kill at any moment leaves one complete checkpoint.
class Checkpoint {
 public:
  explicit Checkpoint(const std::string& output_dir);

  /// Whether a checkpoint has been completed.
  bool exists() const;
  /// Saves the parameters, the AdamW state, the default CPU generator and the dropout counters
  /// (recorded into `state`), and `record`.
  void save(const Trainee& trainee, tlora::train::TrainState& state, const RunRecord& record) const;
  /// Where the checkpointed run stands; refuses a run that had another trajectory digest.
  tlora::train::TrainState read_state(const std::string& digest) const;
  /// Restores what save wrote with `state` into `trainee` and the default CPU generator, and
  /// returns the record.
  RunRecord restore(const Trainee& trainee, const tlora::train::TrainState& state) const;
  const std::string& dir() const { return dir_; }

 private:
  std::string output_dir_, dir_, state_file_;
};

/// Whether anything exists at `path` (POSIX stat: std::filesystem's operations are unsafe in
/// binaries that link LibTorch, see examples/glue/files.h).
bool path_exists(const std::string& path);

}  // namespace sft
