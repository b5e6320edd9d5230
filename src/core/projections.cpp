#include "tlora/core/projections.h"

#include "tlora/core/random.h"

#include <c10/util/Exception.h>

#include <cmath>
#include <string>

namespace tlora {
namespace {

// Makes the rows of `m` (k×n float64 on the CPU, k ≤ n) orthonormal by modified Gram–Schmidt and
// scales them to `norm`. Plain loops rather than LAPACK's QR: the projections may be regenerated
// from the seed on another machine, and a library QR can differ there in the last bits.
void orthonormalize_rows(at::Tensor& m, double norm, std::string_view what) {
  const int64_t k = m.size(0), n = m.size(1);
  double* d = m.data_ptr<double>();
  for (int64_t i = 0; i < k; ++i) {
    double* row = d + i * n;
    for (int64_t j = 0; j < i; ++j) {
      const double* prev = d + j * n;
      double dot = 0;
      for (int64_t t = 0; t < n; ++t) dot += row[t] * prev[t];
      for (int64_t t = 0; t < n; ++t) row[t] -= dot * prev[t];
    }
    double sq = 0;
    for (int64_t t = 0; t < n; ++t) sq += row[t] * row[t];
    TORCH_CHECK(sq > 0, "draw_projections: ", what, " has a vanishing Gaussian draw; use another seed");
    const double inv = 1.0 / std::sqrt(sq);
    for (int64_t t = 0; t < n; ++t) row[t] *= inv;
  }
  m.mul_(norm);
}

}  // namespace

std::string_view to_string(InitScheme scheme) {
  switch (scheme) {
    case InitScheme::Paper: return "paper";
    case InitScheme::Unit: return "unit";
    case InitScheme::Orthonormal: return "orthonormal";
  }
  return "unknown";
}

InitScheme init_scheme_from_string(std::string_view name) {
  for (const InitScheme scheme : kInitSchemes) {
    if (to_string(scheme) == name) return scheme;
  }
  std::string accepted;
  for (const InitScheme scheme : kInitSchemes) accepted += (accepted.empty() ? "" : ", ") + std::string(to_string(scheme));
  TORCH_CHECK(false, "unknown init scheme \"", name, "\"; expected one of ", accepted);
}

Projections draw_projections(int64_t in_features, int64_t out_features, int64_t rank,
                             InitScheme scheme, uint64_t seed, std::string_view name,
                             const at::TensorOptions& options) {
  const bool unit = scheme == InitScheme::Unit;
  const double std_down =
      unit ? 1.0 / std::sqrt(static_cast<double>(in_features)) : 1.0 / std::sqrt(3.0 * rank);
  const double std_up =
      unit ? 1.0 / std::sqrt(static_cast<double>(rank)) : 1.0 / std::sqrt(3.0 * out_features);
  const std::string base(name);
  const auto dtype = options.dtype().toScalarType();
  if (scheme != InitScheme::Orthonormal) {
    return Projections{
        philox_normal({rank, in_features}, std_down, seed, stream_id(base + "/down"), dtype)
            .to(options.device()),
        philox_normal({out_features, rank}, std_up, seed, stream_id(base + "/up"), dtype)
            .to(options.device())};
  }
  TORCH_CHECK(rank <= in_features && rank <= out_features, "draw_projections: '", base,
              "': orthonormal projections need rank ≤ in and ≤ out, got rank ", rank, " for ",
              in_features, "→", out_features);
  at::Tensor down = philox_normal({rank, in_features}, 1.0, seed, stream_id(base + "/down"), at::kDouble);
  // B's columns are orthonormalised as the rows of Bᵀ, drawn in B's own element order.
  at::Tensor up_t =
      philox_normal({out_features, rank}, 1.0, seed, stream_id(base + "/up"), at::kDouble).t().contiguous();
  orthonormalize_rows(down, std_down * std::sqrt(static_cast<double>(in_features)), base + "/down");
  orthonormalize_rows(up_t, std_up * std::sqrt(static_cast<double>(out_features)), base + "/up");
  return Projections{down.to(options.device(), dtype), up_t.t().contiguous().to(options.device(), dtype)};
}

}  // namespace tlora
