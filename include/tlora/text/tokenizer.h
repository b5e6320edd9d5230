// The tokenizer pipeline of Hugging Face's `tokenizers` library (0.23.3), which transformers'
// fast tokenizers run: added (special) tokens are cut out of the raw text, the rest is
// normalized, pre-tokenized into words and split into subword ids by the model, then truncated,
// wrapped in special tokens by the post-processor and padded. Subclasses supply the
// normalizer, pre-tokenizer and model: WordPieceTokenizer (BERT) and ByteLevelBPETokenizer
// (GPT-2, RoBERTa).
#pragma once

#include "tlora/export.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tlora/text/encoding.h"

TLORA_API_BEGIN
namespace tlora::text {

/// Hash for string maps looked up by std::string_view without a temporary std::string.
struct StringHash {
  /// Enables heterogeneous lookup.
  using is_transparent = void;
  /// The hash of `s`, equal for std::string and std::string_view.
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

/// Token → id, looked up by std::string_view.
using Vocab = std::unordered_map<std::string, int64_t, StringHash, std::equal_to<>>;

/// A token cut out of the text before normalization and the model (Hugging Face's AddedToken):
/// special tokens such as [CLS] or <mask>, or user-added words.
struct AddedToken {
  /// The text that is matched.
  std::string content;
  /// Its id; unset: its id in the model's vocabulary if it has one, else the next free id.
  std::optional<int64_t> id;
  /// A special token (the post-processor's [CLS], [SEP], ...).
  bool special = true;
  /// Match only where no word character (Unicode \w) touches it on either side.
  bool single_word = false;
  /// Also swallow the whitespace on its left.
  bool lstrip = false;
  /// Also swallow the whitespace on its right.
  bool rstrip = false;
  /// Match against the normalized text (with its normalized content) instead of the raw text.
  bool normalized = false;
};

/// What the post-processor puts around the sequences: Hugging Face's TemplateProcessing, which
/// also expresses BertProcessing, RobertaProcessing and no post-processor at all.
struct PostProcessorTemplate {
  /// One item of a template: a sequence ($A, $B) or a special token, with its type id.
  struct Piece {
    /// 0 for $A, 1 for $B, -1 for a special token.
    int sequence = -1;
    /// Type id of the piece's tokens.
    int64_t type_id = 0;
    /// The special token's ids (usually one).
    std::vector<int64_t> ids;
    /// The special token's strings, one per id.
    std::vector<std::string> tokens;
  };
  /// The template of a single sequence.
  std::vector<Piece> single;
  /// The template of a pair.
  std::vector<Piece> pair;

  /// No post-processing: "$A:0" and "$A:0 $B:1" (what a tokenizer without one does).
  static PostProcessorTemplate none();
  /// "[CLS]:0 $A:0 [SEP]:0" and "[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1".
  static PostProcessorTemplate bert(const std::string& cls, int64_t cls_id, const std::string& sep,
                                    int64_t sep_id);
  /// "<s> $A </s>" and "<s> $A </s> </s> $B </s>", every type id 0.
  static PostProcessorTemplate roberta(const std::string& cls, int64_t cls_id,
                                       const std::string& sep, int64_t sep_id);
  /// Number of special-token ids the template adds.
  size_t added_tokens(bool is_pair) const;
};

/// The common pipeline. Encoding is const and thread-safe; the setters are not safe while
/// another thread encodes. Errors (invalid UTF-8, impossible truncation) are c10::Error.
class Tokenizer {
 public:
  virtual ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  /// Encodes one text (valid UTF-8; see replace_invalid_utf8), truncated and padded as set.
  Encoding encode(std::string_view text, bool add_special_tokens = true) const;
  /// Encodes a pair of texts as one input (`[CLS] A [SEP] B [SEP]`, `<s> A </s></s> B </s>`).
  Encoding encode_pair(std::string_view first, std::string_view second,
                       bool add_special_tokens = true) const;
  /// Encodes texts in parallel (at::parallel_for); padding applies to the whole batch.
  std::vector<Encoding> encode_batch(std::span<const std::string> texts,
                                     bool add_special_tokens = true) const;
  /// Encodes the pairs (firsts[i], seconds[i]) in parallel; the spans must have equal sizes.
  std::vector<Encoding> encode_batch(std::span<const std::string> firsts,
                                     std::span<const std::string> seconds,
                                     bool add_special_tokens = true) const;

  /// Enables (or, with nullopt, disables) truncation.
  void set_truncation(std::optional<TruncationOptions> options);
  /// The truncation in effect, if any.
  const std::optional<TruncationOptions>& truncation() const { return truncation_; }
  /// Enables (or, with nullopt, disables) padding; resolves the pad token and id, refusing a
  /// token that is not in the vocabulary.
  void set_padding(std::optional<PaddingOptions> options);
  /// The padding in effect (pad token and id resolved), if any.
  const std::optional<PaddingOptions>& padding() const { return padding_; }
  /// The pad token used when PaddingOptions::pad_token is empty.
  const std::string& pad_token() const { return pad_token_; }
  /// Sets the pad token used when PaddingOptions::pad_token is empty.
  void set_pad_token(std::string token) { pad_token_ = std::move(token); }

  /// Adds tokens to cut out of the text (Hugging Face's add_tokens / add_special_tokens): ids
  /// are resolved as AddedToken::id says; a content that is already added is updated.
  void add_tokens(std::span<const AddedToken> tokens);
  /// The added tokens, in the order they were added.
  const std::vector<AddedToken>& added_tokens() const { return added_; }
  /// Replaces the post-processor.
  void set_post_processor(PostProcessorTemplate post_processor);
  /// The post-processor.
  const PostProcessorTemplate& post_processor() const { return post_; }
  /// Number of special tokens the post-processor adds to a single sequence or a pair.
  size_t num_special_tokens_to_add(bool is_pair) const { return post_.added_tokens(is_pair); }

  /// The id of `token` (added tokens first, then the model's vocabulary).
  std::optional<int64_t> token_to_id(std::string_view token) const;
  /// The token of `id` (added tokens first, then the model's vocabulary).
  std::optional<std::string> id_to_token(int64_t id) const;
  /// Size of the model's vocabulary, plus the added tokens that are not in it.
  size_t vocab_size(bool with_added_tokens = true) const;

 protected:
  /// An empty pipeline: no added tokens, no post-processing, truncation or padding.
  Tokenizer();
  /// Moves the pipeline's state (subclasses are movable, not copyable).
  Tokenizer(Tokenizer&&) noexcept;
  /// Moves the pipeline's state.
  Tokenizer& operator=(Tokenizer&&) noexcept;

  /// The normalizer: returns `text` itself or a view of `buffer` holding the normalized text.
  virtual std::string_view normalize(std::string_view text, std::string& buffer) const = 0;
  /// Pre-tokenizes a normalized piece of text (free of added tokens) and appends its model
  /// tokens (ids and strings) to `out`.
  virtual void tokenize(std::string_view normalized, Encoding& out) const = 0;
  /// The model's id of `token`.
  virtual std::optional<int64_t> model_token_to_id(std::string_view token) const = 0;
  /// The model's token of `id`.
  virtual const std::string* model_id_to_token(int64_t id) const = 0;
  /// Size of the model's vocabulary.
  virtual size_t model_vocab_size() const = 0;

 private:
  // Leftmost-longest matching of added-token contents (Hugging Face uses Aho-Corasick).
  struct Matcher {
    std::vector<std::string> patterns;                     // contents to find
    std::vector<size_t> token_of;                          // pattern -> index in added_
    std::array<std::vector<uint32_t>, 256> by_first_byte;  // patterns, longest first
    bool empty() const { return patterns.empty(); }
  };
  struct Match {
    size_t begin, end, token;
  };

  void rebuild_matchers();
  void find_matches(std::string_view text, const Matcher& matcher, std::vector<Match>& out) const;
  void encode_normalized_piece(std::string_view piece, Encoding& out) const;
  Encoding encode_sequence(std::string_view text) const;
  Encoding finish(Encoding first, std::optional<Encoding> second, bool add_special_tokens) const;

  std::vector<AddedToken> added_;
  std::unordered_map<std::string, size_t, StringHash, std::equal_to<>> added_by_content_;
  std::unordered_map<int64_t, size_t> added_by_id_;
  Matcher raw_matcher_, normalized_matcher_;
  PostProcessorTemplate post_ = PostProcessorTemplate::none();
  std::optional<TruncationOptions> truncation_;
  std::optional<PaddingOptions> padding_;
  std::string pad_token_ = "[PAD]";
};

/// Loads a tokenizer.json, picking the class from its model type (WordPiece or BPE).
std::unique_ptr<Tokenizer> load_tokenizer_json(const std::filesystem::path& tokenizer_json);

/// Loads the tokenizer of a model folder: tokenizer.json if present, else vocab.txt (a BERT
/// WordPiece vocabulary; tokenizer_config.json's do_lower_case, strip_accents,
/// tokenize_chinese_chars and special tokens are honoured), else vocab.json + merges.txt (a
/// RoBERTa byte-level BPE; add_prefix_space and special tokens from tokenizer_config.json).
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& model_dir);

}  // namespace tlora::text
TLORA_API_END
