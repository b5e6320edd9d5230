#include "report.h"

#include <ATen/core/Tensor.h>

#include <vector>

namespace {

using json = nlohmann::ordered_json;

std::vector<double> to_vector(const at::Tensor& t) {
  const at::Tensor c = t.detach().to(at::kCPU, at::kDouble).contiguous().view(-1);
  return {c.const_data_ptr<double>(), c.const_data_ptr<double>() + c.numel()};
}

json statistics_json(const tlora::EntryStatistics& s) {
  return {{"count", s.count},
          {"mean", s.mean},
          {"std", s.std},
          {"skewness", s.skewness},
          {"excess_kurtosis", s.excess_kurtosis},
          {"jarque_bera", {{"statistic", s.jarque_bera}, {"p", s.jarque_bera_p}}},
          {"normaltest", {{"statistic", s.k2}, {"p", s.k2_p}, {"skew_z", s.skew_z}, {"kurtosis_z", s.kurtosis_z}}}};
}

}  // namespace

json layer_json(const tlora::LayerAnalysis& a, const tlora::AdapterImpl& adapter, int64_t max_values) {
  json entries = json::object();
  const auto parameters = adapter.named_parameters(/*recurse=*/false);
  for (const auto& [name, statistics] : a.entries) {
    json e = statistics_json(statistics);
    if (statistics.count <= max_values) e["values"] = to_vector(parameters[name]);
    entries[name] = std::move(e);
  }
  return {{"path", a.path},
          {"in_features", a.in_features},
          {"out_features", a.out_features},
          {"rank", a.rank},
          {"alpha", a.alpha},
          {"core", {{"fro", a.core_fro}, {"spectral", a.core_spectral}}},
          {"up_spectral", a.up_spectral},
          {"down_spectral", a.down_spectral},
          {"delta_fro", a.delta_fro},
          {"base_fro", a.base_fro},
          {"relative_delta", a.delta_fro / a.base_fro},
          {"singular_values", to_vector(a.singular_values)},
          {"effective_rank", a.effective_rank},
          {"numerical_rank", a.numerical_rank},
          {"entries", std::move(entries)}};
}

json comparison_json(const tlora::LayerComparison& c) {
  return {{"path", c.path},
          {"cosine", c.cosine},
          {"full_weight_cosine", c.full_weight_cosine},
          {"k", c.k},
          {"left_angles", to_vector(c.left_angles)},
          {"right_angles", to_vector(c.right_angles)}};
}
