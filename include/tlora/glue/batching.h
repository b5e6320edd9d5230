// GLUE examples as model inputs: tokenized once, then cut into batches padded only to their own
// longest example, in a shuffled order that is a pure function of (seed, epoch) so that a resumed
// run sees exactly the batches an uninterrupted one would.
#pragma once

#include "tlora/export.h"

#include "tlora/glue/tasks.h"
#include "tlora/text/tokenizer.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <span>
#include <vector>

TLORA_API_BEGIN
namespace tlora::glue {

/// Tokenized examples of one file.
struct Features {
  /// Token ids of each example, special tokens included, truncated to the maximum length.
  std::vector<std::vector<int64_t>> input_ids;
  /// Segment ids, parallel to input_ids.
  std::vector<std::vector<int64_t>> token_type_ids;
  /// Each example's label (class index or score); NaN for an unlabelled (test) example.
  std::vector<double> labels;
  /// The 1-based line of each example in its file.
  std::vector<int64_t> lines;

  /// Number of examples.
  int64_t size() const { return static_cast<int64_t>(input_ids.size()); }
  /// Whether every example has a label.
  bool labelled() const;
};

/// Tokenizes `examples` (pairs as pairs) with `tokenizer`, truncating each to `max_length`
/// tokens (longest-first for pairs, as Hugging Face's run_glue does). It sets the tokenizer's
/// truncation to that and turns its padding off (batches are padded by collate).
Features tokenize(std::span<const Example> examples, text::Tokenizer& tokenizer,
                  int64_t max_length);

/// One padded batch on the CPU.
struct Batch {
  /// The examples' indices into the Features.
  std::vector<int64_t> indices;
  /// [batch, length] int64 token ids, padded with the pad id to the longest example.
  at::Tensor input_ids;
  /// [batch, length] int64, 1 for tokens and 0 for padding.
  at::Tensor attention_mask;
  /// [batch, length] int64 segment ids (0 on padding).
  at::Tensor token_type_ids;
  /// [batch] labels: int64 class indices, or float scores for a regression task; undefined
  /// when an example has no label.
  at::Tensor labels;
  /// Non-padding tokens in the batch.
  int64_t tokens = 0;
};

/// Stacks the examples at `indices` into a Batch padded with `pad_id`.
Batch collate(const Features& features, std::span<const int64_t> indices, int64_t pad_id,
              bool regression);

/// How training batches are formed.
struct BatchingOptions {
  /// Examples per batch (the last batch of an epoch may be smaller).
  int64_t batch_size = 32;
  /// Group examples of similar length into the same batch, which cuts padding: the shuffled
  /// order is cut into windows of 50 batches, each window sorted by length, and the batches
  /// shuffled again (Hugging Face's LengthGroupedSampler).
  bool group_by_length = true;
  /// Seed of the shuffles.
  uint64_t seed = 0;
};

/// The batches of training epoch `epoch` (0-based) over examples of the given lengths, as lists
/// of example indices. Every example appears exactly once; the result depends only on the
/// lengths, the options and the epoch.
std::vector<std::vector<int64_t>> train_batches(std::span<const int64_t> lengths,
                                                const BatchingOptions& options, int64_t epoch);

/// Batches for evaluation: examples sorted by length (longest first) so padding is minimal;
/// the indices say where each prediction belongs.
std::vector<std::vector<int64_t>> eval_batches(std::span<const int64_t> lengths,
                                               int64_t batch_size);

/// The token count of every example of `features`.
std::vector<int64_t> lengths(const Features& features);

}  // namespace tlora::glue
TLORA_API_END
