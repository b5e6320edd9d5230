// Byte-level BPE (GPT-2, RoBERTa) as Hugging Face runs it: the ByteLevel pre-tokenizer (GPT-2's
// split pattern, then every byte mapped to a printable character) and BPE merges by rank.
#pragma once

#include "tlora/export.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tlora/text/tokenizer.h"

#include <span>

TLORA_API_BEGIN
namespace tlora::gguf {
class File;
}

namespace tlora::text {

/// The pre-tokenizer and model options of a byte-level BPE tokenizer.
struct BPEOptions {
  /// Prepend a space to each piece of text that does not start with one (so the first word is
  /// encoded like the others).
  bool add_prefix_space = false;
  /// Split with GPT-2's pattern (contractions, letters, numbers, other, whitespace) first.
  bool use_regex = true;
  /// Before that, cut every numeric character (\p{N}) out on its own: Hugging Face's
  /// Digits(individual_digits=true) and llama.cpp's "smollm" pre-tokenizer.
  bool split_digits = false;
  /// Token for bytes whose character is not in the vocabulary; unset: such bytes are dropped,
  /// as Hugging Face does.
  std::optional<std::string> unk_token;
  /// Merge consecutive unknown tokens into one.
  bool fuse_unk = false;
  /// A word that is a vocabulary entry is taken whole, without merges (Llama 3 style).
  bool ignore_merges = false;
  /// Words (of fewer than 256 bytes) whose merges are remembered.
  size_t cache_capacity = 10000;
};

/// The options of transformers' RobertaTokenizer for a vocab.json and merges.txt.
struct RobertaOptions {
  /// add_prefix_space.
  bool add_prefix_space = false;
  /// The beginning-of-sequence token (added as a special token).
  std::string bos_token = "<s>";
  /// The end-of-sequence token (added as a special token).
  std::string eos_token = "</s>";
  /// The separator, after each sequence.
  std::string sep_token = "</s>";
  /// The classifier token, first.
  std::string cls_token = "<s>";
  /// The unknown token (only a special token: RoBERTa's BPE has no unknown bytes).
  std::string unk_token = "<unk>";
  /// The padding token.
  std::string pad_token = "<pad>";
  /// The mask token.
  std::string mask_token = "<mask>";
};

/// A byte-level BPE tokenizer (GPT-2, RoBERTa, ...).
class ByteLevelBPETokenizer final : public Tokenizer {
 public:
  /// A tokenizer over `vocab` and `merges` (in rank order; the byte-level strings of their two
  /// tokens, which with their concatenation must be in `vocab`) with no added tokens and no
  /// post-processor; the factories below add RoBERTa's.
  ByteLevelBPETokenizer(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges,
                        BPEOptions options = {});
  /// Moves the tokenizer, with its cache.
  ByteLevelBPETokenizer(ByteLevelBPETokenizer&&) noexcept;
  /// Moves the tokenizer, with its cache.
  ByteLevelBPETokenizer& operator=(ByteLevelBPETokenizer&&) noexcept;
  ~ByteLevelBPETokenizer() override;

  /// What transformers' RobertaTokenizer(vocab_file, merges_file, ...) builds: the vocabulary,
  /// the merges (one "a b" per line, "#version" lines skipped), RoBERTa's special tokens and
  /// "<s> A </s></s> B </s>".
  static ByteLevelBPETokenizer from_files(const std::filesystem::path& vocab_json,
                                          const std::filesystem::path& merges_txt,
                                          const RobertaOptions& options = {});
  /// A Hugging Face tokenizer.json with a BPE model, no normalizer and the ByteLevel
  /// pre-tokenizer; its added tokens, post-processor, truncation and padding are applied as
  /// tokenizers.Tokenizer.from_file applies them.
  static ByteLevelBPETokenizer from_tokenizer_json(const std::filesystem::path& tokenizer_json);

  /// The tokenizer of a GGUF file whose tokenizer.ggml.model is "gpt2" and whose pre-tokenizer
  /// (tokenizer.ggml.pre) is "gpt2", "default" or "smollm": its tokens, merges, and its control
  /// and user-defined tokens as added tokens, matched in the text as llama.cpp does with
  /// parse_special. No post-processor: add BOS yourself where tokenizer.ggml.add_bos_token asks.
  static ByteLevelBPETokenizer from_gguf(const gguf::File& file);

  /// The text of `ids`: each token's bytes (an added token's content, a vocabulary token's
  /// byte-level characters mapped back to bytes), concatenated; added special tokens left out
  /// with `skip_special_tokens`. Invalid UTF-8 (a cut multi-byte character) is kept as bytes.
  std::string decode(std::span<const int64_t> ids, bool skip_special_tokens = false) const;
  /// The bytes of one token (empty for an unknown id).
  std::string token_bytes(int64_t id) const;

  /// The options.
  const BPEOptions& options() const { return options_; }

  /// The printable character GPT-2 maps byte `b` to (U+0100 + n for bytes that are not).
  static char32_t byte_to_char(unsigned char b);

 protected:
  /// No normalizer: `text` itself.
  std::string_view normalize(std::string_view text, std::string& buffer) const override;
  /// The ByteLevel pre-tokenizer, then BPE on each word.
  void tokenize(std::string_view normalized, Encoding& out) const override;
  /// The vocabulary's id of `token`.
  std::optional<int64_t> model_token_to_id(std::string_view token) const override;
  /// The vocabulary's token of `id`.
  const std::string* model_id_to_token(int64_t id) const override;
  /// The vocabulary size.
  size_t model_vocab_size() const override { return vocab_.size(); }

 private:
  struct Cache;
  struct MergeTable;

  void merge_word(std::string_view word, std::vector<int64_t>& ids) const;
  void append_word(std::string_view word, Encoding& out) const;

  BPEOptions options_;
  Vocab vocab_;
  std::unordered_map<int64_t, std::string> tokens_;
  std::unique_ptr<MergeTable> merges_;
  std::unique_ptr<Cache> cache_;
  std::array<int64_t, 256> byte_ids_{};  // id of each byte's character, -1 if not in the vocabulary
  std::optional<int64_t> unk_id_;
};

}  // namespace tlora::text
TLORA_API_END
