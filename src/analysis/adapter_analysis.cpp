#include "tlora/analysis/adapter_analysis.h"

#include "tlora/adapters/host.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/linalg_matrix_norm.h>
#include <c10/util/Exception.h>
#include <c10/util/StringUtil.h>

#include <algorithm>
#include <map>

namespace tlora {
namespace {

// Singular values below this fraction of the largest are float32 round-off, not directions the
// adapter learned: subspaces are compared only on the directions above it.
constexpr double kNegligible = 1e-6;

double spectral_norm(const at::Tensor& m) { return at::linalg_matrix_norm(m, 2).item<double>(); }

// The hosts of `model` that have an adapter called `name`, with their paths, in module order.
std::vector<std::pair<std::string, std::shared_ptr<AdapterHost>>> hosts_with(const torch::nn::Module& model,
                                                                              const std::string& name) {
  auto out = adapter_hosts(model);
  std::erase_if(out, [&](const auto& item) { return !item.second->adapter(name); });
  return out;
}

}  // namespace

LayerAnalysis analyze_layer(const std::string& path, const AdapterImpl& adapter, const at::Tensor& base_weight,
                            const AnalysisOptions& options) {
  const FactoredDelta delta = factored_delta(adapter);
  TORCH_CHECK(base_weight.dim() == 2 && base_weight.size(0) == delta.up.size(0) &&
                  base_weight.size(1) == delta.down.size(1),
              "analyze_layer: '", path, "': the base weight is ", base_weight.sizes(), " but the adapter's ΔW is ",
              delta.up.size(0), "×", delta.down.size(1));
  LayerAnalysis a;
  a.path = path;
  a.kind = adapter.options().kind;
  a.out_features = base_weight.size(0);
  a.in_features = base_weight.size(1);
  a.rank = adapter.options().rank;
  a.alpha = delta.scale;
  a.core_fro = at::linalg_matrix_norm(delta.core, "fro").item<double>();
  a.core_spectral = spectral_norm(delta.core);
  a.up_spectral = spectral_norm(delta.up);
  a.down_spectral = spectral_norm(delta.down);
  a.singular_values = delta_svd(delta).s;
  a.delta_fro = a.singular_values.square().sum().sqrt().item<double>();
  a.base_fro = at::linalg_matrix_norm(base_weight.detach().to(at::kCPU, at::kDouble), "fro").item<double>();
  a.effective_rank = entropy_effective_rank(a.singular_values);
  a.numerical_rank = numerical_rank(a.singular_values, options.rank_tolerance);
  for (const auto& p : adapter.named_parameters(/*recurse=*/false)) {
    if (p.value().numel() > 1) a.entries.emplace_back(p.key(), entry_statistics(p.value()));
  }
  return a;
}

std::vector<LayerAnalysis> analyze_adapter(const torch::nn::Module& model, const std::string& adapter_name,
                                           const AnalysisOptions& options) {
  std::vector<LayerAnalysis> out;
  for (const auto& [path, host] : hosts_with(model, adapter_name)) {
    out.push_back(analyze_layer(path, *host->adapter(adapter_name), host->base().weight, options));
  }
  TORCH_CHECK(!out.empty(), "analyze_adapter: no module of the model has an adapter named '", adapter_name, "'");
  return out;
}

std::vector<LayerComparison> compare_adapters(const torch::nn::Module& model, const std::string& a,
                                              const std::string& b, const AnalysisOptions& options) {
  TORCH_CHECK(options.top_k >= 1, "compare_adapters: top_k must be at least 1, got ", options.top_k);
  std::vector<LayerComparison> out;
  for (const auto& [path, host] : hosts_with(model, a)) {
    if (!host->adapter(b)) continue;
    const FactoredDelta da = factored_delta(*host->adapter(a)), db = factored_delta(*host->adapter(b));
    const DeltaSVD sa = delta_svd(da), sb = delta_svd(db);
    LayerComparison c;
    c.path = path;
    c.cosine = delta_cosine(da, db);
    c.full_weight_cosine = full_weight_cosine(host->base().weight, da, db);
    c.k = std::min({options.top_k, numerical_rank(sa.s, kNegligible), numerical_rank(sb.s, kNegligible)});
    if (c.k > 0) {
      c.left_angles = principal_angles(sa.u.slice(1, 0, c.k), sb.u.slice(1, 0, c.k));
      c.right_angles = principal_angles(sa.v.slice(1, 0, c.k), sb.v.slice(1, 0, c.k));
    } else {
      // A zero update has no singular subspace to compare.
      c.left_angles = c.right_angles = at::empty({0}, at::kDouble);
    }
    out.push_back(std::move(c));
  }
  TORCH_CHECK(!out.empty(), "compare_adapters: no module of the model has both an adapter named '", a, "' and one named '",
              b, "'");
  return out;
}

void check_same_base(const CheckpointInfo& a, const std::string& label_a, const CheckpointInfo& b,
                     const std::string& label_b) {
  std::map<std::string, std::string> checksums;
  for (const CheckpointModule& m : a.modules) checksums.emplace(m.path, m.base_checksum);
  bool compared = false;
  for (const CheckpointModule& m : b.modules) {
    const auto it = checksums.find(m.path);
    if (it == checksums.end() || it->second.empty() || m.base_checksum.empty()) continue;
    TORCH_CHECK(it->second == m.base_checksum, "the checkpoints ", label_a, " and ", label_b,
                " were saved on different base models: layer '", m.path, "' has base_checksum ", it->second, " in ",
                label_a, " but ", m.base_checksum, " in ", label_b, "; compare adapters trained on the same base");
    compared = true;
  }
  TORCH_CHECK(compared || a.base_model.empty() || b.base_model.empty() || a.base_model == b.base_model,
              "the checkpoints ", label_a, " and ", label_b, " were saved on different base models ('", a.base_model,
              "' and '", b.base_model, "', and no base checksums to compare); compare adapters trained on the same base");
}

}  // namespace tlora
