// Training precision: float32, bfloat16 mixed precision as torch.autocast gives it, or bfloat16
// throughout.
#pragma once

#include "tlora/export.h"

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

#include <string>
#include <string_view>
#include <vector>

namespace torch::nn {
class Module;
}

TLORA_API_BEGIN
namespace tlora {

/// How a model trains and evaluates.
enum class Precision {
  /// Everything in float32.
  Float32,
  /// Matrix products in bfloat16 with float32 accumulation, under LibTorch's autocast policy
  /// (losses and the residual stream in float32); the frozen base in bfloat16, trainable
  /// parameters and optimizer state in float32.
  BFloat16Mixed,
  /// The whole model, trainable parameters included, cast to bfloat16.
  BFloat16,
};

/// "fp32", "bf16-mixed" or "bf16".
std::string_view to_string(Precision precision);
/// The precision named by `name` (as to_string writes it); an error naming the choices otherwise.
Precision parse_precision(std::string_view name);

/// The bfloat16 matrix instructions of this CPU, as LibTorch's cpuinfo names them ("amx_bf16",
/// "avx512_bf16"); empty when it has none, where bfloat16 products are emulated and slower than
/// float32.
std::vector<std::string> cpu_bf16_instructions();

/// The precision that trains fastest without losing accuracy on `device`: bf16-mixed on CUDA and
/// on CPUs with bfloat16 matrix instructions, fp32 elsewhere.
Precision default_precision(c10::DeviceType device);

/// Turns LibTorch's autocast on for `device` with `dtype` while it lives (as `torch.autocast`
/// does in Python) and restores the previous state after; nests. The library's own ops (the
/// tri-linear map, attention) follow the same policy. Autocast is thread-local: hold the guard
/// in the thread that runs the forward pass; run backward after it, as with torch.autocast.
class AutocastGuard {
 public:
  explicit AutocastGuard(c10::DeviceType device, c10::ScalarType dtype = c10::kBFloat16,
                         bool enabled = true);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  c10::DeviceType device_;
  bool was_enabled_;
  c10::ScalarType was_dtype_;
};

/// Casts the frozen matrices of `model` to `dtype`, in place: every floating-point parameter
/// that does not require grad and every floating-point buffer with two or more dimensions
/// (linear weights, embeddings), outside adapters. Trainable parameters, adapters (their
/// projections are small, and a checkpoint holds one dtype), biases and normalisation weights
/// keep their dtype. Returns the number of tensors cast.
int64_t cast_frozen_matrices_(torch::nn::Module& model, c10::ScalarType dtype);

}  // namespace tlora
TLORA_API_END
