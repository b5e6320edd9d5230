// Saving and restoring AdamW state through the validating safetensors reader and writer.
#include "tlora/train/optimizer_state.h"

#include "tlora/io/safetensors.h"

#include <ATen/ops/full.h>
#include <c10/util/Exception.h>

#include <map>
#include <set>

namespace tlora::train {
namespace {

// The optimizer's parameters, so that a name that is not one of them is refused.
std::set<const void*> optimizer_parameters(const torch::optim::Optimizer& optimizer) {
  std::set<const void*> out;
  for (const auto& group : optimizer.param_groups())
    for (const auto& p : group.params()) out.insert(p.unsafeGetTensorImpl());
  return out;
}

}  // namespace

void save_adamw_state(const torch::optim::AdamW& optimizer, const NamedParameters& parameters,
                      const std::filesystem::path& file) {
  const auto owned = optimizer_parameters(optimizer);
  std::map<std::string, at::Tensor> tensors;
  for (const auto& [name, p] : parameters) {
    TORCH_CHECK(owned.count(p.unsafeGetTensorImpl()), "save_adamw_state: parameter '", name,
                "' is not optimised by this optimizer");
    const auto it = optimizer.state().find(p.unsafeGetTensorImpl());
    if (it == optimizer.state().end()) continue;  // not stepped yet: nothing to keep
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
    tensors[name + ".exp_avg"] = s.exp_avg();
    tensors[name + ".exp_avg_sq"] = s.exp_avg_sq();
    tensors[name + ".step"] = at::full({1}, s.step(), at::kLong);
    if (s.max_exp_avg_sq().defined()) tensors[name + ".max_exp_avg_sq"] = s.max_exp_avg_sq();
  }
  safetensors::save(file, tensors, {{"format", "tlora-adamw-state"}});
}

void load_adamw_state(torch::optim::AdamW& optimizer, const NamedParameters& parameters,
                      const std::filesystem::path& file) {
  const auto owned = optimizer_parameters(optimizer);
  auto tensors = safetensors::load(file);
  std::vector<std::pair<const void*, std::unique_ptr<torch::optim::AdamWParamState>>> restored;
  size_t used = 0;
  for (const auto& [name, p] : parameters) {
    TORCH_CHECK(owned.count(p.unsafeGetTensorImpl()), "load_adamw_state: parameter '", name,
                "' is not optimised by this optimizer");
    const auto step = tensors.find(name + ".step");
    if (step == tensors.end()) continue;
    TORCH_CHECK(step->second.scalar_type() == at::kLong && step->second.numel() == 1 &&
                    step->second.item<int64_t>() > 0,
                file, ": '", step->first, "' must be one positive int64");
    auto state = std::make_unique<torch::optim::AdamWParamState>();
    state->step(step->second.item<int64_t>());
    ++used;
    for (const char* moment : {".exp_avg", ".exp_avg_sq", ".max_exp_avg_sq"}) {
      const auto it = tensors.find(name + moment);
      if (it == tensors.end()) {
        TORCH_CHECK(std::string(moment) == ".max_exp_avg_sq", file, ": '", name, moment,
                    "' is missing");
        continue;
      }
      TORCH_CHECK(it->second.sizes() == p.sizes(), file, ": '", it->first, "' has shape ",
                  it->second.sizes(), " but the parameter has ", p.sizes());
      TORCH_CHECK(it->second.scalar_type() == p.scalar_type(), file, ": '", it->first, "' is ",
                  it->second.scalar_type(), " but the parameter is ", p.scalar_type());
      at::Tensor value = it->second.to(p.device());
      ++used;
      if (std::string(moment) == ".exp_avg") state->exp_avg(value);
      else if (std::string(moment) == ".exp_avg_sq") state->exp_avg_sq(value);
      else state->max_exp_avg_sq(value);
    }
    restored.emplace_back(p.unsafeGetTensorImpl(), std::move(state));
  }
  if (used != tensors.size()) {
    std::set<std::string> known;
    for (const auto& [name, p] : parameters)
      for (const char* suffix : {".exp_avg", ".exp_avg_sq", ".max_exp_avg_sq", ".step"})
        known.insert(name + suffix);
    for (const auto& [key, t] : tensors)
      TORCH_CHECK(known.count(key), file, ": entry '", key, "' belongs to no parameter");
    TORCH_CHECK(false, file, ": moments without a step entry");
  }
  optimizer.state().clear();
  for (auto& [key, state] : restored) optimizer.state()[const_cast<void*>(key)] = std::move(state);
}

}  // namespace tlora::train
