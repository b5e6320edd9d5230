#include "tlora/core/projections.h"

#include "tlora/core/random.h"

#include <cmath>
#include <string>

namespace tlora {

std::string_view to_string(InitScheme scheme) {
  return scheme == InitScheme::Paper ? "paper" : "unit";
}

Projections draw_projections(int64_t in_features, int64_t out_features, int64_t rank,
                             InitScheme scheme, uint64_t seed, std::string_view name,
                             const at::TensorOptions& options) {
  const bool paper = scheme == InitScheme::Paper;
  const double std_down =
      paper ? 1.0 / std::sqrt(3.0 * rank) : 1.0 / std::sqrt(static_cast<double>(in_features));
  const double std_up =
      paper ? 1.0 / std::sqrt(3.0 * out_features) : 1.0 / std::sqrt(static_cast<double>(rank));
  const std::string base(name);
  const auto dtype = options.dtype().toScalarType();
  return Projections{
      philox_normal({rank, in_features}, std_down, seed, stream_id(base + "/down"), dtype)
          .to(options.device()),
      philox_normal({out_features, rank}, std_up, seed, stream_id(base + "/up"), dtype)
          .to(options.device())};
}

}  // namespace tlora
