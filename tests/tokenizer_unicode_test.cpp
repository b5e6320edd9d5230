// The character classes behind the tokenizers against the `tokenizers` library itself: spot
// checks of every table of differences to utf8proc (values from the library), and, when
// TLORA_TOKENIZER_UNICODE_DUMP names a dump written by tools/tokenizer_fixtures.py --unicode,
// every code point (and the ranges that differ, to update src/text/unicode.cpp with).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tlora/text/unicode.h"

namespace {

namespace tt = tlora::text;
namespace un = tlora::text::unicode;

std::u32string decomposed_without_marks(char32_t cp) {
  std::u32string d;
  un::append_decomposition(cp, d);
  for (size_t i = 1; i < d.size(); ++i) {  // canonical ordering of the marks
    for (size_t j = i; j > 0 && un::combining_class(d[j]) != 0 &&
                       un::combining_class(d[j - 1]) > un::combining_class(d[j]);
         --j) {
      std::swap(d[j - 1], d[j]);
    }
  }
  std::u32string out;
  for (const char32_t c : d) {
    if (!un::is_nonspacing_mark(c)) out.push_back(c);
  }
  return out;
}

std::u32string lowercased(char32_t cp) {
  std::u32string out;
  un::append_lowercase(cp, out);
  return out;
}

char gpt2_letter(char32_t cp) {
  switch (un::gpt2_class(cp)) {
    case un::Gpt2Class::Letter:
      return 'L';
    case un::Gpt2Class::Number:
      return 'N';
    case un::Gpt2Class::Space:
      return 'S';
    default:
      return 'O';
  }
}

std::string hex_list(const std::u32string& s) {
  std::string out;
  char buf[16];
  for (const char32_t c : s) {
    std::snprintf(buf, sizeof buf, out.empty() ? "%x" : " %x", static_cast<unsigned>(c));
    out += buf;
  }
  return out;
}

TEST(TokenizerUnicode, SpotChecksFromTheLibrary) {
  // Cleaning: old control/format/private-use tables; unassigned code points are kept.
  for (char32_t cp : {0x0u, 0x1cu, 0x7fu, 0x85u, 0x600u, 0x200bu, 0xe000u, 0xfffdu}) {
    EXPECT_TRUE(un::is_removed_by_bert_cleaning(cp)) << std::hex << static_cast<unsigned>(cp);
  }
  for (char32_t cp : {0x9u, 0xau, 0xdu, 0x41u, 0x378u, 0x890u, 0x13430u}) {
    EXPECT_FALSE(un::is_removed_by_bert_cleaning(cp)) << std::hex << static_cast<unsigned>(cp);
  }
  EXPECT_TRUE(un::is_bert_punctuation('$'));
  EXPECT_TRUE(un::is_bert_punctuation(0x2e42));
  EXPECT_TRUE(un::is_bert_punctuation(0x166d));  // punctuation in the library's Unicode
  EXPECT_FALSE(un::is_bert_punctuation(0x2e43));
  EXPECT_FALSE(un::is_bert_punctuation(0xa9));
  EXPECT_TRUE(un::is_chinese_char(0x3400));
  EXPECT_TRUE(un::is_chinese_char(0xf900));
  EXPECT_FALSE(un::is_chinese_char(0xac00));
  EXPECT_TRUE(un::is_whitespace(0x3000));
  EXPECT_FALSE(un::is_whitespace(0x1c));
  EXPECT_FALSE(un::is_whitespace(0x200b));
  EXPECT_EQ(gpt2_letter(0xe9), 'L');
  EXPECT_EQ(gpt2_letter(0xbd), 'N');
  EXPECT_EQ(gpt2_letter(0x2160), 'N');
  EXPECT_EQ(gpt2_letter(0x301), 'O');
  EXPECT_EQ(gpt2_letter(0x1c), 'O');
  EXPECT_EQ(gpt2_letter(0x85), 'S');
  EXPECT_EQ(gpt2_letter(0x10d50), 'L');  // Unicode 16, which the library's regex engine knows
  EXPECT_EQ(gpt2_letter(0x10d40), 'N');
  EXPECT_TRUE(un::is_nonspacing_mark(0x301));
  EXPECT_TRUE(un::is_nonspacing_mark(0x1734));
  EXPECT_FALSE(un::is_nonspacing_mark(0x7fd));
  EXPECT_FALSE(un::is_nonspacing_mark(0x898));
  EXPECT_EQ(decomposed_without_marks(0xe9), U"e");
  EXPECT_EQ(decomposed_without_marks(0x130), U"I");
  EXPECT_EQ(decomposed_without_marks(0xac00), (std::u32string{0x1100, 0x1161}));
  EXPECT_EQ(decomposed_without_marks(0xf900), std::u32string(1, 0x8c48));
  EXPECT_EQ(decomposed_without_marks(0x11938), std::u32string(1, 0x11938));
  EXPECT_EQ(lowercased(0x130), (std::u32string{0x69, 0x307}));
  EXPECT_EQ(lowercased(0x1e9e), std::u32string(1, 0xdf));
  EXPECT_EQ(lowercased(0x2160), std::u32string(1, 0x2170));
  EXPECT_EQ(lowercased(0x10d50), std::u32string(1, 0x10d70));
  EXPECT_EQ(lowercased('Q'), U"q");
  EXPECT_TRUE(un::is_word_char('_'));
  EXPECT_TRUE(un::is_word_char(0x301));
  EXPECT_TRUE(un::is_word_char(0x24b6));
  EXPECT_FALSE(un::is_word_char('-'));
}

// Every code point against the library's dump (tools/tokenizer_fixtures.py --unicode FILE).
TEST(TokenizerUnicode, EveryCodePointAgainstTheDump) {
  const char* path = std::getenv("TLORA_TOKENIZER_UNICODE_DUMP");
  if (!path || !*path) {
    GTEST_SKIP()
        << "set TLORA_TOKENIZER_UNICODE_DUMP to a file written by "
           "tools/tokenizer_fixtures.py --unicode FILE (minutes) to check every code point";
  }
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << "cannot read " << path;
  const char* columns[] = {"clean",      "chinese",        "bert_split",
                           "gpt2_class", "nfd_without_mn", "lowercase"};
  std::map<std::string, std::vector<std::string>> differences;
  size_t lines = 0;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields;
    std::stringstream ss(line);
    for (std::string f; std::getline(ss, f, '\t');) fields.push_back(f);
    fields.resize(7);
    const auto cp = static_cast<char32_t>(std::stoul(fields[0], nullptr, 16));
    const bool space = un::is_whitespace(cp);
    const std::string ours[] = {
        un::is_removed_by_bert_cleaning(cp) ? "R" : (space && cp != ' ' ? "W" : "-"),
        un::is_chinese_char(cp) ? "C" : "-",
        un::is_bert_punctuation(cp) ? "P" : (space ? "S" : "-"),
        std::string(1, gpt2_letter(cp)),
        hex_list(decomposed_without_marks(cp)),
        hex_list(lowercased(cp)),
    };
    for (int k = 0; k < 6; ++k) {
      if (ours[k] != fields[k + 1]) {
        differences[columns[k]].push_back(fields[0] + " library '" + fields[k + 1] + "' tlora '" +
                                          ours[k] + "'");
      }
    }
    ++lines;
  }
  EXPECT_EQ(lines, 0x110000u - 0x800u) << "the dump should hold every scalar value";
  for (const auto& [column, list] : differences) {
    std::string shown;
    for (size_t i = 0; i < std::min<size_t>(list.size(), 20); ++i) shown += "\n  " + list[i];
    ADD_FAILURE() << list.size() << " code points differ in " << column << ":" << shown;
  }
  std::cout << "[ unicode  ] " << lines << " code points compared, "
            << (differences.empty() ? "all identical" : "differences above") << "\n";
}

}  // namespace
