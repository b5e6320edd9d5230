// Tokenizing GLUE examples and forming padded batches.
#include "tlora/glue/batching.h"

#include "tlora/core/philox.h"
#include "tlora/core/random.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace tlora::glue {
namespace {

// Fisher–Yates with Philox draws: the same permutation on every machine and standard library
// (std::shuffle's algorithm is implementation-defined).
void shuffle(std::vector<int64_t>& items, uint64_t seed, uint64_t stream) {
  for (size_t i = items.size(); i > 1; --i) {
    const philox::Block w = philox::draw(seed, stream, i);
    const uint64_t r = (static_cast<uint64_t>(w[0]) << 32) | w[1];
    std::swap(items[i - 1], items[r % i]);
  }
}

// How many batches one length-sorted window holds, as in transformers' LengthGroupedSampler.
constexpr int64_t kBatchesPerWindow = 50;

}  // namespace

bool Features::labelled() const {
  return std::none_of(labels.begin(), labels.end(), [](double v) { return std::isnan(v); });
}

Features tokenize(std::span<const Example> examples, text::Tokenizer& tokenizer,
                  int64_t max_length) {
  TORCH_CHECK(max_length > 0, "glue::tokenize: max_length must be positive, got ", max_length);
  text::TruncationOptions truncation;
  truncation.max_length = static_cast<size_t>(max_length);
  std::vector<std::string> firsts, seconds;
  firsts.reserve(examples.size());
  const bool pairs = !examples.empty() && examples.front().text_b.has_value();
  for (const Example& e : examples) {
    TORCH_CHECK(e.text_b.has_value() == pairs, "glue::tokenize: example at line ", e.line,
                " mixes single texts and pairs");
    firsts.push_back(e.text_a);
    if (pairs) seconds.push_back(*e.text_b);
  }
  tokenizer.set_truncation(truncation);
  tokenizer.set_padding(std::nullopt);
  std::vector<text::Encoding> encodings =
      pairs ? tokenizer.encode_batch(firsts, seconds) : tokenizer.encode_batch(firsts);

  Features f;
  f.input_ids.reserve(examples.size());
  for (size_t i = 0; i < examples.size(); ++i) {
    f.input_ids.push_back(std::move(encodings[i].ids));
    f.token_type_ids.push_back(std::move(encodings[i].type_ids));
    f.labels.push_back(examples[i].label.value_or(std::numeric_limits<double>::quiet_NaN()));
    f.lines.push_back(examples[i].line);
  }
  return f;
}

std::vector<int64_t> lengths(const Features& features) {
  std::vector<int64_t> out;
  out.reserve(features.input_ids.size());
  for (const auto& ids : features.input_ids) out.push_back(static_cast<int64_t>(ids.size()));
  return out;
}

Batch collate(const Features& features, std::span<const int64_t> indices, int64_t pad_id,
              bool regression) {
  TORCH_CHECK(!indices.empty(), "glue::collate: empty batch");
  int64_t longest = 0;
  for (int64_t i : indices) {
    TORCH_CHECK(i >= 0 && i < features.size(), "glue::collate: index ", i, " out of range for ",
                features.size(), " examples");
    longest = std::max<int64_t>(longest, static_cast<int64_t>(features.input_ids[i].size()));
  }
  const auto rows = static_cast<int64_t>(indices.size());
  Batch b;
  b.indices.assign(indices.begin(), indices.end());
  b.input_ids = at::full({rows, longest}, pad_id, at::kLong);
  b.attention_mask = at::zeros({rows, longest}, at::kLong);
  b.token_type_ids = at::zeros({rows, longest}, at::kLong);
  auto* ids = b.input_ids.data_ptr<int64_t>();
  auto* mask = b.attention_mask.data_ptr<int64_t>();
  auto* types = b.token_type_ids.data_ptr<int64_t>();
  bool labelled = true;
  for (int64_t r = 0; r < rows; ++r) {
    const auto& src = features.input_ids[indices[r]];
    const auto& src_types = features.token_type_ids[indices[r]];
    std::copy(src.begin(), src.end(), ids + r * longest);
    std::copy(src_types.begin(), src_types.end(), types + r * longest);
    std::fill_n(mask + r * longest, src.size(), 1);
    b.tokens += static_cast<int64_t>(src.size());
    labelled = labelled && !std::isnan(features.labels[indices[r]]);
  }
  if (labelled) {
    if (regression) {
      b.labels = at::empty({rows}, at::kFloat);
      auto* out = b.labels.data_ptr<float>();
      for (int64_t r = 0; r < rows; ++r) out[r] = static_cast<float>(features.labels[indices[r]]);
    } else {
      b.labels = at::empty({rows}, at::kLong);
      auto* out = b.labels.data_ptr<int64_t>();
      for (int64_t r = 0; r < rows; ++r) out[r] = static_cast<int64_t>(features.labels[indices[r]]);
    }
  }
  return b;
}

std::vector<std::vector<int64_t>> train_batches(std::span<const int64_t> lengths,
                                                const BatchingOptions& options, int64_t epoch) {
  TORCH_CHECK(options.batch_size > 0, "glue::train_batches: batch_size must be positive, got ",
              options.batch_size);
  TORCH_CHECK(epoch >= 0, "glue::train_batches: epoch must be >= 0, got ", epoch);
  const uint64_t stream = stream_id("glue/train_batches/epoch/" + std::to_string(epoch));
  std::vector<int64_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  shuffle(order, options.seed, stream);
  if (options.group_by_length) {
    const auto window = static_cast<size_t>(options.batch_size * kBatchesPerWindow);
    for (size_t start = 0; start < order.size(); start += window) {
      const auto end = order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), start + window));
      std::stable_sort(order.begin() + static_cast<std::ptrdiff_t>(start), end,
                       [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
    }
  }
  std::vector<std::vector<int64_t>> batches;
  for (size_t start = 0; start < order.size(); start += static_cast<size_t>(options.batch_size)) {
    const size_t end = std::min(order.size(), start + static_cast<size_t>(options.batch_size));
    batches.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(start),
                         order.begin() + static_cast<std::ptrdiff_t>(end));
  }
  if (options.group_by_length) {
    std::vector<int64_t> perm(batches.size());
    std::iota(perm.begin(), perm.end(), 0);
    shuffle(perm, options.seed, stream ^ 0x9E3779B97F4A7C15ull);
    std::vector<std::vector<int64_t>> shuffled;
    shuffled.reserve(batches.size());
    for (int64_t i : perm) shuffled.push_back(std::move(batches[i]));
    batches = std::move(shuffled);
  }
  return batches;
}

std::vector<std::vector<int64_t>> eval_batches(std::span<const int64_t> lengths,
                                               int64_t batch_size) {
  TORCH_CHECK(batch_size > 0, "glue::eval_batches: batch_size must be positive, got ", batch_size);
  std::vector<int64_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
  std::vector<std::vector<int64_t>> batches;
  for (size_t start = 0; start < order.size(); start += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(order.size(), start + static_cast<size_t>(batch_size));
    batches.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(start),
                         order.begin() + static_cast<std::ptrdiff_t>(end));
  }
  return batches;
}

}  // namespace tlora::glue
