#include "tlora/text/unicode.h"

#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <iterator>

namespace tlora::text {
namespace {

// The differences between utf8proc 2.8 (Unicode 15.0) and tokenizers 0.23.3, measured for every
// code point by tests/tokenizer_unicode_test.cpp against tools/tokenizer_fixtures.py --unicode.
// Each table states the library's answer inside its ranges; utf8proc's data holds elsewhere.

struct Range {
  char32_t first, last;
};

template <typename T>
struct ValuedRange {
  char32_t first, last;
  T value;
};

// Format characters that the library's older tables do not know, so cleaning keeps them.
constexpr Range kKeptByCleaning[] = {
    {0x890, 0x891},
    {0x8E2, 0x8E2},
    {0x110CD, 0x110CD},
    {0x13430, 0x1343F},
};

// Punctuation added to Unicode after the library's tables, and two characters that were
// punctuation there and are not now.
constexpr ValuedRange<bool> kPunctuation[] = {
    {0x61D, 0x61D, false},     {0x9FD, 0x9FD, false},     {0xA76, 0xA76, false},
    {0xC77, 0xC77, false},     {0xC84, 0xC84, false},     {0x166D, 0x166D, true},
    {0x1B7D, 0x1B7E, false},   {0x2E43, 0x2E4F, false},   {0x2E52, 0x2E5D, false},
    {0x10EAD, 0x10EAD, false}, {0x10F55, 0x10F59, false}, {0x10F86, 0x10F89, false},
    {0x111C9, 0x111C9, true},  {0x1144B, 0x1144F, false}, {0x1145A, 0x1145B, false},
    {0x1145D, 0x1145D, false}, {0x11660, 0x1166C, false}, {0x116B9, 0x116B9, false},
    {0x1183B, 0x1183B, false}, {0x11944, 0x11946, false}, {0x119E2, 0x119E2, false},
    {0x11A3F, 0x11A46, false}, {0x11A9A, 0x11A9C, false}, {0x11A9E, 0x11AA2, false},
    {0x11B00, 0x11B09, false}, {0x11C41, 0x11C45, false}, {0x11C70, 0x11C71, false},
    {0x11EF7, 0x11EF8, false}, {0x11F43, 0x11F4F, false}, {0x11FFF, 0x11FFF, false},
    {0x12FF1, 0x12FF2, false}, {0x16E97, 0x16E9A, false}, {0x16FE2, 0x16FE2, false},
    {0x1E95E, 0x1E95F, false},
};

// Nonspacing marks added after the library's tables, which accent stripping therefore keeps.
constexpr Range kNotNonspacing[] = {
    {0x7FD, 0x7FD},     {0x898, 0x89F},     {0x8CA, 0x8E1},     {0x9FE, 0x9FE},
    {0xAFA, 0xAFF},     {0xB55, 0xB55},     {0xC04, 0xC04},     {0xC3C, 0xC3C},
    {0xD00, 0xD00},     {0xD3B, 0xD3C},     {0xD81, 0xD81},     {0xEBA, 0xEBA},
    {0xECE, 0xECE},     {0x180F, 0x180F},   {0x1885, 0x1886},   {0x1ABF, 0x1ACE},
    {0x1DF6, 0x1DFB},   {0xA82C, 0xA82C},   {0xA8C5, 0xA8C5},   {0xA8FF, 0xA8FF},
    {0xA9BD, 0xA9BD},   {0x10D24, 0x10D27}, {0x10EAB, 0x10EAC}, {0x10EFD, 0x10EFF},
    {0x10F46, 0x10F50}, {0x10F82, 0x10F85}, {0x11070, 0x11070}, {0x11073, 0x11074},
    {0x110C2, 0x110C2}, {0x111C9, 0x111C9}, {0x111CF, 0x111CF}, {0x1123E, 0x1123E},
    {0x11241, 0x11241}, {0x1133B, 0x1133B}, {0x11438, 0x1143F}, {0x11442, 0x11444},
    {0x11446, 0x11446}, {0x1145E, 0x1145E}, {0x1182F, 0x11837}, {0x11839, 0x1183A},
    {0x1193B, 0x1193C}, {0x1193E, 0x1193E}, {0x11943, 0x11943}, {0x119D4, 0x119D7},
    {0x119DA, 0x119DB}, {0x119E0, 0x119E0}, {0x11A01, 0x11A0A}, {0x11A33, 0x11A38},
    {0x11A3B, 0x11A3E}, {0x11A47, 0x11A47}, {0x11A51, 0x11A56}, {0x11A59, 0x11A5B},
    {0x11A8A, 0x11A96}, {0x11A98, 0x11A99}, {0x11C30, 0x11C36}, {0x11C38, 0x11C3D},
    {0x11C3F, 0x11C3F}, {0x11C92, 0x11CA7}, {0x11CAA, 0x11CB0}, {0x11CB2, 0x11CB3},
    {0x11CB5, 0x11CB6}, {0x11D31, 0x11D36}, {0x11D3A, 0x11D3A}, {0x11D3C, 0x11D3D},
    {0x11D3F, 0x11D45}, {0x11D47, 0x11D47}, {0x11D90, 0x11D91}, {0x11D95, 0x11D95},
    {0x11D97, 0x11D97}, {0x11EF3, 0x11EF4}, {0x11F00, 0x11F01}, {0x11F36, 0x11F3A},
    {0x11F40, 0x11F40}, {0x11F42, 0x11F42}, {0x13440, 0x13440}, {0x13447, 0x13455},
    {0x16F4F, 0x16F4F}, {0x16FE4, 0x16FE4}, {0x1CF00, 0x1CF2D}, {0x1CF30, 0x1CF46},
    {0x1E000, 0x1E006}, {0x1E008, 0x1E018}, {0x1E01B, 0x1E021}, {0x1E023, 0x1E024},
    {0x1E026, 0x1E02A}, {0x1E08F, 0x1E08F}, {0x1E130, 0x1E136}, {0x1E2AE, 0x1E2AE},
    {0x1E2EC, 0x1E2EF}, {0x1E4EC, 0x1E4EF}, {0x1E944, 0x1E94A},
};
// A nonspacing mark in the library's tables, a spacing one since Unicode 14.
constexpr char32_t kExtraNonspacing = 0x1734;

// The library's normalization tables predate this decomposition (Unicode 13).
constexpr char32_t kUndecomposed = 0x11938;

// Letters and digits of Unicode 16, which the GPT-2 pattern's regex engine knows.
constexpr ValuedRange<unicode::Gpt2Class> kGpt2[] = {
    {0x1C89, 0x1C8A, unicode::Gpt2Class::Letter},   {0xA7CB, 0xA7CD, unicode::Gpt2Class::Letter},
    {0xA7DA, 0xA7DC, unicode::Gpt2Class::Letter},   {0x105C0, 0x105F3, unicode::Gpt2Class::Letter},
    {0x10D40, 0x10D49, unicode::Gpt2Class::Number}, {0x10D4A, 0x10D65, unicode::Gpt2Class::Letter},
    {0x10D6F, 0x10D85, unicode::Gpt2Class::Letter}, {0x10EC2, 0x10EC4, unicode::Gpt2Class::Letter},
    {0x11380, 0x11389, unicode::Gpt2Class::Letter}, {0x1138B, 0x1138B, unicode::Gpt2Class::Letter},
    {0x1138E, 0x1138E, unicode::Gpt2Class::Letter}, {0x11390, 0x113B5, unicode::Gpt2Class::Letter},
    {0x113B7, 0x113B7, unicode::Gpt2Class::Letter}, {0x113D1, 0x113D1, unicode::Gpt2Class::Letter},
    {0x113D3, 0x113D3, unicode::Gpt2Class::Letter}, {0x116D0, 0x116E3, unicode::Gpt2Class::Number},
    {0x11BC0, 0x11BE0, unicode::Gpt2Class::Letter}, {0x11BF0, 0x11BF9, unicode::Gpt2Class::Number},
    {0x13460, 0x143FA, unicode::Gpt2Class::Letter}, {0x16100, 0x1611D, unicode::Gpt2Class::Letter},
    {0x16130, 0x16139, unicode::Gpt2Class::Number}, {0x16D40, 0x16D6C, unicode::Gpt2Class::Letter},
    {0x16D70, 0x16D79, unicode::Gpt2Class::Number}, {0x18CFF, 0x18CFF, unicode::Gpt2Class::Letter},
    {0x1CCF0, 0x1CCF9, unicode::Gpt2Class::Number}, {0x1E5D0, 0x1E5ED, unicode::Gpt2Class::Letter},
    {0x1E5F0, 0x1E5F0, unicode::Gpt2Class::Letter}, {0x1E5F1, 0x1E5FA, unicode::Gpt2Class::Number},
    {0x2EBF0, 0x2EE5D, unicode::Gpt2Class::Letter},
};

// Lowercase mappings of Unicode 16 (Rust's), as the offset to add inside each range.
constexpr ValuedRange<int32_t> kLowercase[] = {
    {0x1C89, 0x1C89, 1},    {0xA7CB, 0xA7CB, -42343}, {0xA7CC, 0xA7CC, 1}, {0xA7CE, 0xA7CE, 1},
    {0xA7D2, 0xA7D2, 1},    {0xA7D4, 0xA7D4, 1},      {0xA7DA, 0xA7DA, 1}, {0xA7DC, 0xA7DC, -42561},
    {0x10D50, 0x10D65, 32}, {0x16EA0, 0x16EB8, 27},
};

template <typename R, size_t N>
const R* find_range(const R (&table)[N], char32_t cp) {
  const auto it = std::upper_bound(std::begin(table), std::end(table), cp,
                                   [](char32_t c, const R& r) { return c < r.first; });
  if (it == std::begin(table)) return nullptr;
  const R* r = std::prev(it);
  return cp <= r->last ? r : nullptr;
}

utf8proc_category_t category(char32_t cp) {
  return static_cast<utf8proc_category_t>(utf8proc_category(static_cast<utf8proc_int32_t>(cp)));
}

// ASCII classes, so that the common case needs no table search.
enum : unsigned char { kAsciiLetter = 1, kAsciiDigit = 2, kAsciiPunct = 4, kAsciiSpace = 8 };
constexpr std::array<unsigned char, 128> kAscii = [] {
  std::array<unsigned char, 128> t{};
  for (int c = 'a'; c <= 'z'; ++c) t[c] = kAsciiLetter;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = kAsciiLetter;
  for (int c = '0'; c <= '9'; ++c) t[c] = kAsciiDigit;
  for (int c = 9; c <= 13; ++c) t[c] = kAsciiSpace;
  t[' '] = kAsciiSpace;
  for (char c : std::string_view("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")) t[c] = kAsciiPunct;
  return t;
}();

// Length of the well-formed UTF-8 prefix of the sequence at `i` (0 if the first byte cannot
// start one), and whether that prefix is a complete sequence. Follows Unicode's table 3-7,
// whose maximal-subpart rule Python's decoder implements.
struct Sequence {
  size_t valid_prefix;
  bool complete;
};

Sequence scan_sequence(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {1, true};
  size_t need;
  unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    need = 1;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    need = 2;
    if (b0 == 0xe0) lo = 0xa0;
    if (b0 == 0xed) hi = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    need = 3;
    if (b0 == 0xf0) lo = 0x90;
    if (b0 == 0xf4) hi = 0x8f;
  } else {
    return {0, false};
  }
  for (size_t k = 1; k <= need; ++k) {
    if (i + k >= s.size()) return {k, false};
    const auto b = static_cast<unsigned char>(s[i + k]);
    const bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xbf);
    if (!ok) return {k, false};
  }
  return {need + 1, true};
}

}  // namespace

size_t find_invalid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const Sequence seq = scan_sequence(text, i);
    if (!seq.complete) return i;
    i += seq.valid_prefix;
  }
  return std::string_view::npos;
}

std::string replace_invalid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const Sequence seq = scan_sequence(text, i);
    if (seq.complete) {
      out.append(text.substr(i, seq.valid_prefix));
      i += seq.valid_prefix;
    } else {
      out.append("\xef\xbf\xbd");
      i += std::max<size_t>(seq.valid_prefix, 1);
    }
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

namespace unicode {

bool is_whitespace(char32_t cp) {
  if (cp < 0x80) return kAscii[cp] == kAsciiSpace;
  return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

bool is_removed_by_bert_cleaning(char32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  if (cp < 0x20 || cp == 0x7f) return true;
  if (cp < 0x80) return false;
  if (cp == 0xfffd) return true;
  if (find_range(kKeptByCleaning, cp)) return false;
  const auto c = category(cp);
  return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_CO ||
         c == UTF8PROC_CATEGORY_CS;
}

bool is_bert_punctuation(char32_t cp) {
  if (cp < 0x80) return kAscii[cp] == kAsciiPunct;
  if (const auto* r = find_range(kPunctuation, cp)) return r->value;
  const auto c = category(cp);
  return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

bool is_chinese_char(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

bool is_nonspacing_mark(char32_t cp) {
  if (cp < 0x300) return false;
  if (cp == kExtraNonspacing) return true;
  if (find_range(kNotNonspacing, cp)) return false;
  return category(cp) == UTF8PROC_CATEGORY_MN;
}

int combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  return utf8proc_get_property(static_cast<utf8proc_int32_t>(cp))->combining_class;
}

void append_decomposition(char32_t cp, std::u32string& out) {
  if (cp < 0xc0 || cp == kUndecomposed) {
    out.push_back(cp);
    return;
  }
  // No canonical decomposition is longer than 4 code points; 8 leaves room.
  utf8proc_int32_t buffer[8];
  int last_boundclass = 0;
  const utf8proc_ssize_t n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(cp), buffer, 8,
                                                     UTF8PROC_DECOMPOSE, &last_boundclass);
  if (n <= 0 || n > 8) {
    out.push_back(cp);
    return;
  }
  for (utf8proc_ssize_t i = 0; i < n; ++i) out.push_back(static_cast<char32_t>(buffer[i]));
}

void append_lowercase(char32_t cp, std::u32string& out) {
  if (cp < 0x80) {
    out.push_back(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
    return;
  }
  // The only unconditional multi-character lowercase mapping (SpecialCasing.txt).
  if (cp == 0x130) {
    out.push_back(U'i');
    out.push_back(0x307);
    return;
  }
  if (const auto* r = find_range(kLowercase, cp)) {
    out.push_back(static_cast<char32_t>(static_cast<int32_t>(cp) + r->value));
    return;
  }
  out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
}

Gpt2Class gpt2_class(char32_t cp) {
  if (cp < 0x80) {
    switch (kAscii[cp]) {
      case kAsciiLetter:
        return Gpt2Class::Letter;
      case kAsciiDigit:
        return Gpt2Class::Number;
      case kAsciiSpace:
        return Gpt2Class::Space;
      default:
        return Gpt2Class::Other;
    }
  }
  if (is_whitespace(cp)) return Gpt2Class::Space;
  if (const auto* r = find_range(kGpt2, cp)) return r->value;
  const auto c = category(cp);
  if (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) return Gpt2Class::Letter;
  if (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO) return Gpt2Class::Number;
  return Gpt2Class::Other;
}

bool is_word_char(char32_t cp) {
  if (cp < 0x80) return kAscii[cp] == kAsciiLetter || kAscii[cp] == kAsciiDigit || cp == '_';
  if (cp == 0x200c || cp == 0x200d) return true;
  // Other_Alphabetic symbols: the circled and squared Latin letters.
  if ((cp >= 0x24b6 && cp <= 0x24e9) || (cp >= 0x1f130 && cp <= 0x1f149) ||
      (cp >= 0x1f150 && cp <= 0x1f169) || (cp >= 0x1f170 && cp <= 0x1f189)) {
    return true;
  }
  const auto c = category(cp);
  return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
         (c >= UTF8PROC_CATEGORY_MN && c <= UTF8PROC_CATEGORY_ME) || c == UTF8PROC_CATEGORY_ND ||
         c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_PC;
}

}  // namespace unicode
}  // namespace tlora::text
