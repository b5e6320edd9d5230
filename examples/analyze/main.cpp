// tlora-analyze: what one or two trained adapter checkpoints learned, measured on their updates
// ΔW (norms, spectra, effective ranks, entry statistics) and, for two checkpoints on one base,
// how alike their updates are (cosine, principal angles). Writes JSON; see README.md.
#include "base_model.h"
#include "report.h"

#include "tlora/analysis/adapter_analysis.h"
#include "tlora/io/atomic_file.h"
#include "tlora/io/checkpoint.h"
#include "tlora/adapters/adaptable_linear.h"
#include "tlora/models/loading.h"
#include "tlora/models/packaged.h"
#include "tlora/version.h"

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

struct Config {
  std::vector<std::string> adapters;
  std::string model_dir;
  std::string output;
  tlora::AnalysisOptions analysis;
  int64_t max_values = 1024;
};

// The adapters are loaded under these names, whatever they were saved as.
constexpr const char* kNames[] = {"a", "b"};

// --model-dir, else the checkpoint's base_model_name_or_path when it is a model folder here,
// else the default model.
fs::path model_dir_for(const Config& config, const tlora::CheckpointInfo& first) {
  if (!config.model_dir.empty()) return config.model_dir;
  if (!first.base_model.empty() && std::ifstream(fs::path(first.base_model) / "config.json")) return first.base_model;
  return tlora::models::default_model_dir();
}

json analyze(const Config& config) {
  std::vector<fs::path> dirs(config.adapters.begin(), config.adapters.end());
  std::vector<tlora::CheckpointInfo> infos;
  for (const fs::path& dir : dirs) infos.push_back(tlora::read_checkpoint_info(dir));
  if (infos.size() == 2) tlora::check_same_base(infos[0], dirs[0].string(), infos[1], dirs[1].string());

  const fs::path model_dir = model_dir_for(config, infos.front());
  const auto model = build_base_model(model_dir, dirs);
  json out;
  out["tool"] = "tlora-analyze";
  out["tlora_version"] = tlora::kVersion;
  out["model_dir"] = model_dir.string();
  out["options"] = {{"rank_tolerance", config.analysis.rank_tolerance}, {"top_k", config.analysis.top_k},
                    {"max_values", config.max_values}};
  out["adapters"] = json::array();
  const auto named = model->named_modules("", /*include_self=*/false);
  for (size_t i = 0; i < dirs.size(); ++i) {
    tlora::LoadAdapterOptions load;
    load.adapter_name = kNames[i];
    // Refuses modules the base lacks and, through base_checksum, layers of another base.
    tlora::load_adapter(*model, dirs[i], load);
    json layers = json::array();
    for (const tlora::LayerAnalysis& layer : tlora::analyze_adapter(*model, kNames[i], config.analysis)) {
      const auto host = named[layer.path]->as<tlora::AdaptableLinearImpl>();
      layers.push_back(layer_json(layer, *host->adapter(kNames[i]), config.max_values));
    }
    const bool verified = std::ranges::all_of(infos[i].modules, [](const auto& m) { return !m.base_checksum.empty(); });
    out["adapters"].push_back({{"dir", dirs[i].string()},
                               {"adapter_name", infos[i].adapter_name},
                               {"kind", tlora::to_string(infos[i].kind)},
                               {"base_model", infos[i].base_model},
                               {"base_verified", verified},
                               {"layers", std::move(layers)}});
  }
  if (dirs.size() == 2) {
    json layers = json::array();
    for (const tlora::LayerComparison& c : tlora::compare_adapters(*model, kNames[0], kNames[1], config.analysis)) {
      layers.push_back(comparison_json(c));
    }
    out["comparison"] = {{"adapters", {0, 1}}, {"layers", std::move(layers)}};
  }
  return out;
}

// A few lines for the terminal; the JSON has everything.
void print_summary(const json& report) {
  for (const json& adapter : report["adapters"]) {
    double alpha_min = 1e300, alpha_max = -1e300, relative = 0;
    for (const json& layer : adapter["layers"]) {
      alpha_min = std::min(alpha_min, layer["alpha"].get<double>());
      alpha_max = std::max(alpha_max, layer["alpha"].get<double>());
      relative += layer["relative_delta"].get<double>();
    }
    const size_t n = adapter["layers"].size();
    fmt::print("{} ({}): {} layers, alpha in [{:.4g}, {:.4g}], mean |dW|/|W0| {:.3g}\n",
               adapter["dir"].get<std::string>(), adapter["kind"].get<std::string>(), n, alpha_min, alpha_max,
               relative / static_cast<double>(n));
  }
  if (report.contains("comparison")) {
    double cosine = 0;
    const json& layers = report["comparison"]["layers"];
    for (const json& layer : layers) cosine += layer["cosine"].is_null() ? 0.0 : layer["cosine"].get<double>();
    fmt::print("comparison: {} shared layers, mean cos(dW_a, dW_b) {:.4f}\n", layers.size(),
               cosine / static_cast<double>(layers.size()));
  }
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  CLI::App app{"tlora-analyze: measure what adapter checkpoints learned, on their updates dW, and write JSON"};
  app.add_option("--adapter", config.adapters,
                 "An adapter checkpoint directory (adapter_config.json + adapter_model.safetensors); give it "
                 "twice to also compare two adapters trained on the same base")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--model-dir", config.model_dir,
                 "Hugging Face folder of the base model (default: the checkpoint's base_model_name_or_path "
                 "when that is a folder, else $TLORA_MODEL_DIR or the installed MiniLM)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--top-k", config.analysis.top_k,
                 "Compare the top-k left and right singular subspaces of the two updates")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--rank-tolerance", config.analysis.rank_tolerance,
                 "numerical_rank counts singular values above this fraction of the largest")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--max-values", config.max_values,
                 "Write the entries of trainable tensors of at most this many entries (for histograms)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--output", config.output, "The JSON file to write")->required();
  CLI11_PARSE(app, argc, argv);
  if (config.adapters.size() > 2) {
    std::fprintf(stderr, "tlora-analyze: --adapter given %zu times; give one checkpoint, or two to compare\n",
                 config.adapters.size());
    return 2;
  }
  try {
    const json report = analyze(config);
    tlora::write_file_atomically(config.output, report.dump(1) + "\n");
    print_summary(report);
    fmt::print("wrote {}\n", config.output);
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "tlora-analyze: %s\n", e.what_without_backtrace());
    return 1;
  }
  return 0;
}
