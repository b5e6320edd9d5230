// Internal: adapting a torch::nn::Linear that cannot be replaced (a C++ member or a container
// holds it) by making its weight W0 + ΔW, a function of the active adapter's parameters.
#pragma once

#include "tlora/adapters/host.h"

#include <torch/nn/modules/linear.h>

#include <memory>
#include <string>

namespace tlora::detail {

/// The host state of a patched torch::nn::Linear, registered as its child kName. Its adapters
/// are registered in the Linear itself, as on a tlora::AdaptableLinear, so parameter names agree. The
/// Linear's registered `weight` parameter stays W0, frozen and unchanged; its `weight` member,
/// which forward() reads, becomes W0 + ΔW with a gradient edge to the adapter's parameters.
class InPlaceHost final : public torch::nn::Module, public AdapterHost {
 public:
  /// The child name under which a patched Linear holds its host.
  static constexpr const char* kName = "tlora_host";

  /// The host of `linear` at module path `path`; does not attach it (see attach_in_place_host).
  InPlaceHost(const std::shared_ptr<torch::nn::LinearImpl>& linear, std::string path);

  BaseLinear base() const override;
  void refresh() override;

 protected:
  torch::nn::Module& owner() override;
  void adapters_changed() override;

 private:
  std::shared_ptr<torch::nn::LinearImpl> linear() const;

  std::weak_ptr<torch::nn::LinearImpl> linear_;
  at::Tensor base_weight_;
  std::string path_;
};

/// Patches `linear` (at `path`) in place: registers a new InPlaceHost under it and returns it.
std::shared_ptr<InPlaceHost> attach_in_place_host(const std::shared_ptr<torch::nn::LinearImpl>& linear,
                                                  const std::string& path);

}  // namespace tlora::detail
