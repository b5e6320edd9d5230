#include "tlora/adapters/inject.h"

#include "adapters/host_slot.h"
#include "adapters/method.h"
#include "adapters/in_place_host.h"

#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <optional>
#include <regex>
#include <unordered_set>

namespace tlora {
namespace {

using detail::hosts_of;
using detail::ModulePtr;

std::regex compile(const std::string& pattern, const char* what) {
  try {
    return std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    TORCH_CHECK(false, "inject: invalid ", what, " regex '", pattern, "': ", e.what());
  }
}

// PEFT's rule for name lists: the whole path, or a suffix starting after a '.'.
bool name_matches(const std::string& path, const std::string& name) {
  return path == name ||
         (path.size() > name.size() && path.ends_with(name) && path[path.size() - name.size() - 1] == '.');
}

bool any_name_matches(const std::string& path, const std::vector<std::string>& names) {
  return std::any_of(names.begin(), names.end(), [&](const auto& n) { return name_matches(path, n); });
}

// PEFT's rule for rank/alpha patterns: `(.*\.)?(pattern)` must match the whole path.
struct Override {
  std::regex regex;
  std::string pattern;
  bool used = false;
};

std::vector<Override> compile_overrides(const std::vector<std::string>& patterns, const char* what) {
  std::vector<Override> out;
  for (const auto& p : patterns) out.push_back({compile("(.*\\.)?(" + p + ")", what), p});
  return out;
}

std::optional<size_t> first_override(std::vector<Override>& overrides, const std::string& path) {
  for (size_t i = 0; i < overrides.size(); ++i) {
    if (std::regex_match(path, overrides[i].regex)) {
      overrides[i].used = true;
      return i;
    }
  }
  return std::nullopt;
}

std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// The parameters of `model`, each tensor once: a tied output head holds the embedding's weight,
// which parameters() lists under both names.
std::vector<at::Tensor> distinct_parameters(const torch::nn::Module& model) {
  std::vector<at::Tensor> out;
  std::unordered_set<const void*> seen;
  for (const auto& p : model.parameters()) {
    if (seen.insert(p.unsafeGetTensorImpl()).second) out.push_back(p);
  }
  return out;
}

// A matched layer before anything is changed.
struct Match {
  detail::HostSlot slot;
  AdapterOptions options;
};

}  // namespace

std::string trainable_summary(const torch::nn::Module& model) {
  InjectReport counts;
  for (const auto& p : distinct_parameters(model)) {
    counts.all_params += p.numel();
    counts.trainable_params += p.requires_grad() ? p.numel() : 0;
  }
  return counts.summary();
}

std::vector<at::Tensor> trainable_parameters(const torch::nn::Module& model) {
  adapter_hosts(model);  // refuses two layers whose adapters share a name (and so A and B)
  std::vector<at::Tensor> out;
  for (const auto& p : distinct_parameters(model)) {
    if (p.requires_grad()) out.push_back(p);
  }
  return out;
}

std::string InjectReport::summary() const {
  return fmt::format("trainable params: {} || all params: {} || trainable%: {:.4f}",
                     with_commas(trainable_params), with_commas(all_params),
                     all_params ? 100.0 * trainable_params / all_params : 0.0);
}

std::string InjectReport::table() const {
  std::string out;
  for (const auto& m : modules) {
    out += fmt::format("{:<48} {} {:>5}x{:<5} r={:<3} scale={:<6g} trainable={}\n", m.path,
                       to_string(kind), m.in_features, m.out_features, m.rank, m.scale,
                       with_commas(m.trainable));
  }
  for (const auto& s : saved_modules) out += fmt::format("{:<48} modules_to_save\n", s);
  return out + summary();
}

InjectReport inject(torch::nn::Module& model, const InjectConfig& config) {
  TORCH_CHECK(!config.target_modules.empty() || !config.target_regex.empty(),
              "inject: no targets given (set target_modules or target_regex)");
  TORCH_CHECK(!detail::method(config.adapter.kind).single_rank() || config.rank_pattern.empty(), "inject: ",
              config.adapter.kind.name(), " layers share tensors of one rank, so its rank cannot vary per module");
  const std::optional<std::regex> target_regex =
      config.target_regex.empty() ? std::nullopt : std::optional(compile(config.target_regex, "target"));
  const std::optional<std::regex> exclude_regex =
      config.exclude_regex.empty() ? std::nullopt : std::optional(compile(config.exclude_regex, "exclude"));
  const std::regex layers = compile(config.layers_pattern, "layers_pattern");
  std::vector<std::string> rank_keys, scale_keys;
  for (const auto& [k, v] : config.rank_pattern) rank_keys.push_back(k);
  for (const auto& [k, v] : config.scale_pattern) scale_keys.push_back(k);
  auto rank_overrides = compile_overrides(rank_keys, "rank_pattern");
  auto scale_overrides = compile_overrides(scale_keys, "scale_pattern");

  std::vector<Match> matches;
  std::vector<ModulePtr> saved;
  std::vector<std::string> saved_paths;
  std::vector<bool> save_used(config.modules_to_save.size(), false);
  {
    const auto named = model.named_modules("", /*include_self=*/false);
    for (const auto& item : named) {
      const std::string& path = item.key();
      // The adapters and host state that earlier injections added are never targets.
      if (std::dynamic_pointer_cast<AdapterImpl>(item.value()) ||
          std::dynamic_pointer_cast<detail::InPlaceHost>(item.value())) {
        continue;
      }
      for (size_t i = 0; i < config.modules_to_save.size(); ++i) {
        if (name_matches(path, config.modules_to_save[i])) {
          save_used[i] = true;
          saved.push_back(item.value());
          saved_paths.push_back(path);
        }
      }
      const bool targeted = any_name_matches(path, config.target_modules) ||
                            (target_regex && std::regex_match(path, *target_regex));
      if (!targeted || any_name_matches(path, config.exclude_modules) ||
          (exclude_regex && std::regex_match(path, *exclude_regex))) {
        continue;
      }
      if (!config.layers_to_transform.empty()) {
        std::smatch m;
        if (!std::regex_search(path, m, layers) || m.size() < 2) continue;
        const int64_t index = std::stoll(m[1].str());
        const auto& wanted = config.layers_to_transform;
        if (std::find(wanted.begin(), wanted.end(), index) == wanted.end()) continue;
      }
      Match match{detail::make_host_slot(named, path, item.value()), config.adapter};
      if (auto i = first_override(rank_overrides, path)) match.options.rank = config.rank_pattern[*i].second;
      if (auto i = first_override(scale_overrides, path)) match.options.scale = config.scale_pattern[*i].second;
      matches.push_back(std::move(match));
    }
  }

  TORCH_CHECK(!matches.empty(), "inject: no module matched the targets (target_modules=[",
              fmt::format("{}", fmt::join(config.target_modules, ", ")), "], target_regex='",
              config.target_regex, "')");
  for (const auto& o : rank_overrides) TORCH_CHECK(o.used, "inject: rank_pattern '", o.pattern, "' matched no adapted module");
  for (const auto& o : scale_overrides) TORCH_CHECK(o.used, "inject: scale_pattern '", o.pattern, "' matched no adapted module");
  for (size_t i = 0; i < save_used.size(); ++i) {
    TORCH_CHECK(save_used[i], "inject: modules_to_save entry '", config.modules_to_save[i], "' matched no module");
  }

  // Validate every match and build every adapter before the model is touched.
  std::vector<at::Tensor> weights;
  for (auto& m : matches) {
    weights.push_back(detail::host_weight(m.slot, "inject: matched module",
                                          "; narrow target_modules or add it to exclude_modules"));
    TORCH_CHECK(!m.slot.in_place || m.options.dropout == 0.0, "inject: module '", m.slot.path,
                "' is a torch::nn::Linear held by a C++ member or a container, so it is patched in place "
                "(its weight becomes W0 + ΔW, refreshed once per step), where adapter dropout cannot apply; "
                "set the adapter's dropout to 0, or build the model from tlora::AdaptableLinear");
    TORCH_CHECK(!m.slot.host || !m.slot.host->adapter(config.adapter_name), "inject: module '",
                m.slot.path, "' already has an adapter named '", config.adapter_name, "'");
  }
  int64_t max_in = 0, max_out = 0;
  for (const auto& w : weights) {
    max_in = std::max(max_in, w.size(1));
    max_out = std::max(max_out, w.size(0));
  }
  const SharedTensors shared = draw_shared_tensors(config.adapter, max_in, max_out, weights.front().options());
  std::vector<std::shared_ptr<AdapterImpl>> adapters;
  for (size_t i = 0; i < matches.size(); ++i) {
    c10::NoGradGuard no_grad;
    adapters.push_back(make_adapter(matches[i].options, matches[i].slot.path, weights[i], shared));
  }

  InjectReport report;
  report.kind = config.adapter.kind;
  report.adapter_name = config.adapter_name;
  for (size_t i = 0; i < matches.size(); ++i) {
    Match& m = matches[i];
    detail::install_host(model, m.slot)->add_adapter(config.adapter_name, adapters[i]);
    report.modules.push_back({m.slot.path, weights[i].size(1), weights[i].size(0), m.options.rank,
                              m.options.scale, adapters[i]->trainable_count()});
  }
  detail::freeze_all_but_adapters_and(model, saved);
  report.saved_modules = saved_paths;
  for (const auto& p : distinct_parameters(model)) {
    report.all_params += p.numel();
    report.trainable_params += p.requires_grad() ? p.numel() : 0;
  }
  return report;
}

void set_active_adapter(torch::nn::Module& model, const std::string& name) {
  bool found = name.empty();
  for (auto& h : hosts_of(model)) {
    if (name.empty() || h->adapter(name)) {
      h->set_active_adapter(name);
      found = true;
    }
  }
  TORCH_CHECK(found, "set_active_adapter: no module has an adapter named '", name, "'");
}

void delete_adapter(torch::nn::Module& model, const std::string& name) {
  bool found = false;
  for (auto& h : hosts_of(model)) {
    if (h->adapter(name)) {
      h->delete_adapter(name);
      found = true;
    }
  }
  TORCH_CHECK(found, "delete_adapter: no module has an adapter named '", name, "'");
}

void merge_and_unload(torch::nn::Module& model) {
  for (auto& h : hosts_of(model)) h->merge_and_unload();
}

void unload(torch::nn::Module& model) {
  for (auto& h : hosts_of(model)) h->unload();
}

DisableAdapters::DisableAdapters(torch::nn::Module& model) {
  for (auto& h : hosts_of(model)) {
    hosts_.emplace_back(h, h->adapters_enabled());
    h->set_adapters_enabled(false);
  }
}

DisableAdapters::~DisableAdapters() {
  for (auto& [host, enabled] : hosts_) host->set_adapters_enabled(enabled);
}

}  // namespace tlora
