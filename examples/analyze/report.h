// The JSON that tlora-analyze writes (documented in README.md next to this file).
#pragma once

#include "tlora/analysis/adapter_analysis.h"

#include <nlohmann/json.hpp>

#include <cstdint>

/// One layer's measures; the entries of trainable tensors with at most `max_values` entries are
/// included as "values" (for histograms). NaN is written as null.
nlohmann::ordered_json layer_json(const tlora::LayerAnalysis& layer, const tlora::AdapterImpl& adapter,
                                  int64_t max_values);

/// One layer's comparison of two adapters.
nlohmann::ordered_json comparison_json(const tlora::LayerComparison& comparison);
