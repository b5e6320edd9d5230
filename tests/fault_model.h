// The checkpoints the fault-injection tests write: version k of a small TLoRA-adapted encoder,
// its trainable tensors drawn from seed k, built the same way in the test and in the writer
// process it kills (checkpoint_writer.cpp).
#pragma once

#include "tiny_model.h"
#include "tlora/io/checkpoint.h"
#include "tlora/adapters/inject.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cstdint>

namespace tlora::testing {

/// The base model every version adapts (hidden 128, so a save takes a few writes).
inline TinyEncoder fault_base_model() {
  at::manual_seed(5);
  return TinyEncoder(/*layers=*/2, /*hidden=*/128);
}

/// Version `version`: q and v adapted (rank 32, projections stored), every trainable tensor
/// moved by noise drawn from the version.
inline TinyEncoder fault_model(int64_t version) {
  TinyEncoder model = fault_base_model();
  InjectConfig config;
  config.adapter.rank = 32;
  config.adapter.seed = 7;
  config.target_modules = {"query", "value"};
  config.modules_to_save = {"classifier"};
  inject(*model, config);
  at::manual_seed(1000 + static_cast<uint64_t>(version));
  c10::NoGradGuard no_grad;
  for (auto& p : model->parameters()) {
    if (p.requires_grad()) p.add_(at::randn_like(p));
  }
  return model;
}

/// What the versions are saved with.
inline SaveAdapterOptions fault_save_options() {
  SaveAdapterOptions options;
  options.modules_to_save = {"classifier"};
  return options;
}

}  // namespace tlora::testing
