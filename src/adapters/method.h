// Internal: what one adapter method brings to the library. Each method is one file under
// methods/ that defines its adapter and its Method; registry.cpp lists them. Patching,
// checkpoints, configs and analysis ask the method instead of switching on its kind.
#pragma once

#include "tlora/adapters/adapter.h"

#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace tlora::detail {

/// A number of AdapterOptions that only this method reads, saved in adapter_config.json under
/// `name` and required to agree between the layers of one checkpoint.
struct MethodOption {
  const char* name;
  double AdapterOptions::*member;
};

class Method {
 public:
  virtual ~Method() = default;
  /// The kind this method implements.
  virtual AdapterKind kind() const = 0;
  /// The adapter for the layer at `path` with base weight `weight`; `shared` is what
  /// draw_shared returned for the model (empty for methods that share nothing). Options are
  /// already checked against the layer.
  virtual std::shared_ptr<AdapterImpl> make(const AdapterOptions& options, const std::string& path,
                                            const at::Tensor& weight, const SharedTensors& shared) const = 0;
  /// Shapes of the tensors the adapters of one model share, by name, for layers up to
  /// max_in×max_out; each adapter holds the leading slice that fits its layer as the buffer of
  /// that name. None by default.
  virtual std::map<std::string, std::vector<int64_t>> shared_shapes(int64_t max_in, int64_t max_out,
                                                                    const AdapterOptions& options) const {
    return {};
  }
  /// The shared tensors themselves, drawn from the options' seed.
  virtual SharedTensors draw_shared(int64_t max_in, int64_t max_out, const AdapterOptions& options,
                                    const at::TensorOptions& tensor_options) const {
    return {};
  }
  /// Whether all layers must have one rank (a shared tensor fixes it).
  virtual bool single_rank() const { return false; }
  /// Whether a checkpoint may leave the fixed tensors out and regenerate them from the seed
  /// (not when they come from the base weights' SVD, whose last bits depend on LAPACK).
  virtual bool regenerable() const { return true; }
  /// The options only this method reads.
  virtual std::span<const MethodOption> own_options() const { return {}; }
};

/// The Method of an adapter that shares nothing between layers: Adapter(options, path, weight)
/// builds it.
template <typename Adapter>
class LayerLocalMethod final : public Method {
 public:
  /// `regenerable`: see Method::regenerable.
  explicit LayerLocalMethod(AdapterKind kind, bool regenerable = true) : kind_(kind), regenerable_(regenerable) {}
  AdapterKind kind() const override { return kind_; }
  std::shared_ptr<AdapterImpl> make(const AdapterOptions& options, const std::string& path, const at::Tensor& weight,
                                    const SharedTensors&) const override {
    return std::make_shared<Adapter>(options, path, weight);
  }
  bool regenerable() const override { return regenerable_; }

 private:
  AdapterKind kind_;
  bool regenerable_;
};

/// The method of `kind`; throws naming the registered kinds when there is none.
const Method& method(AdapterKind kind);
/// Every registered method, in the registry's order.
std::span<const Method* const> methods();

}  // namespace tlora::detail
