#include "tlora/text/wordpiece.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <array>
#include <utility>

#include "tlora/text/unicode.h"

namespace tlora::text {
namespace {

bool is_continuation_byte(char c) { return (static_cast<unsigned char>(c) & 0xc0) == 0x80; }

// BertPreTokenizer's classes of ASCII characters, the common case.
enum : unsigned char { kWordChar, kSpace, kPunct };
constexpr std::array<unsigned char, 128> kAsciiClass = [] {
  std::array<unsigned char, 128> t{};
  for (int c = 9; c <= 13; ++c) t[c] = kSpace;
  t[' '] = kSpace;
  for (char c : std::string_view("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")) t[c] = kPunct;
  return t;
}();

// NFD's canonical ordering: marks with a nonzero combining class sorted stably by it.
void canonical_reorder(std::u32string& s) {
  for (size_t i = 1; i < s.size(); ++i) {
    const int c = unicode::combining_class(s[i]);
    if (c == 0) continue;
    for (size_t j = i; j > 0 && unicode::combining_class(s[j - 1]) > c; --j) {
      std::swap(s[j - 1], s[j]);
    }
  }
}

}  // namespace

WordPieceTokenizer::WordPieceTokenizer(Vocab vocab, WordPieceOptions options)
    : options_(std::move(options)), vocab_(std::move(vocab)) {
  TORCH_CHECK(!vocab_.empty(), "WordPiece: the vocabulary is empty");
  const auto unk = vocab_.find(options_.unk_token);
  TORCH_CHECK(unk != vocab_.end(), "WordPiece: the unknown token '", options_.unk_token,
              "' is not in the vocabulary");
  unk_id_ = unk->second;
  if (options_.normalizer) {
    strip_accents_ = options_.normalizer->strip_accents.value_or(options_.normalizer->lowercase);
  }
  const std::string& prefix = options_.continuing_subword_prefix;
  for (const auto& [token, id] : vocab_) {
    tokens_.emplace(id, token);
    max_piece_bytes_ = std::max(max_piece_bytes_, token.size());
    if (token.size() > prefix.size() && token.compare(0, prefix.size(), prefix) == 0) {
      continuation_[token.substr(prefix.size())] = id;
      max_continuation_bytes_ = std::max(max_continuation_bytes_, token.size() - prefix.size());
    }
  }
}

WordPieceTokenizer::WordPieceTokenizer(WordPieceTokenizer&&) noexcept = default;
WordPieceTokenizer& WordPieceTokenizer::operator=(WordPieceTokenizer&&) noexcept = default;

std::optional<int64_t> WordPieceTokenizer::model_token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  return it == vocab_.end() ? std::nullopt : std::optional<int64_t>(it->second);
}

const std::string* WordPieceTokenizer::model_id_to_token(int64_t id) const {
  const auto it = tokens_.find(id);
  return it == tokens_.end() ? nullptr : &it->second;
}

// BertNormalizer::normalize: clean, space CJK, NFD and strip marks, lowercase, in that order.
std::string_view WordPieceTokenizer::normalize(std::string_view text, std::string& buffer) const {
  if (!options_.normalizer) return text;
  const BertNormalizerOptions& n = *options_.normalizer;
  buffer.clear();
  buffer.reserve(text.size());
  if (std::all_of(text.begin(), text.end(), [](char c) { return c >= 0; })) {
    // ASCII: no CJK, no decompositions, no marks; only cleaning and case remain.
    for (const char c : text) {
      if (n.clean_text) {
        if (unicode::is_removed_by_bert_cleaning(static_cast<unsigned char>(c))) continue;
        if (c == '\t' || c == '\n' || c == '\r') {
          buffer.push_back(' ');
          continue;
        }
      }
      buffer.push_back(n.lowercase && c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c);
    }
    return buffer;
  }
  thread_local std::u32string chars, scratch;
  chars.clear();
  for (size_t pos = 0; pos < text.size();) {
    char32_t cp = next_code_point(text, pos);
    if (n.clean_text) {
      if (unicode::is_removed_by_bert_cleaning(cp)) continue;
      if (unicode::is_whitespace(cp)) cp = U' ';
    }
    if (n.handle_chinese_chars && unicode::is_chinese_char(cp)) {
      chars.push_back(U' ');
      chars.push_back(cp);
      chars.push_back(U' ');
    } else {
      chars.push_back(cp);
    }
  }
  if (strip_accents_) {
    scratch.clear();
    for (const char32_t cp : chars) unicode::append_decomposition(cp, scratch);
    canonical_reorder(scratch);
    chars.clear();
    for (const char32_t cp : scratch) {
      if (!unicode::is_nonspacing_mark(cp)) chars.push_back(cp);
    }
  }
  if (n.lowercase) {
    scratch.clear();
    for (const char32_t cp : chars) unicode::append_lowercase(cp, scratch);
    chars.swap(scratch);
  }
  for (const char32_t cp : chars) append_utf8(buffer, cp);
  return buffer;
}

// BertPreTokenizer: split on whitespace (dropped) and around each punctuation character.
void WordPieceTokenizer::tokenize(std::string_view normalized, Encoding& out) const {
  size_t word_start = std::string_view::npos;
  for (size_t pos = 0; pos < normalized.size();) {
    const size_t begin = pos;
    const char32_t cp = next_code_point(normalized, pos);
    unsigned char kind = kWordChar;
    if (cp < 0x80)
      kind = kAsciiClass[cp];
    else if (unicode::is_whitespace(cp))
      kind = kSpace;
    else if (unicode::is_bert_punctuation(cp))
      kind = kPunct;
    if (kind == kWordChar) {
      if (word_start == std::string_view::npos) word_start = begin;
      continue;
    }
    if (word_start != std::string_view::npos) {
      word_piece(normalized.substr(word_start, begin - word_start), out);
      word_start = std::string_view::npos;
    }
    if (kind == kPunct) word_piece(normalized.substr(begin, pos - begin), out);
  }
  if (word_start != std::string_view::npos) word_piece(normalized.substr(word_start), out);
}

// Greedy longest-match-first, as Hugging Face's WordPiece::tokenize: a word that cannot be
// covered by vocabulary pieces, or that is too long, becomes the unknown token whole.
void WordPieceTokenizer::word_piece(std::string_view word, Encoding& out) const {
  size_t chars = 0;
  for (const char c : word) chars += is_continuation_byte(c) ? 0 : 1;
  if (chars > options_.max_input_chars_per_word) {
    out.ids.push_back(unk_id_);
    out.tokens.push_back(options_.unk_token);
    return;
  }
  struct Piece {
    int64_t id;
    size_t begin, end;
  };
  thread_local std::vector<Piece> pieces;
  pieces.clear();
  for (size_t start = 0; start < word.size();) {
    const Vocab& map = start == 0 ? vocab_ : continuation_;
    // No vocabulary piece is longer than `limit` bytes, so shorter candidates come first.
    const size_t limit = start == 0 ? max_piece_bytes_ : max_continuation_bytes_;
    size_t end = word.size();
    if (end - start > limit) {
      end = start + limit;
      while (end > start && is_continuation_byte(word[end])) --end;
    }
    bool found = false;
    while (end > start) {
      const auto it = map.find(word.substr(start, end - start));
      if (it != map.end()) {
        pieces.push_back({it->second, start, end});
        found = true;
        break;
      }
      do --end;
      while (end > start && is_continuation_byte(word[end]));
    }
    if (!found) {
      out.ids.push_back(unk_id_);
      out.tokens.push_back(options_.unk_token);
      return;
    }
    start = end;
  }
  for (const Piece& p : pieces) {
    out.ids.push_back(p.id);
    const std::string_view text = word.substr(p.begin, p.end - p.begin);
    if (p.begin == 0) {
      out.tokens.emplace_back(text);
    } else {
      std::string token;
      token.reserve(options_.continuing_subword_prefix.size() + text.size());
      token.append(options_.continuing_subword_prefix).append(text);
      out.tokens.push_back(std::move(token));
    }
  }
}

}  // namespace tlora::text
