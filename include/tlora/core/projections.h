// The fixed projections A (down) and B (up) of TLoRA-style adapters, drawn from the library's
// generator so that they are a pure function of (seed, module name, shape, scheme).
#pragma once

#include "tlora/export.h"

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <string_view>

TLORA_API_BEGIN
namespace tlora {

/// How the fixed projections A (down) and B (up) are drawn.
enum class InitScheme {
  /// The paper's code: std 1/√(3r) for A and 1/√(3·out) for B (kaiming-normal, a=√5).
  Paper,
  /// Variance preserving: std 1/√in for A and 1/√r for B.
  Unit,
  /// Random orthonormal rows of A and columns of B (the paper's Gaussian draws, orthonormalised),
  /// scaled to the paper's expected norms: rows of A of norm √(in/(3r)), columns of B of norm
  /// 1/√3. Needs r ≤ in and r ≤ out.
  Orthonormal,
};

/// Every init scheme, in declaration order.
inline constexpr std::array kInitSchemes{InitScheme::Paper, InitScheme::Unit, InitScheme::Orthonormal};

/// Lower-case name of an init scheme ("paper", "unit", "orthonormal").
std::string_view to_string(InitScheme scheme);
/// The scheme `to_string` names `name`; throws c10::Error listing the names otherwise.
InitScheme init_scheme_from_string(std::string_view name);

/// A (r×in) and B (out×r).
struct Projections {
  /// A, r×in.
  at::Tensor down;
  /// B, out×r.
  at::Tensor up;
};

/// Draws A from stream `name + "/down"` and B from `name + "/up"` under `seed`, in the dtype and
/// on the device of `options`; the same values on every machine for every scheme.
Projections draw_projections(int64_t in_features, int64_t out_features, int64_t rank,
                             InitScheme scheme, uint64_t seed, std::string_view name,
                             const at::TensorOptions& options);

}  // namespace tlora
TLORA_API_END
