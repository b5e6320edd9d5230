// The output of a tokenizer (one sequence or pair) and how it is truncated, padded and batched,
// with the semantics of Hugging Face's `tokenizers` library.
#pragma once

#include "tlora/export.h"

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

TLORA_API_BEGIN
namespace tlora::text {

/// One encoded sequence or pair of sequences; all vectors have the same length.
struct Encoding {
  /// Token ids.
  std::vector<int64_t> ids;
  /// Segment of each token (0 for the first sequence, 1 for the second of a BERT pair).
  std::vector<int64_t> type_ids;
  /// 1 for real tokens, 0 for padding.
  std::vector<int64_t> attention_mask;
  /// 1 for the tokens the post-processor added ([CLS], [SEP], <s>, </s>) and for padding;
  /// special tokens written in the text itself count as 0, as in Hugging Face.
  std::vector<int64_t> special_tokens_mask;
  /// The token strings (vocabulary entries: "##ing" for WordPiece, byte-level strings such as
  /// "Ġworld" for byte-level BPE).
  std::vector<std::string> tokens;

  /// Number of tokens.
  size_t size() const { return ids.size(); }
  /// Keeps `max_length` tokens from the start (or, with `from_left`, the end); no-op if shorter.
  void truncate(size_t max_length, bool from_left = false);
  /// Appends `other`'s tokens.
  void append(const Encoding& other);
};

/// Which sequence of a pair loses tokens when it does not fit.
enum class TruncationStrategy {
  /// Remove from the longer sequence first (Hugging Face's default; GLUE fine-tuning's).
  LongestFirst,
  /// Only the first sequence.
  OnlyFirst,
  /// Only the second sequence (an error for single sequences that do not fit).
  OnlySecond,
};

/// Which end tokens are removed from or padding is added to.
enum class Side { Right, Left };

/// Truncation to a maximum total length, special tokens included.
struct TruncationOptions {
  /// The maximum number of tokens of the final encoding. It must leave room for the special
  /// tokens the post-processor adds (Hugging Face silently skips truncation then; tlora throws).
  size_t max_length = 512;
  /// How a pair is shortened.
  TruncationStrategy strategy = TruncationStrategy::LongestFirst;
  /// Remove tokens from the end (Right) or the start (Left) of a sequence.
  Side direction = Side::Right;
};

/// Padding of encodings to a common length.
struct PaddingOptions {
  /// Pad to the longest encoding of the batch (`length` unset) or to `length`.
  std::optional<size_t> length;
  /// Round the padded length up to a multiple of this (0: off).
  size_t pad_to_multiple_of = 0;
  /// The padding token; empty: the tokenizer's own pad token ("[PAD]", "<pad>", ...).
  std::string pad_token;
  /// Its id; unset: looked up from `pad_token` in the vocabulary.
  std::optional<int64_t> pad_id;
  /// Type id of the padding.
  int64_t pad_type_id = 0;
  /// Pad at the end (Right) or the start (Left).
  Side direction = Side::Right;
};

/// Pads `encodings` as Hugging Face does: to `options.length` or else the longest of them, rounded
/// up to `pad_to_multiple_of`; longer ones are left as they are. Padding has attention mask 0 and
/// special-token mask 1. `options.pad_id` must be set (Tokenizer::set_padding resolves it).
void pad_encodings(std::span<Encoding> encodings, const PaddingOptions& options);

/// A batch as model inputs: int64 CPU tensors of shape [batch, length].
struct Batch {
  /// Token ids.
  at::Tensor input_ids;
  /// 1 for real tokens, 0 for padding.
  at::Tensor attention_mask;
  /// Segment ids.
  at::Tensor token_type_ids;
};

/// Stacks `encodings` (which must all have the same length: enable padding) into tensors.
Batch to_batch(std::span<const Encoding> encodings);

}  // namespace tlora::text
TLORA_API_END
