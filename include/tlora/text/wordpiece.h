// BERT's tokenizer as Hugging Face runs it: BertNormalizer, BertPreTokenizer and greedy
// longest-match-first WordPiece.
#pragma once

#include "tlora/export.h"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "tlora/text/tokenizer.h"

TLORA_API_BEGIN
namespace tlora::text {

/// Hugging Face's BertNormalizer.
struct BertNormalizerOptions {
  /// Delete control and format characters, NUL and U+FFFD; turn every whitespace into ' '.
  bool clean_text = true;
  /// Put spaces around CJK ideographs, so each becomes a word.
  bool handle_chinese_chars = true;
  /// NFD, then delete nonspacing marks; unset: the same as `lowercase` (BERT's convention).
  std::optional<bool> strip_accents;
  /// Lowercase (Unicode, per code point).
  bool lowercase = true;
};

/// The normalizer and model of a WordPiece tokenizer.
struct WordPieceOptions {
  /// The normalizer; unset: none (the text goes to the pre-tokenizer as it is).
  std::optional<BertNormalizerOptions> normalizer = BertNormalizerOptions{};
  /// The token of words that cannot be split into vocabulary pieces (must be in the vocabulary).
  std::string unk_token = "[UNK]";
  /// Prefix of the pieces that continue a word.
  std::string continuing_subword_prefix = "##";
  /// Words with more code points than this become `unk_token` whole.
  size_t max_input_chars_per_word = 100;
};

/// The options of transformers' BertTokenizer for a vocab.txt.
struct BertOptions {
  /// do_lower_case.
  bool lowercase = true;
  /// strip_accents; unset: the same as `lowercase`.
  std::optional<bool> strip_accents;
  /// tokenize_chinese_chars.
  bool handle_chinese_chars = true;
  /// The unknown token.
  std::string unk_token = "[UNK]";
  /// The separator, after each sequence.
  std::string sep_token = "[SEP]";
  /// The padding token.
  std::string pad_token = "[PAD]";
  /// The classifier token, first.
  std::string cls_token = "[CLS]";
  /// The mask token.
  std::string mask_token = "[MASK]";
};

/// A WordPiece tokenizer (BERT, MiniLM, DistilBERT, ...).
class WordPieceTokenizer final : public Tokenizer {
 public:
  /// A tokenizer over `vocab` with no added tokens and no post-processor; the factories below
  /// add BERT's special tokens and template.
  explicit WordPieceTokenizer(Vocab vocab, WordPieceOptions options = {});
  /// Moves the tokenizer.
  WordPieceTokenizer(WordPieceTokenizer&&) noexcept;
  /// Moves the tokenizer.
  WordPieceTokenizer& operator=(WordPieceTokenizer&&) noexcept;

  /// What transformers' BertTokenizer(vocab_file, ...) builds: one token per line of `vocab_txt`
  /// (its id the line number, trailing whitespace trimmed, a later duplicate winning), BERT's
  /// five special tokens and "[CLS] A [SEP] B [SEP]".
  static WordPieceTokenizer from_vocab_txt(const std::filesystem::path& vocab_txt,
                                           const BertOptions& options = {});
  /// A Hugging Face tokenizer.json with a WordPiece model, BertNormalizer (or none) and
  /// BertPreTokenizer; its added tokens, post-processor, truncation and padding are applied
  /// as tokenizers.Tokenizer.from_file applies them.
  static WordPieceTokenizer from_tokenizer_json(const std::filesystem::path& tokenizer_json);

  /// The options.
  const WordPieceOptions& options() const { return options_; }

 protected:
  /// BertNormalizer.
  std::string_view normalize(std::string_view text, std::string& buffer) const override;
  /// BertPreTokenizer, then WordPiece on each word.
  void tokenize(std::string_view normalized, Encoding& out) const override;
  /// The vocabulary's id of `token`.
  std::optional<int64_t> model_token_to_id(std::string_view token) const override;
  /// The vocabulary's token of `id`.
  const std::string* model_id_to_token(int64_t id) const override;
  /// The vocabulary size.
  size_t model_vocab_size() const override { return vocab_.size(); }

 private:
  void word_piece(std::string_view word, Encoding& out) const;

  WordPieceOptions options_;
  bool strip_accents_ = false;
  Vocab vocab_;
  Vocab continuation_;  // "##ing" -> id, keyed by "ing"
  std::unordered_map<int64_t, std::string> tokens_;
  int64_t unk_id_ = 0;
  size_t max_piece_bytes_ = 0, max_continuation_bytes_ = 0;
};

}  // namespace tlora::text
TLORA_API_END
