// tlora-sft's command line: the options, how they are parsed, and which of them a resumed run
// must share with the run it continues.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sft {

struct Options {
  std::string model, train, validation, output_dir = "runs/sft", method = "tlora", precision = "auto", export_format;
  std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  int64_t rank = 32, epochs = 1, batch_size = 8, accumulation = 1, max_length = 256, max_examples = 0, max_validation = 200;
  double lr = 1e-2, scale = 1.0, dropout = 0.0, warmup_ratio = 0.06, weight_decay = 0.0, clip = 1.0;
  double validation_split = 0;  // share of --train held out when no --validation file is given
  bool group_by_length = true;
  bool score_before = true;
  int64_t checkpoint_every = 50;  // optimizer steps; also at every epoch end
  bool resume = false;
  uint64_t seed = 1;
  int threads = 0;
  bool split_batch = true;  // each batch as one part per thread, side by side (tlora::train::split_backward)
};

/// The options of `argv`, with --model resolved to the packaged SmolLM2 when not given. Returns
/// nullopt after printing help or a parse error, with the exit code in `exit_code`.
std::optional<Options> parse_options(int argc, char** argv, int& exit_code);

/// The options as the run's config.json records them; `precision` is the resolved one.
nlohmann::ordered_json to_json(const Options& o, const std::string& precision);

/// A digest of the settings that decide the training trajectory (data, model, method and
/// optimisation): a resume must match it. Where the run is written, how often it is
/// checkpointed, the thread count and the export format may change.
std::string trajectory_digest(const nlohmann::ordered_json& config);

}  // namespace sft
