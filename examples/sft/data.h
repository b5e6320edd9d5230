// tlora-sft's data: JSONL lines of {"prompt", "completion"} or {"messages": [...]}, tokenized
// with the loss on the completion (the last assistant message) only.
#pragma once

#include "tlora/text/bpe.h"
#include "tlora/text/chat_template.h"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace sft {

/// One training example: its token ids and, per position, the label (-100: no loss).
struct Example {
  std::vector<int64_t> ids;
  std::vector<int64_t> labels;
  /// The prompt's length (where the completion starts).
  size_t prompt_length = 0;
  /// The completion's text (what greedy generation should answer).
  std::string completion;
  /// "file:line", for messages.
  std::string source;
};

/// The examples of a JSONL file, at most `max_examples` (0: all), each cut to `max_length`
/// tokens. A line that is not valid JSON, lacks the fields, or has no assistant message to learn
/// is refused with its file and line. `end_of_turn` is appended to each completion and learnt,
/// so the model learns to stop (<|im_end|> where the tokenizer has it, else the EOS token).
std::vector<Example> read_jsonl(const std::string& path, const tlora::text::ByteLevelBPETokenizer& tokenizer,
                                const std::optional<tlora::text::ChatTemplate>& chat, int64_t end_of_turn,
                                int64_t max_length, int64_t max_examples);

/// Training examples and the validation examples held out from them.
struct Split {
  std::vector<Example> train, validation;
};

/// Holds out round(fraction × n) of `examples`, at most `max`, drawn with `seed` alike on every
/// machine; both parts keep the file order. Refuses a split that leaves either part empty,
/// naming --validation-split and `source`.
Split split_validation(std::vector<Example> examples, double fraction, int64_t max, uint64_t seed,
                       const std::string& source);

/// The share of padding among the tokens of `batches` (lists of indices into `lengths`), each
/// batch padded to its longest example.
double padding_fraction(std::span<const int64_t> lengths, const std::vector<std::vector<int64_t>>& batches);

}  // namespace sft
