// The four adapter kinds. Internal: users create them through make_adapter / inject.
#pragma once

#include "tlora/adapters.h"

namespace tlora::detail {

/// ΔW = α·B·M·A; the math is tri_linear's, shared with TLoRALinear.
class TLoRAAdapter final : public AdapterImpl {
 public:
  TLoRAAdapter(const AdapterOptions& options, const std::string& path, const at::Tensor& weight);
  at::Tensor forward(const at::Tensor& x, const BaseLinear& base) override;
  at::Tensor delta_weight() const override;
  DeltaFactors factors() const override;
  bool buffers_regenerable() const override { return true; }

 private:
  at::Tensor down_, up_, core_, scale_;
};

/// ΔW = (alpha/r)·B·A with dropout on the input; PEFT's LoRA.
class LoRAAdapter final : public AdapterImpl {
 public:
  LoRAAdapter(const AdapterOptions& options, const std::string& path, const at::Tensor& weight);
  at::Tensor forward(const at::Tensor& x, const BaseLinear& base) override;
  at::Tensor delta_weight() const override;
  DeltaFactors factors() const override;
  bool buffers_regenerable() const override { return true; }

 private:
  at::Tensor lora_a_, lora_b_;
  double scaling_;
};

/// ΔW = diag(λ_b)·B·diag(λ_d)·A with A, B slices of projections shared by every layer.
class VeRAAdapter final : public AdapterImpl {
 public:
  VeRAAdapter(const AdapterOptions& options, const std::string& path, const at::Tensor& weight,
              const VeRAProjections& shared);
  at::Tensor forward(const at::Tensor& x, const BaseLinear& base) override;
  at::Tensor delta_weight() const override;
  DeltaFactors factors() const override;
  bool buffers_regenerable() const override { return true; }

 private:
  at::Tensor down_, up_, lambda_d_, lambda_b_;
};

/// ΔW = B·M·A with B = U_r and A = Σ_r·V_rᵀ from the SVD of W0; tri_linear with α fixed at 1.
class LoRAXSAdapter final : public AdapterImpl {
 public:
  LoRAXSAdapter(const AdapterOptions& options, const std::string& path, const at::Tensor& weight);
  at::Tensor forward(const at::Tensor& x, const BaseLinear& base) override;
  at::Tensor delta_weight() const override;
  DeltaFactors factors() const override;
  // From an SVD, whose last bits depend on the machine's LAPACK.
  bool buffers_regenerable() const override { return false; }

 private:
  at::Tensor down_, up_, core_, scale_;
};

}  // namespace tlora::detail
