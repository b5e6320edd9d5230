// Byte-level BPE in isolation: GPT-2's byte map and split pattern, merges by rank (Hugging Face's
// heap order), unknown bytes, the word cache, RoBERTa's pair template, and the loaders' errors.
#include "test_util.h"
#include <c10/util/Exception.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "tlora/text/bpe.h"
#include "tlora/text/tokenizer.h"
#include "tlora/text/unicode.h"

namespace {

namespace fs = std::filesystem;
namespace tt = tlora::text;
using nlohmann::json;
using Ids = std::vector<int64_t>;
using Tokens = std::vector<std::string>;
using Merges = std::vector<std::pair<std::string, std::string>>;

using tlora::testing::error_of;
using tlora::testing::read_file;
using tlora::testing::TempDir;

const fs::path kRoberta = fs::path(TLORA_FIXTURE_DIR) / "tokenizers" / "roberta";

// The byte-level string of `text` ("Ġ" for a space, ...).
std::string mapped(const std::string& text) {
  std::string out;
  for (const char c : text)
    tt::append_utf8(out, tt::ByteLevelBPETokenizer::byte_to_char(static_cast<unsigned char>(c)));
  return out;
}

// A vocabulary of every byte's character (id = byte, except those in `without`) plus `extra`.
tt::Vocab byte_vocab(const std::vector<std::string>& extra, const std::string& without = "") {
  tt::Vocab vocab;
  for (int b = 0; b < 256; ++b) {
    if (without.find(static_cast<char>(b)) == std::string::npos) {
      vocab.emplace(mapped(std::string(1, static_cast<char>(b))), b);
    }
  }
  for (const auto& t : extra) vocab.emplace(mapped(t), 256 + static_cast<int64_t>(vocab.size()));
  return vocab;
}

Merges mapped_merges(const Merges& merges) {
  Merges out;
  for (const auto& [a, b] : merges) out.emplace_back(mapped(a), mapped(b));
  return out;
}

Tokens unmapped_tokens(const tt::Tokenizer& tok, const std::string& text) {
  Tokens out;
  for (const std::string& t : tok.encode(text, false).tokens) {
    std::string bytes;
    for (size_t pos = 0; pos < t.size();) {
      const char32_t cp = tt::next_code_point(t, pos);
      for (int b = 0; b < 256; ++b) {
        if (tt::ByteLevelBPETokenizer::byte_to_char(static_cast<unsigned char>(b)) == cp)
          bytes.push_back(static_cast<char>(b));
      }
    }
    out.push_back(bytes);
  }
  return out;
}

TEST(ByteLevelMap, Gpt2BytesToUnicode) {
  EXPECT_EQ(tt::ByteLevelBPETokenizer::byte_to_char('A'), U'A');
  EXPECT_EQ(tt::ByteLevelBPETokenizer::byte_to_char('!'), U'!');
  EXPECT_EQ(tt::ByteLevelBPETokenizer::byte_to_char(0), 0x100u);
  EXPECT_EQ(tt::ByteLevelBPETokenizer::byte_to_char(' '), 0x120u);   // Ġ
  EXPECT_EQ(tt::ByteLevelBPETokenizer::byte_to_char('\n'), 0x10Au);  // Ċ
  EXPECT_EQ(tt::ByteLevelBPETokenizer::byte_to_char(0x7f), 0x121u);
  EXPECT_EQ(tt::ByteLevelBPETokenizer::byte_to_char(0xad), 0x143u);
  EXPECT_EQ(tt::ByteLevelBPETokenizer::byte_to_char(0xe9), 0xe9u);
  std::set<char32_t> all;
  for (int b = 0; b < 256; ++b)
    all.insert(tt::ByteLevelBPETokenizer::byte_to_char(static_cast<unsigned char>(b)));
  EXPECT_EQ(all.size(), 256u);
}

// The split is visible when every piece is a vocabulary entry taken whole (ignore_merges).
TEST(Gpt2Split, ContractionsLettersNumbersOtherAndWhitespace) {
  tt::BPEOptions options;
  options.ignore_merges = true;
  const std::vector<std::string> words = {
      "hello", " world", "'s", " ",   " end", "\n", "123",           " 45",
      "!?",    " '",     "s",  "'S",  "\t",   " x", "\u00e9t\u00e9", " \u4f60\u597d",
      "'ll",   "  ",     " a", "   ", "a"};
  const tt::ByteLevelBPETokenizer tok(byte_vocab(words), {}, options);
  EXPECT_EQ(unmapped_tokens(tok, "hello world's  end\n"),
            (Tokens{"hello", " world", "'s", " ", " end", "\n"}));
  EXPECT_EQ(unmapped_tokens(tok, "123 45!?"), (Tokens{"123", " 45", "!?"}));
  EXPECT_EQ(unmapped_tokens(tok, " 's"), (Tokens{" '", "s"}));
  EXPECT_EQ(unmapped_tokens(tok, "'S'll"), (Tokens{"'", "S", "'ll"}));
  EXPECT_EQ(unmapped_tokens(tok, "\t x"), (Tokens{"\t", " x"}));
  EXPECT_EQ(unmapped_tokens(tok, "\u00e9t\u00e9 \u4f60\u597d"),
            (Tokens{"\u00e9t\u00e9", " \u4f60\u597d"}));
  EXPECT_EQ(unmapped_tokens(tok, "   a"), (Tokens{"  ", " a"}));
  EXPECT_EQ(unmapped_tokens(tok, "a   "), (Tokens{"a", "   "}));  // a trailing run stays whole
}

TEST(BpeMerges, RankOrderAndLeftmostFirst) {
  const tt::ByteLevelBPETokenizer chain(byte_vocab({"ab", "abc"}),
                                        mapped_merges({{"a", "b"}, {"ab", "c"}}));
  EXPECT_EQ(unmapped_tokens(chain, "abc"), (Tokens{"abc"}));
  const tt::ByteLevelBPETokenizer ranked(byte_vocab({"ab", "bc"}),
                                         mapped_merges({{"b", "c"}, {"a", "b"}}));
  EXPECT_EQ(unmapped_tokens(ranked, "abc"), (Tokens{"a", "bc"}));
  const tt::ByteLevelBPETokenizer ranked2(byte_vocab({"ab", "bc"}),
                                          mapped_merges({{"a", "b"}, {"b", "c"}}));
  EXPECT_EQ(unmapped_tokens(ranked2, "abc"), (Tokens{"ab", "c"}));
  const tt::ByteLevelBPETokenizer twins(byte_vocab({"aa", "aaaa"}),
                                        mapped_merges({{"a", "a"}, {"aa", "aa"}}));
  EXPECT_EQ(unmapped_tokens(twins, "aaa"), (Tokens{"aa", "a"}));
  EXPECT_EQ(unmapped_tokens(twins, "aaaaa"), (Tokens{"aaaa", "a"}));
  EXPECT_EQ(unmapped_tokens(twins, "aaaaaa"), (Tokens{"aaaa", "aa"}));
}

TEST(BpeMerges, UnknownBytesAreDroppedOrUnk) {
  tt::Vocab vocab = byte_vocab({"<unk>"}, "?");
  const tt::ByteLevelBPETokenizer dropping(vocab, {});
  EXPECT_EQ(unmapped_tokens(dropping, "a??b"), (Tokens{"a", "b"}));
  tt::BPEOptions options;
  options.unk_token = mapped("<unk>");
  const tt::ByteLevelBPETokenizer unk(vocab, {}, options);
  EXPECT_EQ(unk.encode("a??b", false).tokens.size(), 4u);
  options.fuse_unk = true;
  const tt::ByteLevelBPETokenizer fused(vocab, {}, options);
  EXPECT_EQ(fused.encode("a??b", false).tokens, (Tokens{"a", mapped("<unk>"), "b"}));
  options.unk_token = "<absent>";
  EXPECT_THROW(tt::ByteLevelBPETokenizer(vocab, {}, options), c10::Error);
}

TEST(BpeMerges, CacheAndPrefixSpaceDoNotChangeIds) {
  auto cached =
      tt::ByteLevelBPETokenizer::from_files(kRoberta / "vocab.json", kRoberta / "merges.txt");
  const std::string text = "The quick brown fox jumps over the lazy dog. The quick brown fox!";
  const Ids first = cached.encode(text).ids;
  EXPECT_EQ(cached.encode(text).ids, first);
  const json doc = json::parse(read_file(kRoberta / "tokenizer.json"));
  tt::Vocab vocab;
  for (const auto& [token, id] : doc["model"]["vocab"].items()) vocab[token] = id.get<int64_t>();
  Merges merges;
  for (const auto& m : doc["model"]["merges"]) merges.emplace_back(m[0], m[1]);
  tt::BPEOptions options;
  options.cache_capacity = 0;
  tt::ByteLevelBPETokenizer uncached(vocab, merges, options);
  const Ids plain = uncached.encode(text, false).ids;
  EXPECT_EQ(Ids(first.begin() + 1, first.end() - 1), plain);
  options.add_prefix_space = true;
  const tt::ByteLevelBPETokenizer prefixed(vocab, merges, options);
  EXPECT_EQ(prefixed.encode("The", false).ids, uncached.encode(" The", false).ids);
  EXPECT_EQ(prefixed.encode(" The", false).ids, uncached.encode(" The", false).ids);
}

TEST(BpeRoberta, PairTemplateAndSpecials) {
  auto tok =
      tt::ByteLevelBPETokenizer::from_files(kRoberta / "vocab.json", kRoberta / "merges.txt");
  const int64_t cls = *tok.token_to_id("<s>"), sep = *tok.token_to_id("</s>");
  const tt::Encoding e = tok.encode_pair("a", "b");
  ASSERT_EQ(e.size(), 6u);
  EXPECT_EQ(e.ids[0], cls);
  EXPECT_EQ(e.ids[2], sep);
  EXPECT_EQ(e.ids[3], sep);
  EXPECT_EQ(e.ids[5], sep);
  EXPECT_EQ(e.type_ids, Ids(6, 0));
  EXPECT_EQ(e.special_tokens_mask, (Ids{1, 0, 1, 1, 0, 1}));
  EXPECT_EQ(tok.num_special_tokens_to_add(true), 4u);
  EXPECT_EQ(tok.pad_token(), "<pad>");
  tok.set_padding(tt::PaddingOptions{});
  EXPECT_EQ(tok.padding()->pad_id, tok.token_to_id("<pad>"));
  EXPECT_EQ(tok.encode("<mask>").ids[1], *tok.token_to_id("<mask>"));
}

TEST(BpeFiles, Errors) {
  TempDir dir;
  const fs::path vocab = dir.write("vocab.json", R"({"a": 0, "b": 1, "ab": 2})");
  const fs::path merges = dir.write("merges.txt", "#version: 0.2\na b\n");
  EXPECT_EQ(tt::ByteLevelBPETokenizer::from_files(vocab, merges).vocab_size(false), 3u);
  const auto fails_with = [&](const fs::path& v, const fs::path& m, const std::string& needle) {
    const std::string msg = error_of([&] { tt::ByteLevelBPETokenizer::from_files(v, m); });
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  };
  fails_with(vocab, dir.write("three.txt", "a b\na b c\n"), "merge 2");
  fails_with(vocab, dir.write("empty_line.txt", "a b\n\na b\n"), "merge 2");
  fails_with(vocab, dir.write("unknown.txt", "a c\n"), "'c'");
  fails_with(vocab, dir.write("no_result.txt", "b a\n"), "'ba'");
  fails_with(dir.write("list.json", "[1, 2]"), merges, "not a JSON object");
  fails_with(dir.write("negative.json", R"({"a": -1})"), merges, "non-negative");
  fails_with(dir.write("broken.json", "{"), merges, "not valid JSON");
  fails_with(dir.path() / "missing.json", merges, "cannot open");
  fails_with(vocab, dir.path() / "missing.txt", "cannot open");
}

TEST(BpeTokenizerJson, StringMergesAndRefusedFeatures) {
  const json base = json::parse(read_file(kRoberta / "tokenizer.json"));
  TempDir dir;
  json doc = base;
  for (auto& m : doc["model"]["merges"])
    m = m[0].get<std::string>() + " " + m[1].get<std::string>();
  const auto legacy =
      tt::ByteLevelBPETokenizer::from_tokenizer_json(dir.write("legacy.json", doc.dump()));
  const auto modern = tt::ByteLevelBPETokenizer::from_tokenizer_json(kRoberta / "tokenizer.json");
  const std::string text = "Merges written as \"a b\" strings work the same, don't they?";
  EXPECT_EQ(legacy.encode(text).ids, modern.encode(text).ids);

  const auto fails_with = [&](const std::string& name, const json& d, const std::string& needle) {
    const std::string msg = error_of(
        [&] { tt::ByteLevelBPETokenizer::from_tokenizer_json(dir.write(name, d.dump())); });
    EXPECT_NE(msg.find(needle), std::string::npos) << name << ": " << msg;
  };
  doc = base;
  doc["model"]["dropout"] = 0.1;
  fails_with("dropout.json", doc, "dropout");
  doc = base;
  doc["model"]["byte_fallback"] = true;
  fails_with("fallback.json", doc, "byte_fallback");
  doc = base;
  doc["normalizer"] = {{"type", "NFC"}};
  fails_with("normalizer.json", doc, "without a normalizer");
  doc = base;
  doc["pre_tokenizer"] = {{"type", "Metaspace"}};
  fails_with("metaspace.json", doc, "ByteLevel");
  doc = base;
  doc["model"]["merges"][0] = 7;
  fails_with("merge.json", doc, "model.merges[0]");
  doc = base;
  doc["model"]["type"] = "WordPiece";
  fails_with("type.json", doc, "expected BPE");
}

}  // namespace
