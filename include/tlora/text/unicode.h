// UTF-8 handling and the character classes of Hugging Face's `tokenizers` library (0.23.3), which
// the tokenizers in tlora::text use. The Rust library mixes Unicode versions (its category
// tables for control characters, punctuation and nonspacing marks are older than Unicode 15,
// its GPT-2 pattern and lowercasing newer); these functions answer as it does for every code
// point, from utf8proc's data plus the differences measured against the library
// (tools/tokenizer_fixtures.py --unicode, tests/tokenizer_unicode_test.cpp).
#pragma once

#include "tlora/export.h"

#include <cstddef>
#include <string>
#include <string_view>

TLORA_API_BEGIN
namespace tlora::text {

/// Byte offset of the first byte that does not start a well-formed UTF-8 sequence (overlong
/// forms, surrogates and code points above U+10FFFF are ill-formed), or npos if `text` is valid.
size_t find_invalid_utf8(std::string_view text);

/// `text` with every ill-formed sequence replaced by U+FFFD, exactly as Python's
/// `bytes.decode("utf-8", errors="replace")` does (one U+FFFD per maximal ill-formed subpart).
/// This is what Hugging Face tokenizers see for bytes decoded that way.
std::string replace_invalid_utf8(std::string_view text);

/// Appends the UTF-8 encoding of `cp` (a scalar value) to `out`.
void append_utf8(std::string& out, char32_t cp);

/// The code point starting at byte `pos` of valid UTF-8 `text`; advances `pos` past it.
inline char32_t next_code_point(std::string_view text, size_t& pos) {
  const auto b0 = static_cast<unsigned char>(text[pos]);
  if (b0 < 0x80) {
    ++pos;
    return b0;
  }
  const auto cont = [&](size_t i) { return static_cast<char32_t>(text[pos + i]) & 0x3f; };
  char32_t cp;
  if (b0 < 0xe0) {
    cp = (static_cast<char32_t>(b0 & 0x1f) << 6) | cont(1);
    pos += 2;
  } else if (b0 < 0xf0) {
    cp = (static_cast<char32_t>(b0 & 0x0f) << 12) | (cont(1) << 6) | cont(2);
    pos += 3;
  } else {
    cp = (static_cast<char32_t>(b0 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3);
    pos += 4;
  }
  return cp;
}

namespace unicode {

/// Rust's `char::is_whitespace` (the White_Space property); also what the regex engines behind
/// `\s` in the library's patterns accept.
bool is_whitespace(char32_t cp);

/// What BertNormalizer's `clean_text` deletes: NUL, U+FFFD and the control, format, private-use
/// and surrogate categories of the library's tables, except tab, newline and carriage return.
bool is_removed_by_bert_cleaning(char32_t cp);

/// BertPreTokenizer's punctuation: ASCII punctuation or a Unicode P* category.
bool is_bert_punctuation(char32_t cp);

/// BertNormalizer's "Chinese character": the CJK Unified Ideographs blocks it lists.
bool is_chinese_char(char32_t cp);

/// A nonspacing mark (Mn), which BertNormalizer's accent stripping removes after NFD.
bool is_nonspacing_mark(char32_t cp);

/// Canonical combining class (for NFD's reordering).
int combining_class(char32_t cp);

/// Appends the full canonical decomposition of `cp` (NFD of the single code point, not yet
/// reordered against its neighbours) to `out`.
void append_decomposition(char32_t cp, std::u32string& out);

/// Appends Rust's `char::to_lowercase(cp)` (one or, for U+0130, two code points) to `out`.
void append_lowercase(char32_t cp, std::u32string& out);

/// The classes of the GPT-2 pre-tokenizer pattern: \p{L}, \p{N}, \s, and everything else.
enum class Gpt2Class : unsigned char { Letter, Number, Space, Other };

/// The class of `cp` in the GPT-2 pattern.
Gpt2Class gpt2_class(char32_t cp);

/// A word character of Rust's regex `\w` (alphabetic, marks, decimal digits, connector
/// punctuation, joiners), for added tokens that must match single words only.
bool is_word_char(char32_t cp);

}  // namespace unicode
}  // namespace tlora::text
TLORA_API_END
