// tlora-glue's settings: every command-line option, the paper preset, and the resolved
// configuration that is written to the output directory.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace glue_app {

// Every setting of a run; the defaults are what `tlora-glue --task X` uses.
struct RunConfig {
  std::string task;
  std::string model_dir;   // empty: tlora::models::default_model_dir()
  std::string data_dir;    // empty: $GLUE_DIR, then ../shared/data/glue
  std::string output_dir;  // empty: runs/<task>-<method>-seed<seed>
  std::string method = "tlora";
  std::vector<std::string> targets{"query", "value"};
  int64_t rank = 32;
  double scale = 1.0;  // TLoRA's initial α; LoRA's lora_alpha
  double dropout = 0.5;
  std::string init = "paper";  // TLoRA: how A and B are drawn (tlora::InitScheme's names)
  bool train_scale = true;     // TLoRA: α trained, or fixed at --scale
  double lr = 1e-3;
  double head_lr = 1e-3;
  int64_t epochs = 3;
  int64_t batch_size = 32;
  int64_t eval_batch_size = 64;
  int64_t max_seq_length = 128;
  double warmup_ratio = 0.06;
  double weight_decay = 0.01;
  double max_grad_norm = 1.0;  // 0: no clipping
  uint64_t seed = 42;
  std::string device = "cpu";
  std::string precision = "auto";  // auto, fp32, bf16-mixed, bf16 or fp16 (cuda); finalize resolves auto
  int64_t max_train_samples = 0;  // 0: all
  int64_t max_eval_samples = 0;   // 0: all
  double validation_split = 0;     // share of train held out to pick the best epoch; 0: dev picks
  int64_t validation_max = 1000;
  bool group_by_length = true;
  int64_t save_steps = 200;  // also at every epoch end
  int threads = 0;           // 0: LibTorch's default
  bool split_batch = true;   // CPU: each batch as one part per thread, side by side (tlora::train::split_backward)
  std::string preset;        // "" or "paper"
  bool resume = false;
  bool eval_only = false;
  std::string adapter_dir;
  std::string eval_file;
  std::string predictions_file;
};

// Registers every option of RunConfig on `app`.
void add_options(CLI::App& app, RunConfig& config);

// Applies --preset (values the user did not give on the command line) and checks the
// combination; throws CLI::ValidationError with the option at fault.
void finalize(const CLI::App& app, RunConfig& config);

// The configuration as JSON (config.json in the output directory).
nlohmann::ordered_json to_json(const RunConfig& config);

// A digest of the settings that decide the training trajectory; a resume must match it.
std::string trajectory_digest(const RunConfig& config);

}  // namespace glue_app
