// AdamW's per-parameter state (step count and moments) in a safetensors file, so a resumed run
// continues with the same optimizer state as an uninterrupted one.
#pragma once

#include "tlora/export.h"

#include <ATen/core/Tensor.h>
#include <torch/optim/adamw.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

TLORA_API_BEGIN
namespace tlora::train {

/// Parameters by name, as module.named_parameters() lists them.
using NamedParameters = std::vector<std::pair<std::string, at::Tensor>>;

/// Writes the state of every parameter in `parameters` that `optimizer` has stepped
/// (`<name>.exp_avg`, `<name>.exp_avg_sq`, `<name>.step`) to `file` atomically. Throws when a
/// parameter is not one of the optimizer's.
void save_adamw_state(const torch::optim::AdamW& optimizer, const NamedParameters& parameters,
                      const std::filesystem::path& file);

/// Restores what save_adamw_state wrote into `optimizer`, whose parameters must be `parameters`
/// (the same names, shapes and dtypes). The whole file is checked before anything changes: a
/// missing, extra or misshapen entry is a c10::Error naming the file and the entry.
void load_adamw_state(torch::optim::AdamW& optimizer, const NamedParameters& parameters,
                      const std::filesystem::path& file);

}  // namespace tlora::train
TLORA_API_END
