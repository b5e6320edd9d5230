#include "tlora/text/tokenizer.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdio>
#include <utility>

#include "tlora/text/unicode.h"

namespace tlora::text {
namespace {

bool is_continuation_byte(char c) { return (static_cast<unsigned char>(c) & 0xc0) == 0x80; }

// Start of the code point that ends at byte `end` of valid UTF-8 `text` (end > 0).
size_t previous_start(std::string_view text, size_t end) {
  size_t begin = end - 1;
  while (begin > 0 && is_continuation_byte(text[begin])) --begin;
  return begin;
}

char32_t code_point_before(std::string_view text, size_t end) {
  size_t begin = previous_start(text, end);
  return next_code_point(text, begin);
}

// Start of the whitespace run that ends `text` (Hugging Face's `\s*$`).
size_t trailing_space_start(std::string_view text) {
  size_t end = text.size();
  while (end > 0 && unicode::is_whitespace(code_point_before(text, end))) {
    end = previous_start(text, end);
  }
  return end;
}

// Length of the whitespace run that starts `text` (`^\s*`).
size_t leading_space_length(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t next = pos;
    if (!unicode::is_whitespace(next_code_point(text, next))) break;
    pos = next;
  }
  return pos;
}

void check_utf8(std::string_view text) {
  const size_t bad = find_invalid_utf8(text);
  if (bad == std::string_view::npos) return;
  char byte[8];
  std::snprintf(byte, sizeof byte, "0x%02x", static_cast<unsigned char>(text[bad]));
  TORCH_CHECK(false, "tokenizer: the text is not valid UTF-8 (byte ", byte, " at offset ", bad,
              "); tlora::text::replace_invalid_utf8 decodes it as Python's errors=\"replace\" "
              "does, which is what Hugging Face tokenizers see");
}

// Hugging Face's truncate_encodings (tokenizers/src/utils/truncation.rs), without overflow.
void truncate_pair(Encoding& first, Encoding* second, size_t max_length,
                   const TruncationOptions& options) {
  const bool left = options.direction == Side::Left;
  if (max_length == 0) {
    first.truncate(0, left);
    if (second) second->truncate(0, left);
    return;
  }
  const size_t total = first.size() + (second ? second->size() : 0);
  if (total <= max_length) return;
  const size_t to_remove = total - max_length;
  if (options.strategy == TruncationStrategy::LongestFirst) {
    if (!second) {
      first.truncate(max_length, left);
      return;
    }
    size_t n1 = first.size(), n2 = second->size();
    const bool swap = n1 > n2;
    if (swap) std::swap(n1, n2);
    n2 = n1 > max_length ? n1 : std::max(n1, max_length - n1);
    if (n1 + n2 > max_length) {
      n1 = max_length / 2;
      n2 = n1 + max_length % 2;
    }
    if (swap) std::swap(n1, n2);
    first.truncate(n1, left);
    second->truncate(n2, left);
    return;
  }
  const bool only_first = options.strategy == TruncationStrategy::OnlyFirst;
  TORCH_CHECK(only_first || second,
              "tokenizer: truncation strategy OnlySecond needs a pair, and the single sequence "
              "of ",
              total, " tokens exceeds max_length");
  Encoding& target = only_first ? first : *second;
  TORCH_CHECK(target.size() > to_remove, "tokenizer: the ", only_first ? "first" : "second",
              " sequence (", target.size(), " tokens) is too short to remove the ", to_remove,
              " tokens that max_length requires");
  target.truncate(target.size() - to_remove, left);
}

PostProcessorTemplate::Piece sequence_piece(int sequence, int64_t type_id) {
  return {sequence, type_id, {}, {}};
}

PostProcessorTemplate::Piece special_piece(const std::string& token, int64_t id, int64_t type_id) {
  return {-1, type_id, {id}, {token}};
}

}  // namespace

PostProcessorTemplate PostProcessorTemplate::none() {
  return {{sequence_piece(0, 0)}, {sequence_piece(0, 0), sequence_piece(1, 1)}};
}

PostProcessorTemplate PostProcessorTemplate::bert(const std::string& cls, int64_t cls_id,
                                                  const std::string& sep, int64_t sep_id) {
  return {{special_piece(cls, cls_id, 0), sequence_piece(0, 0), special_piece(sep, sep_id, 0)},
          {special_piece(cls, cls_id, 0), sequence_piece(0, 0), special_piece(sep, sep_id, 0),
           sequence_piece(1, 1), special_piece(sep, sep_id, 1)}};
}

PostProcessorTemplate PostProcessorTemplate::roberta(const std::string& cls, int64_t cls_id,
                                                     const std::string& sep, int64_t sep_id) {
  return {{special_piece(cls, cls_id, 0), sequence_piece(0, 0), special_piece(sep, sep_id, 0)},
          {special_piece(cls, cls_id, 0), sequence_piece(0, 0), special_piece(sep, sep_id, 0),
           special_piece(sep, sep_id, 0), sequence_piece(1, 0), special_piece(sep, sep_id, 0)}};
}

size_t PostProcessorTemplate::added_tokens(bool is_pair) const {
  size_t n = 0;
  for (const Piece& piece : is_pair ? pair : single) n += piece.ids.size();
  return n;
}

Tokenizer::Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

void Tokenizer::set_truncation(std::optional<TruncationOptions> options) {
  truncation_ = std::move(options);
}

void Tokenizer::set_padding(std::optional<PaddingOptions> options) {
  if (options) {
    if (options->pad_token.empty()) options->pad_token = pad_token_;
    if (!options->pad_id) {
      options->pad_id = token_to_id(options->pad_token);
      TORCH_CHECK(options->pad_id.has_value(), "tokenizer: the pad token '", options->pad_token,
                  "' is not in the vocabulary; set PaddingOptions::pad_token or pad_id");
    }
  }
  padding_ = std::move(options);
}

void Tokenizer::add_tokens(std::span<const AddedToken> tokens) {
  for (const AddedToken& token : tokens) {
    if (token.content.empty()) continue;  // as Hugging Face: an empty token is ignored
    const auto existing = added_by_content_.find(token.content);
    if (existing != added_by_content_.end()) {
      AddedToken& old = added_[existing->second];
      const int64_t id = token.id.value_or(*old.id);
      added_by_id_.erase(*old.id);
      old = token;
      old.id = id;
      added_by_id_[id] = existing->second;
      continue;
    }
    AddedToken added = token;
    if (!added.id) added.id = model_token_to_id(token.content);
    if (!added.id) {
      // Hugging Face's choice: the vocabulary size, or one past the largest added id above it.
      auto next = static_cast<int64_t>(model_vocab_size());
      for (const AddedToken& t : added_) next = std::max(next, *t.id + 1);
      added.id = next;
    }
    added_by_content_.emplace(added.content, added_.size());
    added_by_id_[*added.id] = added_.size();
    added_.push_back(std::move(added));
  }
  rebuild_matchers();
}

void Tokenizer::set_post_processor(PostProcessorTemplate post_processor) {
  for (const auto* pieces : {&post_processor.single, &post_processor.pair}) {
    for (const auto& piece : *pieces) {
      TORCH_CHECK(
          piece.sequence >= -1 && piece.sequence <= 1 && piece.ids.size() == piece.tokens.size(),
          "tokenizer: a post-processor piece needs sequence -1, 0 or 1 and one token per id");
    }
  }
  post_ = std::move(post_processor);
}

std::optional<int64_t> Tokenizer::token_to_id(std::string_view token) const {
  if (const auto it = added_by_content_.find(token); it != added_by_content_.end()) {
    return added_[it->second].id;
  }
  return model_token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int64_t id) const {
  if (const auto it = added_by_id_.find(id); it != added_by_id_.end()) {
    return added_[it->second].content;
  }
  if (const std::string* token = model_id_to_token(id)) return *token;
  return std::nullopt;
}

size_t Tokenizer::vocab_size(bool with_added_tokens) const {
  size_t n = model_vocab_size();
  if (with_added_tokens) {
    for (const AddedToken& t : added_) n += model_token_to_id(t.content) ? 0 : 1;
  }
  return n;
}

void Tokenizer::rebuild_matchers() {
  raw_matcher_ = Matcher{};
  normalized_matcher_ = Matcher{};
  std::string buffer;
  // Special tokens first, as Hugging Face orders its tries (only equal contents could tie).
  for (const bool special : {true, false}) {
    for (size_t i = 0; i < added_.size(); ++i) {
      const AddedToken& token = added_[i];
      if (token.special != special) continue;
      Matcher& m = token.normalized ? normalized_matcher_ : raw_matcher_;
      const std::string pattern =
          token.normalized ? std::string(normalize(token.content, buffer)) : token.content;
      if (pattern.empty()) continue;
      m.patterns.push_back(pattern);
      m.token_of.push_back(i);
    }
  }
  for (Matcher* m : {&raw_matcher_, &normalized_matcher_}) {
    for (uint32_t p = 0; p < m->patterns.size(); ++p) {
      m->by_first_byte[static_cast<unsigned char>(m->patterns[p][0])].push_back(p);
    }
    for (auto& bucket : m->by_first_byte) {
      std::stable_sort(bucket.begin(), bucket.end(), [m](uint32_t a, uint32_t b) {
        return m->patterns[a].size() > m->patterns[b].size();
      });
    }
  }
}

// Hugging Face's AddedVocabulary::find_matches: the pieces of `text` that are added tokens,
// after the single_word, lstrip and rstrip rules. `out` gets them in order; the text between
// them is what the model sees.
void Tokenizer::find_matches(std::string_view text, const Matcher& matcher,
                             std::vector<Match>& out) const {
  out.clear();
  if (matcher.empty()) return;
  size_t start_offset = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    // The leftmost position where a pattern starts, and the longest pattern there.
    size_t begin = pos, length = 0, pattern = 0;
    for (; begin < text.size(); ++begin) {
      for (const uint32_t p : matcher.by_first_byte[static_cast<unsigned char>(text[begin])]) {
        if (text.substr(begin, matcher.patterns[p].size()) == matcher.patterns[p]) {
          length = matcher.patterns[p].size();
          pattern = p;
          break;
        }
      }
      if (length) break;
    }
    if (length == 0) break;
    size_t start = begin, stop = begin + length;
    pos = stop;
    const size_t index = matcher.token_of[pattern];
    const AddedToken& token = added_[index];
    if (token.single_word) {
      const bool space_before =
          start == 0 || !unicode::is_word_char(code_point_before(text, start));
      size_t after = stop;
      const bool space_after =
          stop == text.size() || !unicode::is_word_char(next_code_point(text, after));
      if (!space_before || !space_after) continue;
    }
    if (token.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), start_offset);
    if (token.rstrip) stop += leading_space_length(text.substr(stop));
    out.push_back({start, stop, index});
    start_offset = stop;
  }
}

void Tokenizer::encode_normalized_piece(std::string_view piece, Encoding& out) const {
  thread_local std::string buffer;
  const std::string_view normalized = normalize(piece, buffer);
  if (normalized.empty()) return;
  if (normalized_matcher_.empty()) {
    tokenize(normalized, out);
    return;
  }
  std::vector<Match> matches;
  find_matches(normalized, normalized_matcher_, matches);
  size_t offset = 0;
  for (const Match& m : matches) {
    if (offset < m.begin) tokenize(normalized.substr(offset, m.begin - offset), out);
    out.ids.push_back(*added_[m.token].id);
    out.tokens.push_back(added_[m.token].content);
    offset = std::max(offset, m.end);
  }
  if (offset < normalized.size()) tokenize(normalized.substr(offset), out);
}

Encoding Tokenizer::encode_sequence(std::string_view text) const {
  check_utf8(text);
  Encoding out;
  std::vector<Match> matches;
  find_matches(text, raw_matcher_, matches);
  size_t offset = 0;
  for (const Match& m : matches) {
    if (offset < m.begin) encode_normalized_piece(text.substr(offset, m.begin - offset), out);
    out.ids.push_back(*added_[m.token].id);
    out.tokens.push_back(added_[m.token].content);
    offset = std::max(offset, m.end);
  }
  if (offset < text.size()) encode_normalized_piece(text.substr(offset), out);
  return out;
}

Encoding Tokenizer::finish(Encoding first, std::optional<Encoding> second,
                           bool add_special_tokens) const {
  const bool is_pair = second.has_value();
  if (truncation_) {
    const size_t added = add_special_tokens ? post_.added_tokens(is_pair) : 0;
    TORCH_CHECK(truncation_->max_length >= added, "tokenizer: max_length ", truncation_->max_length,
                " leaves no room for the ", added, " special tokens of a ",
                is_pair ? "pair" : "single sequence");
    truncate_pair(first, second ? &*second : nullptr, truncation_->max_length - added,
                  *truncation_);
  }
  Encoding out;
  const size_t capacity =
      first.size() + (second ? second->size() : 0) + post_.added_tokens(is_pair);
  out.ids.reserve(capacity);
  out.tokens.reserve(capacity);
  out.type_ids.reserve(capacity);
  out.special_tokens_mask.reserve(capacity);
  for (const PostProcessorTemplate::Piece& piece : is_pair ? post_.pair : post_.single) {
    if (piece.sequence < 0) {
      if (!add_special_tokens) continue;
      out.ids.insert(out.ids.end(), piece.ids.begin(), piece.ids.end());
      out.tokens.insert(out.tokens.end(), piece.tokens.begin(), piece.tokens.end());
      out.type_ids.insert(out.type_ids.end(), piece.ids.size(), piece.type_id);
      out.special_tokens_mask.insert(out.special_tokens_mask.end(), piece.ids.size(), 1);
      continue;
    }
    if (piece.sequence == 1 && !is_pair) continue;
    Encoding& seq = piece.sequence == 0 ? first : *second;
    out.ids.insert(out.ids.end(), seq.ids.begin(), seq.ids.end());
    out.tokens.insert(out.tokens.end(), std::make_move_iterator(seq.tokens.begin()),
                      std::make_move_iterator(seq.tokens.end()));
    out.type_ids.insert(out.type_ids.end(), seq.ids.size(), piece.type_id);
    out.special_tokens_mask.insert(out.special_tokens_mask.end(), seq.ids.size(), 0);
  }
  out.attention_mask.assign(out.ids.size(), 1);
  return out;
}

Encoding Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  Encoding out = finish(encode_sequence(text), std::nullopt, add_special_tokens);
  if (padding_) pad_encodings({&out, 1}, *padding_);
  return out;
}

Encoding Tokenizer::encode_pair(std::string_view first, std::string_view second,
                                bool add_special_tokens) const {
  Encoding out = finish(encode_sequence(first), encode_sequence(second), add_special_tokens);
  if (padding_) pad_encodings({&out, 1}, *padding_);
  return out;
}

std::vector<Encoding> Tokenizer::encode_batch(std::span<const std::string> texts,
                                              bool add_special_tokens) const {
  std::vector<Encoding> out(texts.size());
  at::parallel_for(0, static_cast<int64_t>(texts.size()), 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      out[i] = finish(encode_sequence(texts[i]), std::nullopt, add_special_tokens);
    }
  });
  if (padding_) pad_encodings(out, *padding_);
  return out;
}

std::vector<Encoding> Tokenizer::encode_batch(std::span<const std::string> firsts,
                                              std::span<const std::string> seconds,
                                              bool add_special_tokens) const {
  TORCH_CHECK(firsts.size() == seconds.size(), "tokenizer: encode_batch got ", firsts.size(),
              " first and ", seconds.size(), " second sequences");
  std::vector<Encoding> out(firsts.size());
  at::parallel_for(0, static_cast<int64_t>(firsts.size()), 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      out[i] = finish(encode_sequence(firsts[i]), encode_sequence(seconds[i]), add_special_tokens);
    }
  });
  if (padding_) pad_encodings(out, *padding_);
  return out;
}

}  // namespace tlora::text
